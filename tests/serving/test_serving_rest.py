"""REST API of serving.server against tiny SavedModels (see conftest.py)."""
from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import shutil
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving.models import ModelRegistry
from serving.servable import Servable
from serving.server import ModelServer

OK_STATUS = {"error_code": "OK", "error_message": ""}
HISTORY = [["item-1", "item-4"], ["item-7", ""]]
EXCLUDE = [["item-2"], [""]]


def call(server, method: str, path: str, body=None) -> tuple[int, dict]:
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}{path}", data=data,
                                     method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def retrieval_reference(reference, version, history=HISTORY, k=(3, 3), exclude=EXCLUDE):
    return reference("retrieval", version, "serving_default", history=history,
                     k=np.array(k, np.int32), exclude=exclude)


def assert_alive(server):
    assert call(server, "GET", "/v1/models/toy") == (200, {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": OK_STATUS}]})


def test_status_lists_versions_newest_first_and_ignores_non_numeric_dirs(server):
    assert call(server, "GET", "/v1/models/retrieval") == (200, {"model_version_status": [
        {"version": "2", "state": "AVAILABLE", "status": OK_STATUS},
        {"version": "1", "state": "AVAILABLE", "status": OK_STATUS}]})


def test_status_of_one_version(server):
    assert call(server, "GET", "/v1/models/retrieval/versions/1") == (200, {
        "model_version_status": [{"version": "1", "state": "AVAILABLE", "status": OK_STATUS}]})
    assert call(server, "GET", "/v1/models/retrieval/versions/7") == (
        404, {"error": "Could not find version 7 of model retrieval"})


def test_status_with_a_label_reports_all_versions_like_tf_serving(server):
    code, body = call(server, "GET", "/v1/models/retrieval/labels/stable")
    assert code == 200
    assert [v["version"] for v in body["model_version_status"]] == ["2", "1"]


def test_metadata_is_the_signature_def_map_of_the_saved_model(server, model_root):
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(model_root, "toy", "1", "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    expected = {"signature_def": {
        name: json_format.MessageToDict(sig, including_default_value_fields=True,
                                        preserving_proto_field_name=True)
        for name, sig in saved_model.meta_graphs[0].signature_def.items()}}
    code, body = call(server, "GET", "/v1/models/toy/metadata")
    assert code == 200
    assert body["model_spec"] == {"name": "toy", "version": "1", "signature_name": ""}
    assert body["metadata"]["signature_def"] == expected
    x = body["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["x"]
    assert x["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in x["tensor_shape"]["dim"]] == ["-1", "3"]


@pytest.mark.parametrize("suffix,version", [("", "2"), ("/versions/1", "1"),
                                            ("/labels/stable", "1"), ("/labels/canary", "2")])
def test_metadata_version_and_label_routing(server, suffix, version):
    code, body = call(server, "GET", f"/v1/models/retrieval{suffix}/metadata")
    assert code == 200 and body["model_spec"]["version"] == version
    assert set(body["metadata"]["signature_def"]["signature_def"]) == {
        "serving_default", "recommend_user", "__saved_model_init_op"}


def test_predict_row_format_single_output_is_a_list_of_values(server, reference):
    x = [[1.0, 2.0, 3.0], [0.5, 0.25, -1.0]]
    code, body = call(server, "POST", "/v1/models/toy:predict", {"instances": x})
    assert code == 200 and list(body) == ["predictions"]
    expected = reference("toy", 1, "serving_default", x=np.array(x, np.float32))["y"]
    assert np.array_equal(np.array(body["predictions"], np.float32), expected)
    assert isinstance(body["predictions"][0], float)


def test_predict_float_text_is_shortest_round_trip_form(server):
    request = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}/v1/models/toy:predict",
                                     data=b'{"instances": [[1, 2, 3], [2, 1, 0]]}', method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"] == "application/json"
        text = response.read().decode()
    # 1.5 - 4 + 0.75 + 0.1 = -1.65 and 3 - 2 + 0 + 0.1 = 1.1 (float32), as TF Serving writes them.
    assert text.replace("\n", "") == '{"predictions": [-1.65,1.1]}'


def test_predict_columnar_single_output_is_the_bare_list(server, reference):
    x = [[1.0, 2.0, 3.0]]
    expected = reference("toy", 1, "serving_default", x=np.array(x, np.float32))["y"]
    for inputs in (x, {"x": x}):
        code, body = call(server, "POST", "/v1/models/toy:predict", {"inputs": inputs})
        assert code == 200 and list(body) == ["outputs"]
        assert np.array_equal(np.array(body["outputs"], np.float32), expected)


def test_predict_row_format_multi_output_is_a_list_of_objects(server, reference):
    instances = [{"history": h, "k": 3, "exclude": e} for h, e in zip(HISTORY, EXCLUDE)]
    code, body = call(server, "POST", "/v1/models/retrieval:predict",
                      {"signature_name": "serving_default", "instances": instances})
    assert code == 200
    expected = retrieval_reference(reference, 2)
    assert [row["item_ids"] for row in body["predictions"]] == [
        [i.decode() for i in row] for row in expected["item_ids"]]
    assert np.array_equal(np.array([row["scores"] for row in body["predictions"]], np.float32),
                          expected["scores"])


def test_predict_columnar_multi_output_is_an_object(server, reference):
    code, body = call(server, "POST", "/v1/models/retrieval:predict", {
        "inputs": {"history": HISTORY, "k": [3, 3], "exclude": EXCLUDE}})
    assert code == 200 and set(body["outputs"]) == {"item_ids", "scores"}
    expected = retrieval_reference(reference, 2)
    assert body["outputs"]["item_ids"] == expected["item_ids"].astype(str).tolist()
    assert np.array_equal(np.array(body["outputs"]["scores"], np.float32), expected["scores"])


def test_b64_inputs_and_bytes_outputs(server):
    code, body = call(server, "POST", "/v1/models/toy:predict", {
        "signature_name": "bytes_echo", "instances": [{"b64": "/wBh"}, "w\u00f6rld"]})
    assert code == 200
    assert body == {"predictions": [
        {"data_bytes": {"b64": "/wBh"}, "length": 3, "upper": "\ufffd\x00A"},
        {"data_bytes": {"b64": "d8O2cmxk"}, "length": 6, "upper": "W\u00f6RLD"}]}


@pytest.mark.parametrize("suffix,version", [("", 2), ("/versions/1", 1), ("/versions/2", 2),
                                            ("/labels/stable", 1), ("/labels/canary", 2)])
def test_version_and_label_routing(server, reference, suffix, version):
    code, body = call(server, "POST", f"/v1/models/retrieval{suffix}:predict", {
        "inputs": {"history": HISTORY, "k": [3, 3], "exclude": EXCLUDE}})
    assert code == 200
    expected = retrieval_reference(reference, version)
    other = retrieval_reference(reference, 3 - version)
    assert np.array_equal(np.array(body["outputs"]["scores"], np.float32), expected["scores"])
    assert not np.array_equal(expected["scores"], other["scores"])


RETRIEVAL_BODY = {"inputs": {"history": HISTORY, "k": [3, 3], "exclude": EXCLUDE}}


@pytest.mark.parametrize("method,path,body,code,message", [
    ("POST", "/v1/models/nope:predict", RETRIEVAL_BODY, 404,
     "Servable not found for request: Latest(nope)"),
    ("POST", "/v1/models/retrieval/versions/9:predict", RETRIEVAL_BODY, 404,
     "Servable not found for request: Specific(retrieval, 9)"),
    ("POST", "/v1/models/retrieval/labels/nope:predict", RETRIEVAL_BODY, 400,
     "Unrecognized servable version label: nope"),
    ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
    ("GET", "/v1/models/nope/metadata", None, 404, "Servable not found for request: Latest(nope)"),
    ("POST", "/v1/models/retrieval:predict", b"{not json", 400, "JSON Parse error"),
    ("POST", "/v1/models/retrieval:predict", b"", 400, "JSON Parse error: The document is empty"),
    ("POST", "/v1/models/retrieval:predict", {"inputs": {"history": HISTORY, "k": [3, 3]}}, 400,
     "Missing named input: exclude in 'inputs' object."),
    ("POST", "/v1/models/retrieval:predict",
     {"inputs": {"history": HISTORY, "k": ["3", "3"], "exclude": EXCLUDE}}, 400,
     "JSON Value: \"3\" Type: String is not of expected type: int32"),
    ("POST", "/v1/models/retrieval:predict",
     {"inputs": {"history": ["item-1"], "k": [3], "exclude": [[""]]}}, 400,
     "input 'history' has shape [1], which is incompatible with the signature's [?,?]"),
    ("POST", "/v1/models/retrieval:predict", dict(RETRIEVAL_BODY, signature_name="nope"), 400,
     "Serving signature name: \"nope\" not found in signature def"),
    ("POST", "/v1/models/toy:predict", {"instances": [[1.0, 2.0]]}, 400,
     "input 'x' has shape [1,2], which is incompatible with the signature's [?,3]"),
    ("POST", "/v1/models/toy:classify", {"examples": [{}]}, 501, ":classify API is not supported"),
    ("GET", "/v1/models/toy/nope", None, 400, "Malformed request: GET /v1/models/toy/nope"),
    ("GET", "/v2/models/toy", None, 404, "Not found: GET /v2/models/toy"),
])
def test_errors_use_tf_serving_codes_and_the_server_survives(server, method, path, body, code,
                                                              message):
    status, answer = call(server, method, path, body)
    assert status == code
    assert list(answer) == ["error"] and message in answer["error"]
    assert_alive(server)


def test_concurrent_requests_are_all_answered_correctly(server, reference):
    histories = [[[f"item-{i % 12}", f"item-{(i * 5) % 12}"]] for i in range(32)]
    versions = [1 + i % 2 for i in range(32)]

    def one(i):
        return call(server, "POST", f"/v1/models/retrieval/versions/{versions[i]}:predict", {
            "inputs": {"history": histories[i], "k": [4], "exclude": [[""]]}})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(32)))
    for i, (code, body) in enumerate(answers):
        expected = reference("retrieval", versions[i], "serving_default", history=histories[i],
                             k=np.array([4], np.int32), exclude=[[""]])
        assert code == 200
        assert body["outputs"]["item_ids"] == expected["item_ids"].astype(str).tolist()
        assert np.array_equal(np.array(body["outputs"]["scores"], np.float32),
                              expected["scores"])


