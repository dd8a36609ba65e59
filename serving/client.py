"""The recommender client (``RecommenderClient``, REST or gRPC), re-exported.

Its code lives in the client distribution ``commerce-recsys-client``
(``clients/python/src/commerce_recsys_client/client.py``), which backends install alone,
without TensorFlow (``pip install ./clients/python``). ``serving.client`` *is* that module
(same module object: attributes, monkeypatching and ``isinstance`` checks are shared), so the
full stack's imports (``from serving.client import RecommenderClient``) keep working.
"""
import sys

from commerce_recsys_client import client as _client

sys.modules[__name__] = _client
