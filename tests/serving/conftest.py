"""Fixtures for the model-server tests: tiny SavedModels on disk and a running server.

Models (all built here, nothing downloaded):

* ``retrieval`` v1, v2 -- the retrieval contract (``serving_default`` over a history,
  ``recommend_user`` over a user id) with brute-force matmul over 12 items; v2 has other
  embeddings, so its answers differ. Served with policy ``all`` and labels
  stable -> 1, canary -> 2. The base path also holds a non-numeric ``tmp-export`` dir.
* ``toy`` v1 -- ``serving_default`` (x: float[?,3] -> y: float[?], one output),
  ``bytes_echo`` (data: string[?] -> data_bytes, length, upper) and ``sleep``
  (ms: int64[?] -> slept_ms, sleeps max(ms) milliseconds); has 3 warm-up records.
* ``growing`` -- a toy model with only v1 at start; tests add v2 while serving.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import shutil  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.data.experimental.ops import testing as tf_data_testing  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2  # noqa: E402
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402

from serving.server import ModelServer  # noqa: E402

ITEMS = [f"item-{i}" for i in range(12)]
USERS = [f"user-{i}" for i in range(5)]
DIM = 4
WARMUP_RECORDS = 3


def _embeddings(seed: int, rows: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, DIM)).astype(np.float32)


class RetrievalModel(tf.Module):
    """The retrieval SavedModel contract, brute force over a fixed item table."""

    def __init__(self, seed: int):
        super().__init__()
        n = len(ITEMS)
        self.n = n
        self.item_ids = tf.constant(ITEMS)
        self.item_emb = tf.constant(_embeddings(seed, n))
        self.user_emb = tf.constant(_embeddings(seed + 100, len(USERS)))
        self.item_index = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(ITEMS, tf.range(n, dtype=tf.int64)), -1)
        self.user_index = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(USERS, tf.range(len(USERS), dtype=tf.int64)), -1)

    def _top_k(self, query, k, exclude):
        scores = tf.matmul(query, self.item_emb, transpose_b=True)
        excluded = self.item_index.lookup(exclude)
        mask = tf.reduce_max(tf.one_hot(excluded, self.n, dtype=tf.int32), axis=1) > 0
        scores = tf.where(mask, tf.fill(tf.shape(scores), -np.inf), scores)
        top = tf.math.top_k(scores, k=tf.minimum(tf.reduce_max(k), self.n))
        return {"item_ids": tf.gather(self.item_ids, top.indices), "scores": top.values}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="history"),
                                  tf.TensorSpec([None], tf.int32, name="k"),
                                  tf.TensorSpec([None, None], tf.string, name="exclude")])
    def serving_default(self, history, k, exclude):
        index = self.item_index.lookup(history)
        valid = tf.cast(index >= 0, tf.float32)[..., None]
        query = tf.reduce_sum(tf.gather(self.item_emb, tf.maximum(index, 0)) * valid, axis=1)
        return self._top_k(query, k, exclude)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="user_id"),
                                  tf.TensorSpec([None], tf.int32, name="k"),
                                  tf.TensorSpec([None, None], tf.string, name="exclude")])
    def recommend_user(self, user_id, k, exclude):
        index = self.user_index.lookup(user_id)
        valid = tf.cast(index >= 0, tf.float32)[..., None]
        query = tf.gather(self.user_emb, tf.maximum(index, 0)) * valid
        return self._top_k(query, k, exclude)


class ToyModel(tf.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.w = tf.constant(np.array([1.5, -2.0, 0.25], np.float32) * scale)
        self.b = tf.constant(np.float32(0.1 * scale))

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serving_default(self, x):
        return {"y": tf.reduce_sum(x * self.w, axis=1) + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="data")])
    def bytes_echo(self, data):
        return {"data_bytes": data, "length": tf.strings.length(data),
                "upper": tf.strings.upper(data)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="ms")])
    def sleep(self, ms):
        # SleepDataset sleeps before each GetNext, end of sequence included: 2 x 500 us per ms.
        slept = tf.data.Dataset.range(1).apply(tf_data_testing.sleep(tf.reduce_max(ms) * 500))
        return {"slept_ms": ms + slept.reduce(tf.constant(0, tf.int64), lambda a, b: a + b)}


def save_retrieval(path: str, seed: int) -> None:
    model = RetrievalModel(seed)
    tf.saved_model.save(model, path, signatures={"serving_default": model.serving_default,
                                                 "recommend_user": model.recommend_user})


def save_toy(path: str, scale: float, warmup: bool = False) -> None:
    model = ToyModel(scale)
    tf.saved_model.save(model, path, signatures={"serving_default": model.serving_default,
                                                 "bytes_echo": model.bytes_echo,
                                                 "sleep": model.sleep})
    if warmup:
        os.makedirs(os.path.join(path, "assets.extra"))
        with tf.io.TFRecordWriter(
                os.path.join(path, "assets.extra", "tf_serving_warmup_requests")) as writer:
            for i in range(WARMUP_RECORDS):
                request = predict_pb2.PredictRequest()
                request.model_spec.name = "toy"
                request.model_spec.signature_name = "serving_default"
                request.inputs["x"].CopyFrom(
                    tf.make_tensor_proto(np.full((i + 1, 3), i, np.float32)))
                writer.write(prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                ).SerializeToString())


@pytest.fixture(scope="session")
def model_root(tmp_path_factory) -> str:
    """All SavedModels, built once per session; ``staging/growing-2`` is not served."""
    root = str(tmp_path_factory.mktemp("serving-models"))
    save_retrieval(os.path.join(root, "retrieval", "1"), seed=1)
    save_retrieval(os.path.join(root, "retrieval", "2"), seed=2)
    os.makedirs(os.path.join(root, "retrieval", "tmp-export"))
    save_toy(os.path.join(root, "toy", "1"), scale=1.0, warmup=True)
    save_toy(os.path.join(root, "staging", "growing-1"), scale=1.0)
    save_toy(os.path.join(root, "staging", "growing-2"), scale=2.0)
    return root


def make_config(root: str, growing_base: str) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    retrieval = config.model_config_list.config.add(
        name="retrieval", base_path=os.path.join(root, "retrieval"), model_platform="tensorflow")
    retrieval.model_version_policy.all.SetInParent()
    retrieval.version_labels["stable"] = 1
    retrieval.version_labels["canary"] = 2
    config.model_config_list.config.add(name="toy", base_path=os.path.join(root, "toy"))
    config.model_config_list.config.add(name="growing", base_path=growing_base)
    return config


@pytest.fixture(scope="module")
def server(model_root, tmp_path_factory):
    """A ModelServer on free ports, polling every 0.2 s; a fresh ``growing`` model per module."""
    growing = str(tmp_path_factory.mktemp("growing"))
    shutil.copytree(os.path.join(model_root, "staging", "growing-1"), os.path.join(growing, "1"))
    srv = ModelServer(make_config(model_root, growing), grpc_port=0, rest_port=0,
                      poll_seconds=0.2, host="127.0.0.1")
    srv.start()
    srv.growing_base = growing
    yield srv
    srv.stop()


_loaded: dict[str, object] = {}


@pytest.fixture(scope="session")
def reference(model_root):
    """In-process call of a signature of a SavedModel on disk -> {output: numpy array}."""

    def call(model: str, version: int, signature: str, **inputs) -> dict[str, np.ndarray]:
        path = os.path.join(model_root, model, str(version))
        if path not in _loaded:
            _loaded[path] = tf.saved_model.load(path)
        fn = _loaded[path].signatures[signature]
        result = fn(**{name: tf.constant(value, dtype=fn.structured_input_signature[1][name].dtype)
                       for name, value in inputs.items()})
        return {name: tensor.numpy() for name, tensor in result.items()}

    return call
