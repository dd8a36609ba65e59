"""gRPC API of serving.server: PredictionService and ModelService, TF Serving's stubs."""
from __future__ import annotations

import os
import shutil

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

HISTORY = np.array([["item-3", "item-9", ""], ["item-0", "item-1", "item-2"]], dtype=object)
K = np.array([4, 2], np.int32)
EXCLUDE = np.array([["item-5"], [""]], dtype=object)


@pytest.fixture(scope="module")
def stubs(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
           model_service_pb2_grpc.ModelServiceStub(channel))
    channel.close()


def retrieval_request(signature="serving_default", version=None, label=None, **overrides):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = overrides.pop("model", "retrieval")
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    inputs = {"history": HISTORY, "k": K, "exclude": EXCLUDE}
    inputs.update(overrides)
    for name, value in inputs.items():
        if value is not None:
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def malformed_k_request():
    request = retrieval_request()
    request.inputs["k"].int_val.extend([1, 2, 3])  # 3 values for a [2] tensor
    request.inputs["k"].tensor_content = b""
    return request


def per_row_k(expected, k):
    """The in-process outputs with row i cut to k[i] (the server's contract: "" and -inf after)."""
    out = {name: array.copy() for name, array in expected.items()}
    mask = np.arange(out["item_ids"].shape[1])[None, :] >= np.asarray(k)[:, None]
    out["item_ids"][mask] = b""
    out["scores"][mask] = -np.inf
    return out


def rpc_error(fn, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        fn(request, timeout=30)
    return info.value


def test_predict_equals_the_in_process_signature_call(stubs, reference):
    response = stubs[0].Predict(retrieval_request(), timeout=30)
    expected = per_row_k(reference("retrieval", 2, "serving_default", history=HISTORY, k=K,
                                   exclude=EXCLUDE), K)
    assert (response.model_spec.name, response.model_spec.version.value,
            response.model_spec.signature_name) == ("retrieval", 2, "serving_default")
    assert set(response.outputs) == {"item_ids", "scores"}
    for name in ("item_ids", "scores"):
        actual = tf.make_ndarray(response.outputs[name])
        assert actual.shape == (2, 4) and actual.dtype == expected[name].dtype
        assert np.array_equal(actual, expected[name])
    # Like TF Serving (Tensor::AsProtoField): values in the typed fields, no tensor_content.
    assert len(response.outputs["scores"].float_val) == 8
    assert response.outputs["scores"].tensor_content == b""


def test_predict_recommend_user_version_label_and_output_filter(stubs, reference):
    users = np.array(["user-2", "nobody"], dtype=object)
    request = retrieval_request("recommend_user", label="stable", history=None, user_id=users)
    request.output_filter.append("scores")
    response = stubs[0].Predict(request, timeout=30)
    expected = per_row_k(reference("retrieval", 1, "recommend_user", user_id=users, k=K,
                                   exclude=EXCLUDE), K)
    assert response.model_spec.version.value == 1
    assert list(response.outputs) == ["scores"]
    assert np.array_equal(tf.make_ndarray(response.outputs["scores"]), expected["scores"])


def test_predict_specific_version_and_default_signature(stubs, reference):
    response = stubs[0].Predict(retrieval_request(signature="", version=1), timeout=30)
    expected = per_row_k(reference("retrieval", 1, "serving_default", history=HISTORY, k=K,
                                   exclude=EXCLUDE), K)
    assert response.model_spec.signature_name == "serving_default"
    assert response.model_spec.version.value == 1
    assert np.array_equal(tf.make_ndarray(response.outputs["item_ids"]), expected["item_ids"])


def test_predict_accepts_tensor_content_encoded_inputs(stubs, reference):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy"
    x = np.array([[0.5, -1.0, 2.0]], np.float32)
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(x))
    assert request.inputs["x"].tensor_content  # numeric numpy -> packed bytes
    response = stubs[0].Predict(request, timeout=30)
    assert np.array_equal(tf.make_ndarray(response.outputs["y"]),
                          reference("toy", 1, "serving_default", x=x)["y"])


