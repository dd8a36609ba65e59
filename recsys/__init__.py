"""Commerce recommender stack: shared configuration, data adapters, evaluation, CLI.

TensorFlow Recommenders needs Keras 2 (``tf_keras``). TF 2.16 ships Keras 3 as
``tf.keras`` unless ``TF_USE_LEGACY_KERAS=1`` is set *before* TensorFlow is
imported, so we set it here and refuse to continue if TensorFlow was imported
earlier with the wrong Keras.
"""
import os
import sys
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# google-api-core warns on every import under Python 3.10, which TFX 1.16 requires.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.api_core.*")

if os.environ["TF_USE_LEGACY_KERAS"] != "1":
    raise ImportError(
        "recsys needs TF_USE_LEGACY_KERAS=1 (TensorFlow Recommenders requires Keras 2); "
        f"got TF_USE_LEGACY_KERAS={os.environ['TF_USE_LEGACY_KERAS']!r}. Unset it or set it to 1."
    )
if "tensorflow" in sys.modules and "tf_keras" not in sys.modules:
    # TensorFlow picked its Keras at import time; we cannot change it now.
    import tensorflow as _tf  # noqa: E402

    if not _tf.keras.__name__.startswith("tf_keras") and not getattr(_tf.keras, "__version__", "3").startswith("2"):
        raise ImportError(
            "TensorFlow was imported before recsys without TF_USE_LEGACY_KERAS=1, so tf.keras is "
            "Keras 3. Import recsys first, or export TF_USE_LEGACY_KERAS=1 in your shell."
        )

__version__ = "0.1.0"
