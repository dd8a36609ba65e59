"""Warm-up records for every SavedModel we export.

TF Serving (and our local server) replays ``assets.extra/tf_serving_warmup_requests``
(``PredictionLog`` TFRecords) when it loads a model version, so the first real
request does not pay for graph tracing and table initialisation. Every exporter
writes them through :func:`write_warmup`; the requests use the contract's names
(``recsys.names``).
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

from recsys import names as N

#: one request: (signature name, {input tensor name: value}); values become tensors of their numpy dtype
WarmupRequest = tuple[str, Mapping[str, np.ndarray]]


def _dtype(value: np.ndarray):
    import tensorflow as tf

    if value.dtype.kind in "OSU":
        return tf.string
    return tf.as_dtype(value.dtype)


def write_warmup(export_dir: str, model_name: str, requests: Sequence[WarmupRequest]) -> int:
    """Writes ``requests`` as TF Serving warm-up records of ``export_dir``; returns how many."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    if not requests:
        raise ValueError(f"{model_name}: no warm-up requests to write")
    path = os.path.join(export_dir, "assets.extra", N.WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests:
            req = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
            for name, value in inputs.items():
                value = np.asarray(value)
                if value.dtype.kind == "U":
                    value = value.astype(object)
                req.inputs[name].CopyFrom(tf.make_tensor_proto(value, dtype=_dtype(value)))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=req))
            writer.write(log.SerializeToString())
    return len(requests)


def recommend_requests(histories: Sequence[Sequence[str]], k: int = 10,
                       signature: str = N.SERVING_DEFAULT) -> list[WarmupRequest]:
    """One ``history``/``k``/``exclude`` request per history (the retrieval and generative contract)."""
    return [(signature, {N.HISTORY: np.array([list(h) or [""]], dtype=object),
                         N.K: np.array([k], dtype=np.int32),
                         N.EXCLUDE: np.array([[""]], dtype=object)}) for h in histories]


def user_requests(user_ids: Sequence[str], k: int = 10, recent: Sequence[Sequence[str]] | None = None
                  ) -> list[WarmupRequest]:
    """``recommend_user`` requests, and ``recommend_session`` ones when ``recent`` items are given (default weight)."""
    out: list[WarmupRequest] = [(N.RECOMMEND_USER, {N.USER_ID: np.array([u], dtype=object),
                                                    N.K: np.array([k], dtype=np.int32),
                                                    N.EXCLUDE: np.array([[""]], dtype=object)}) for u in user_ids]
    for u, r in zip(user_ids, recent or []):
        out.append((N.RECOMMEND_SESSION, {N.USER_ID: np.array([u], dtype=object),
                                          N.RECENT_ITEMS: np.array([list(r) or [""]], dtype=object),
                                          N.SESSION_WEIGHT: np.array([-1.0], dtype=np.float32),
                                          N.K: np.array([k], dtype=np.int32),
                                          N.EXCLUDE: np.array([[""]], dtype=object)}))
    return out


def read_warmup(export_dir: str) -> list[tuple[str, str, dict[str, np.ndarray]]]:
    """The warm-up records of ``export_dir`` as (model name, signature, inputs), for tests and tools."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    out = []
    path = os.path.join(export_dir, "assets.extra", N.WARMUP_FILE)
    for record in tf.data.TFRecordDataset([path]).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        req = log.predict_log.request
        out.append((req.model_spec.name, req.model_spec.signature_name,
                    {k: tf.make_ndarray(v) for k, v in req.inputs.items()}))
    return out
