"""Serving: a local model server speaking TF Serving's gRPC/REST APIs, and its client.

* :mod:`serving.server`  -- ``ModelServer`` and ``python -m serving.server`` (TF Serving flags)
* :mod:`serving.client`  -- ``RecommenderClient`` for backends (REST or gRPC); the same module object
  as ``commerce_recsys_client.client``, which lives in ``clients/python`` (its own distribution)
* :mod:`serving.models` / :mod:`serving.servable` -- versions on disk -> loaded SavedModels
* :mod:`serving.rest`, :mod:`serving.grpc_service` -- the two front ends
* :mod:`serving.codec`, :mod:`serving.tensors` -- JSON and TensorProto <-> numpy (the server's errors
  around the client package's ``jsontext`` and ``tensors``)
* :mod:`serving.ranking` -- ``ServedRanker``: the served ``ranker`` as the Recommender's ranking stage
  (``commerce_recsys_client.ranking``)
* :mod:`serving.http_server` -- the REST sockets (asyncio; bounded, timed, one write per answer)
* :mod:`serving.limits`, :mod:`serving.security` -- request limits; bind address, admin RPC,
  shared token, TLS
* :mod:`serving.batching`, :mod:`serving.metrics` -- server-side batching; Prometheus metrics
* :mod:`serving.multistage` -- ``Recommender``: retrieval fan-out, ranking, re-ranking, feedback
  (over the client), with :mod:`serving.rerank` (policies), :mod:`serving.feedback` (the vector
  update), :mod:`serving.store` (Redis state), :mod:`serving.experiments` (A/B arms, event log),
  :mod:`serving.items` (the popularity/category table); docs/multistage.md. Like ``serving.client``,
  these are the client distribution's modules (``commerce_recsys_client.multistage``, ``.rerank``,
  ``.feedback``, ``.store``, ``.experiments``, ``.ranking``: the same module objects); ``serving.items``
  re-exports ``commerce_recsys_client.items`` and adds the pipeline's table writer (TensorFlow)
"""
import os

# The rest of the stack uses Keras 2 (tf_keras); TensorFlow picks its Keras when first
# imported, so set the default before any serving module imports it.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING lines