@pytest.mark.parametrize("request_fn,code,message", [
    (lambda: retrieval_request(model="nope"), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Latest(nope)"),
    (lambda: retrieval_request(version=5), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Specific(retrieval, 5)"),
    (lambda: retrieval_request(label="nope"), grpc.StatusCode.INVALID_ARGUMENT,
     "Unrecognized servable version label: nope"),
    (lambda: retrieval_request(signature="nope"), grpc.StatusCode.FAILED_PRECONDITION,
     'Serving signature key "nope" not found.'),
    (lambda: retrieval_request(exclude=None), grpc.StatusCode.INVALID_ARGUMENT,
     "input size does not match signature: 2!=3 len({history,k}) != len({exclude,history,k})."
     " Sent extra: {}. Missing but required: {exclude}."),
    (lambda: retrieval_request(k=K.astype(np.int64)), grpc.StatusCode.INVALID_ARGUMENT,
     "Expects arg[2] (k) to be int32 but int64 is provided"),
    (lambda: retrieval_request(history=HISTORY[0]), grpc.StatusCode.INVALID_ARGUMENT,
     "input 'history' has shape [3], which is incompatible with the signature's [?,?]"),
    (lambda: malformed_k_request(), grpc.StatusCode.INVALID_ARGUMENT,
     "Cannot parse tensor from proto"),
    (lambda: predict_pb2.PredictRequest(), grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec"),
])
def test_predict_errors_carry_tf_serving_codes(stubs, request_fn, code, message):
    error = rpc_error(stubs[0].Predict, request_fn())
    assert error.code() == code
    assert message in error.details()
    assert stubs[1].GetModelStatus(status_request("toy"), timeout=30).model_version_status


def test_unknown_output_filter_alias(stubs):
    request = retrieval_request()
    request.output_filter.append("nope")
    error = rpc_error(stubs[0].Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == ("output tensor alias not found in signature: nope Outputs "
                               "expected to be in the set {item_ids,scores}.")


def test_get_model_metadata_packs_the_signature_def_map(stubs, model_root):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "retrieval"
    request.model_spec.version.value = 1
    response = stubs[0].GetModelMetadata(request, timeout=30)
    assert (response.model_spec.name, response.model_spec.version.value) == ("retrieval", 1)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(model_root, "retrieval", "1", "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    assert dict(signature_map.signature_def) == dict(saved_model.meta_graphs[0].signature_def)
    inputs = signature_map.signature_def["serving_default"].inputs
    assert {name: info.dtype for name, info in inputs.items()} == {
        "history": tf.string.as_datatype_enum, "k": tf.int32.as_datatype_enum,
        "exclude": tf.string.as_datatype_enum}


def test_get_model_metadata_errors(stubs):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "retrieval"
    error = rpc_error(stubs[0].GetModelMetadata, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "must specify at least one metadata_field" in error.details()
    request.metadata_field.append("signature_def")
    request.model_spec.name = "nope"
    assert rpc_error(stubs[0].GetModelMetadata, request).code() == grpc.StatusCode.NOT_FOUND


def status_request(name, version=None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    return request


def test_get_model_status(stubs):
    response = stubs[1].GetModelStatus(status_request("retrieval"), timeout=30)
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert [(s.version, s.state, s.status.error_code, s.status.error_message)
            for s in response.model_version_status] == [(2, available, 0, ""), (1, available, 0, "")]
    response = stubs[1].GetModelStatus(status_request("retrieval", 1), timeout=30)
    assert [s.version for s in response.model_version_status] == [1]
    error = rpc_error(stubs[1].GetModelStatus, status_request("nope"))
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND,
                                               "Could not find any versions of model nope")


def test_classify_is_unimplemented(stubs):
    error = rpc_error(stubs[0].Classify, classification_pb2.ClassificationRequest())
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED


def test_reload_config_is_off_by_default(stubs, server, model_root):
    config = type(server.config)()
    config.CopyFrom(server.config)
    config.model_config_list.config.add(name="toy2", base_path=os.path.join(model_root, "toy"))
    error = rpc_error(stubs[1].HandleReloadConfigRequest,
                      model_management_pb2.ReloadConfigRequest(config=config))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "--enable_reload_config" in error.details()
    assert rpc_error(stubs[1].GetModelStatus, status_request("toy2")).code() == \
        grpc.StatusCode.NOT_FOUND
    empty = type(server.config)()
    empty.model_config_list.SetInParent()  # would unload every model
    error = rpc_error(stubs[1].HandleReloadConfigRequest,
                      model_management_pb2.ReloadConfigRequest(config=empty))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert stubs[1].GetModelStatus(status_request("toy"), timeout=30).model_version_status


@pytest.fixture()
def admin_server(model_root):
    from serving.security import Security
    from serving.server import ModelServer

    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name="toy", base_path=os.path.join(model_root, "toy"))
    config.model_config_list.config.add(name="retrieval",
                                        base_path=os.path.join(model_root, "retrieval"))
    with ModelServer(config, grpc_port=0, rest_port=None, poll_seconds=0, host="127.0.0.1",
                     security=Security(enable_reload_config=True)) as srv:
        channel = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}")
        srv.stubs = (prediction_service_pb2_grpc.PredictionServiceStub(channel),
                     model_service_pb2_grpc.ModelServiceStub(channel))
        yield srv
        channel.close()


def test_enabled_reload_only_loads_under_the_configured_base_paths(admin_server, model_root,
                                                                   tmp_path):
    stubs = admin_server.stubs
    outside = tmp_path / "elsewhere"
    shutil.copytree(os.path.join(model_root, "toy"), outside)
    os.symlink(outside, os.path.join(model_root, "toy-link"))  # a link out of the base paths
    for path in (str(outside), os.path.join(model_root, "toy", "..", "staging"),
                 os.path.join(model_root, "toy-link")):
        config = type(admin_server.config)()
        config.CopyFrom(admin_server.config)
        config.model_config_list.config.add(name="evil", base_path=path)
        error = rpc_error(stubs[1].HandleReloadConfigRequest,
                          model_management_pb2.ReloadConfigRequest(config=config))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, path
        assert "not under an allowed model base path" in error.details()
    os.remove(os.path.join(model_root, "toy-link"))
    assert rpc_error(stubs[1].GetModelStatus, status_request("evil")).code() == \
        grpc.StatusCode.NOT_FOUND


def test_reload_config_adds_and_removes_models(admin_server, model_root):
    server, stubs = admin_server, admin_server.stubs
    original = type(server.config)()
    original.CopyFrom(server.config)
    new_config = type(server.config)()
    new_config.CopyFrom(original)
    # Another name for a directory under a configured base path is allowed.
    new_config.model_config_list.config.add(name="toy2", base_path=os.path.join(model_root, "toy"))
    request = model_management_pb2.ReloadConfigRequest(config=new_config)
    stubs[1].HandleReloadConfigRequest(request, timeout=60)
    assert stubs[1].GetModelStatus(status_request("toy2"), timeout=30).model_version_status[0].state \
        == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    stubs[1].HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=original),
                                       timeout=60)
    assert rpc_error(stubs[1].GetModelStatus, status_request("toy2")).code() == \
        grpc.StatusCode.NOT_FOUND