def test_warmup_records_were_replayed_at_load(server, model_root, caplog):
    assert server.registry.servable("toy").warmup_records == 3
    assert server.registry.servable("retrieval", 1).warmup_records == 0
    with caplog.at_level(logging.INFO, logger="serving.models"):
        assert Servable("toy", 1, os.path.join(model_root, "toy", "1")).load().warmup_records == 3
    assert "Number of warmup records read: 3." in caplog.text


def test_failing_warmup_fails_the_load_with_the_error_in_the_status(model_root, tmp_path):
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    import tensorflow as tf

    version_dir = tmp_path / "bad" / "1"
    shutil.copytree(os.path.join(model_root, "staging", "growing-1"), version_dir)
    os.makedirs(version_dir / "assets.extra")
    request = predict_pb2.PredictRequest()
    request.inputs["z"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 3), np.float32)))
    with tf.io.TFRecordWriter(str(version_dir / "assets.extra" / "tf_serving_warmup_requests")) as w:
        w.write(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString())
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name="bad", base_path=str(tmp_path / "bad"))
    registry = ModelRegistry(config)
    registry.poll()
    [(version, state)] = registry.status("bad")
    assert (version, state.state, state.error_code.name) == (1, 50, "INVALID_ARGUMENT")
    assert "input tensor alias not found in signature: z" in state.error_message


