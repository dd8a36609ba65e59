"""The multi-stage client's per-user state (``RedisStore``, ``InMemoryStore``, ``EmbeddedRedis``), re-exported.

Its code lives in the client distribution ``commerce-recsys-client``
(``clients/python/src/commerce_recsys_client/store.py``), which backends install without TensorFlow.
``serving.store`` *is* that module (same module object, as ``serving.client`` is
``commerce_recsys_client.client``), so the full stack's
imports (``from serving.store import RedisStore``) keep working.
"""
import sys

from commerce_recsys_client import store as _store

sys.modules[__name__] = _store
