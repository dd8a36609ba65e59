"""The recommender's client for backends: ``RecommenderClient`` over TF Serving's REST API
(standard library + numpy) or gRPC (the ``grpc`` extra), without TensorFlow.

    from commerce_recsys_client import RecommenderClient

    client = RecommenderClient("localhost:8501")
    client.recommend(user_id="42", k=10)

:mod:`commerce_recsys_client.names` is the served contract (model, signature and tensor
names): the repository's ``recsys/names.py``, shipped by path. The full stack
(``commerce-recsys``) re-exports :mod:`commerce_recsys_client.client` as ``serving.client``.
"""
from commerce_recsys_client.client import (  # noqa: F401 - the public API
    AUTO, DEFAULT_RETRIEVAL_MODELS, EncodedItem, RankedItem, Recommendation, RecommenderClient,
    ServingError, ServingTimeout, check_k, retrieval_features)

__version__ = "0.1.0"
