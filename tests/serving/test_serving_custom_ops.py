"""SavedModels with ScaNN / TF Text ops, and the server process entry point (main)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import scann
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_serving.config import model_server_config_pb2

from serving.client import RecommenderClient
from serving.servable import import_custom_ops
from serving.server import ModelServer

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
DB = np.random.default_rng(3).normal(size=(40, 4)).astype(np.float32)


class ScannModel(tf.Module):
    def __init__(self):
        super().__init__()
        searcher = scann.scann_ops.builder(DB, 5, "dot_product").score_brute_force().build()
        self.state = searcher.serialize_to_module()

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="query")])
    def serving_default(self, query):
        indices, scores = scann.scann_ops.searcher_from_module(self.state).search_batched(query)
        return {"indices": indices, "scores": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def normalize(self, text):
        return {"normalized": tf_text.normalize_utf8(text, "NFKC")}


@pytest.fixture(scope="module")
def scann_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("scann-models")
    model = ScannModel()
    tf.saved_model.save(model, str(root / "scann" / "1"),
                        signatures={"serving_default": model.serving_default,
                                    "normalize": model.normalize},
                        options=tf.saved_model.SaveOptions(namespace_whitelist=["Scann"]))
    return root


def test_custom_op_libraries_are_imported():
    assert import_custom_ops() == {"scann": None, "tensorflow_text": None}


def test_scann_and_tf_text_saved_model_is_served(scann_root):
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name="scann", base_path=str(scann_root / "scann"))
    with ModelServer(config, grpc_port=0, rest_port=0, poll_seconds=0,
                     host="127.0.0.1") as server:
        loaded = tf.saved_model.load(str(scann_root / "scann" / "1"))
        expected = loaded.signatures["serving_default"](query=tf.constant(DB[:3]))
        for protocol, port in (("rest", server.rest_port), ("grpc", server.grpc_port)):
            client = RecommenderClient(f"127.0.0.1:{port}", protocol, model_name="scann")
            out = client.predict({"query": DB[:3]})
            assert np.array_equal(out["indices"], expected["indices"].numpy())
            assert np.array_equal(out["scores"], expected["scores"].numpy())
            assert out["indices"].shape == (3, 5) and out["scores"].dtype == np.float32
            normalized = client.predict({"text": ["\ufb01x"]}, signature_name="normalize")
            assert normalized["normalized"].tolist() == ["fix"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_main_serves_logs_ports_and_explains_missing_scann(scann_root, model_root, tmp_path):
    """main(argv) in a fresh process where `import scann` fails: the ScaNN model fails to
    load with an explanation, the other model is served, SIGTERM stops the server."""
    config = tmp_path / "models.config"
    config.write_text(f'model_config_list {{ config {{ name: "scann" base_path: '
                      f'"{scann_root / "scann"}" }} config {{ name: "toy" base_path: "toy" }} }}')
    os.symlink(os.path.join(model_root, "toy"), tmp_path / "toy")  # relative base path
    rest_port = _free_port()
    code = ("import sys; sys.modules['scann'] = None; from serving.server import main; "
            "sys.exit(main(sys.argv[1:]))")
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", PYTHONPATH=REPO)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, f"--model_config_file={config}", "--port=0",
         f"--rest_api_port={rest_port}", "--host=127.0.0.1",
         "--file_system_poll_wait_seconds=0"],
        cwd=str(tmp_path), env=env, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 120
        while not any("Exporting HTTP/REST API at:" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            lines.append(proc.stderr.readline())
        log = "".join(lines)
        assert "Could not import scann" in log
        assert "Running gRPC ModelServer at 127.0.0.1:" in log
        assert f"Exporting HTTP/REST API at:127.0.0.1:{rest_port}" in log
        with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/v1/models/scann") as r:
            [status] = json.loads(r.read())["model_version_status"]
        assert status["state"] == "END" and status["status"]["error_code"] != "OK"
        assert "Op type not registered 'Scann>" in status["status"]["error_message"]
        assert "failed to import" in status["status"]["error_message"]
        client = RecommenderClient(f"127.0.0.1:{rest_port}", model_name="toy")
        assert client.predict({"x": [[2.0, 1.0, 0.0]]})["y"].tolist() == [np.float32(1.1)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
