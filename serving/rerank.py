"""The re-ranking policies (``Exclude``, ``SuppressIgnored``, ``CategoryCap``, ``MMR``, ``NoveltyShare``,
``AdSlots``, ``RerankPipeline``), re-exported.

Its code lives in the client distribution ``commerce-recsys-client``
(``clients/python/src/commerce_recsys_client/rerank.py``), which backends install without TensorFlow.
``serving.rerank`` *is* that module (same module object, as ``serving.client`` is
``commerce_recsys_client.client``), so the full stack's
imports (``from serving import rerank as R``) keep working.
"""
import sys

from commerce_recsys_client import rerank as _rerank

sys.modules[__name__] = _rerank