def test_rest_api_timeout_answers_504(model_root):
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name="toy", base_path=os.path.join(model_root, "toy"))
    with ModelServer(config, grpc_port=0, rest_port=0, poll_seconds=0, host="127.0.0.1",
                     rest_timeout_ms=300) as slow_server:
        code, body = call(slow_server, "POST", "/v1/models/toy:predict",
                          {"signature_name": "sleep", "inputs": [1500]})
        assert (code, body) == (504, {"error": "Deadline Exceeded"})
        # Other requests are still served while the slow call runs on.
        assert call(slow_server, "POST", "/v1/models/toy:predict",
                    {"inputs": [[2.0, 1.0, 0.0]]}) == (200, {"outputs": [1.1]})


def test_polling_loads_a_new_version_and_unloads_the_old_one(server, model_root, reference):
    assert call(server, "GET", "/v1/models/growing") == (200, {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": OK_STATUS}]})
    staged = os.path.join(server.growing_base, ".incoming-2")
    shutil.copytree(os.path.join(model_root, "staging", "growing-2"), staged)
    os.rename(staged, os.path.join(server.growing_base, "2"))
    expected_status = {"model_version_status": [
        {"version": "2", "state": "AVAILABLE", "status": OK_STATUS},
        {"version": "1", "state": "END", "status": OK_STATUS}]}
    deadline = time.monotonic() + 20
    while call(server, "GET", "/v1/models/growing")[1] != expected_status:
        assert time.monotonic() < deadline, call(server, "GET", "/v1/models/growing")
        time.sleep(0.1)
    x = [[1.0, 2.0, 3.0]]
    code, body = call(server, "POST", "/v1/models/growing:predict", {"instances": x})
    expected = reference("staging", "growing-2", "serving_default", x=np.array(x, np.float32))
    assert code == 200 and np.array_equal(np.array(body["predictions"], np.float32),
                                          expected["y"])
    assert call(server, "POST", "/v1/models/growing/versions/1:predict", {"instances": x})[0] == 404


def test_a_port_in_use_fails_start_cleanly(server, model_root):
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name="toy", base_path=os.path.join(model_root, "toy"))
    with pytest.raises(OSError, match="could not bind the gRPC port 127.0.0.1:"):
        ModelServer(config, grpc_port=server.grpc_port, rest_port=0, poll_seconds=0,
                    host="127.0.0.1").start()
    with pytest.raises(OSError):
        ModelServer(config, grpc_port=0, rest_port=server.rest_port, poll_seconds=0,
                    host="127.0.0.1").start()
    assert_alive(server)
