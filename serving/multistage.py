"""The multi-stage ``Recommender`` (retrieval fan-out, ranking, re-ranking, feedback), re-exported.

Its code lives in the client distribution ``commerce-recsys-client``
(``clients/python/src/commerce_recsys_client/multistage.py``), which backends install without TensorFlow.
``serving.multistage`` *is* that module (same module object, as ``serving.client`` is
``commerce_recsys_client.client``), so the full stack's
imports (``from serving.multistage import Recommender, RequestContext``) keep working.
"""
import sys

from commerce_recsys_client import multistage as _multistage

sys.modules[__name__] = _multistage
