"""Applications on top of the library: the ``recsys`` CLI, the demo and the campaign batch job.

The top layer: it may import every other package (data → transform → trainer →
export → pipeline → serving/client); nothing imports it.
"""
import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads)
