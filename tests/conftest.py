"""Test session set-up: TensorFlow Recommenders needs legacy Keras, chosen before TF loads."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import recsys  # noqa: E402,F401  (checks the Keras choice and quiets import-time warnings)
