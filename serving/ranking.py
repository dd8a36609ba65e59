"""``ServedRanker``: the served ``ranker`` as the Recommender's ranking stage, re-exported.

Its code lives in the client distribution ``commerce-recsys-client``
(``clients/python/src/commerce_recsys_client/ranking.py``), which backends install without TensorFlow.
``serving.ranking`` *is* that module (same module object, as ``serving.client`` is
``commerce_recsys_client.client``), so the full stack's
imports (``from serving.ranking import ServedRanker``) keep working.
"""
import sys

from commerce_recsys_client import ranking as _ranking

sys.modules[__name__] = _ranking
