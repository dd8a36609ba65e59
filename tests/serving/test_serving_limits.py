"""Issue 13 §2: bounded requests. Bad inputs get the same code over REST and gRPC."""
from __future__ import annotations

import json
import os
import socket

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from serving.limits import Limits
from serving.server import ModelServer

LIMITS = Limits(max_request_bytes=64 * 1024, max_tensor_elements=5000, max_batch_size=8,
                max_list_length=20, max_k=6)


@pytest.fixture(scope="module")
def limited(model_root):
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name="retrieval",
                                        base_path=os.path.join(model_root, "retrieval"))
    config.model_config_list.config.add(name="toy", base_path=os.path.join(model_root, "toy"))
    with ModelServer(config, grpc_port=0, rest_port=0, poll_seconds=0, limits=LIMITS) as srv:
        channel = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}")
        srv.stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        yield srv
        channel.close()


def rest(server, path, body, headers=None):
    """POST over a raw socket (so oversized or lying requests can be sent); (status, json)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = {"Content-Length": str(len(data)), "Content-Type": "application/json",
            **(headers or {})}
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as sock:
        sock.sendall((f"POST {path} HTTP/1.1\r\nHost: x\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n").encode())
        try:
            sock.sendall(data)
        except OSError:  # the server answered and closed before reading it all
            pass
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        head_text, _, rest_bytes = answer.partition(b"\r\n\r\n")
        length = int([line.split(b":")[1] for line in head_text.split(b"\r\n")
                      if line.lower().startswith(b"content-length")][0])
        while len(rest_bytes) < length:
            rest_bytes += sock.recv(65536)
    return int(head_text.split(b" ")[1]), json.loads(rest_bytes)


def grpc_predict(server, model, signature, **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(value if isinstance(value, type(request.inputs[name]))
                                      else tf.make_tensor_proto(value))
    return server.stub.Predict(request, timeout=30)


def grpc_error(server, model, signature, **inputs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        grpc_predict(server, model, signature, **inputs)
    return info.value


def retrieval(history, k, exclude):
    return {"history": np.array(history, dtype=object), "k": np.array(k, np.int32),
            "exclude": np.array(exclude, dtype=object)}


H2 = [["item-1", "item-2"], ["item-3", ""]]
E2 = [[""], [""]]
CASES = {
    "k zero": (retrieval(H2, [0, 3], E2), 400, "INVALID_ARGUMENT",
               "k must be between 1 and 6 (--max_k); got 0 in row 0"),
    "k negative": (retrieval(H2, [3, -1], E2), 400, "INVALID_ARGUMENT",
                   "k must be between 1 and 6 (--max_k); got -1 in row 1"),
    "k above max_k": (retrieval(H2, [3, 7], E2), 400, "INVALID_ARGUMENT", "got 7 in row 1"),
    "k rows differ from history rows": (retrieval(H2, [3], E2), 400, "INVALID_ARGUMENT",
                                        "inputs must have the same batch size (dimension 0): "
                                        "exclude has 2, history has 2, k has 1"),
    "exclude rows differ": (retrieval(H2, [3, 3], [[""]]), 400, "INVALID_ARGUMENT",
                            "exclude has 1, history has 2, k has 2"),
    "history too long": (retrieval([[f"item-{i % 12}" for i in range(21)]], [3], [[""]]), 400,
                         "INVALID_ARGUMENT", "input 'history' has 21 items per row, more than "
                                             "the server's limit of 20 (--max_list_length)"),
    "exclude too long": (retrieval([["item-1"]], [3], [[""] * 21]), 400, "INVALID_ARGUMENT",
                         "input 'exclude' has 21 items per row"),
    "batch too large": (retrieval([["item-1"]] * 9, [3] * 9, [[""]] * 9), 400,
                        "INVALID_ARGUMENT", "Task size 9 is larger than maximum batch size 8"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_inputs_are_refused_alike_over_rest_and_grpc(limited, case):
    inputs, http_code, grpc_code, message = CASES[case]
    body = {"inputs": {name: array.tolist() for name, array in inputs.items()}}
    body["inputs"] = {n: [[x.decode() if isinstance(x, bytes) else x for x in row]
                          if isinstance(row, list) else row for row in v]
                      for n, v in body["inputs"].items()}
    status, answer = rest(limited, "/v1/models/retrieval:predict", body)
    assert (status, list(answer)) == (http_code, ["error"])
    assert message in answer["error"]
    error = grpc_error(limited, "retrieval", "serving_default", **inputs)
    assert error.code().name == grpc_code
    assert message in error.details()


def test_extra_inputs_are_refused_alike_over_rest_and_grpc(limited):
    inputs = retrieval(H2, [3, 3], E2)
    body = {"inputs": {"history": H2, "k": [3, 3], "exclude": E2, "bogus": [1, 2]}}
    status, answer = rest(limited, "/v1/models/retrieval:predict", body)
    assert status == 400
    message = "input tensor alias not found in signature: bogus."
    assert message in answer["error"]
    error = grpc_error(limited, "retrieval", "serving_default", bogus=np.array([1, 2]), **inputs)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input size does not match signature" in error.details() or message in error.details()


def test_per_row_k_is_honoured_over_both_protocols(limited, reference):
    inputs = retrieval(H2, [1, 4], E2)
    expected = reference("retrieval", 2, "serving_default", **inputs)
    status, answer = rest(limited, "/v1/models/retrieval:predict",
                          {"inputs": {"history": H2, "k": [1, 4], "exclude": E2}})
    assert status == 200
    ids = answer["outputs"]["item_ids"]
    assert ids[0] == [expected["item_ids"][0][0].decode(), "", "", ""]
    assert ids[1] == [i.decode() for i in expected["item_ids"][1][:4]]
    assert answer["outputs"]["scores"][0][1:] == ["-Infinity"] * 3 or \
        all(s == float("-inf") for s in answer["outputs"]["scores"][0][1:])
    response = grpc_predict(limited, "retrieval", "serving_default", **inputs)
    got = tf.make_ndarray(response.outputs["item_ids"])
    assert got.shape == (2, 4) and list(got[0]) == [expected["item_ids"][0][0], b"", b"", b""]
    assert np.isneginf(tf.make_ndarray(response.outputs["scores"])[0, 1:]).all()


def test_too_many_tensor_elements_is_413_and_resource_exhausted(limited):
    x = np.zeros((2000, 3), np.float32)  # 6000 elements > 5000, but within 64 KiB on the wire
    status, answer = rest(limited, "/v1/models/toy:predict", {"instances": [[0, 0, 0]] * 2000})
    assert status == 413 and "6,000 tensor elements" in answer["error"]
    error = grpc_error(limited, "toy", "serving_default", x=x)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max_tensor_elements" in error.details()


def test_a_tiny_grpc_request_declaring_a_huge_shape_is_refused_before_allocation(limited):
    proto = tf.make_tensor_proto(np.float32(0.0))
    proto.tensor_shape.Clear()
    proto.tensor_shape.dim.add(size=10**8 // 3)
    proto.tensor_shape.dim.add(size=3)  # one value, declared as [33333333, 3]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy"
    request.inputs["x"].CopyFrom(proto)
    assert request.ByteSize() < 120
    with pytest.raises(grpc.RpcError) as info:
        limited.stub.Predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "declares 99,999,999 elements" in info.value.details()


def test_oversized_body_and_message_are_413_and_resource_exhausted(limited):
    body = b'{"instances": [' + b"[0.0, 0.0, 0.0]," * 5000 + b"[0,0,0]]}"  # ~80 KiB
    status, answer = rest(limited, "/v1/models/toy:predict", body)
    assert status == 413 and "--max_request_bytes" in answer["error"]
    error = grpc_error(limited, "toy", "serving_default", x=np.zeros((6000, 3), np.float32))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # 72 KiB > 64 KiB message limit


def test_a_lying_content_length_is_413_without_reading_the_body(limited):
    status, answer = rest(limited, "/v1/models/toy:predict", b"{}",
                          headers={"Content-Length": str(10**12)})
    assert status == 413 and "1,000,000,000,000 bytes" in answer["error"]
    status, _ = rest(limited, "/v1/models/toy:predict", {"inputs": [[1.0, 2.0, 3.0]]})
    assert status == 200


@pytest.mark.parametrize("field,value", [("max_k", 0), ("max_batch_size", -1),
                                         ("max_request_bytes", True)])
def test_limits_must_be_positive_ints(field, value):
    with pytest.raises(ValueError, match=field):
        Limits(**{field: value})


def test_limit_flags_reach_the_server(tmp_path):
    from serving import server as server_module

    parser = server_module.build_arg_parser()
    args = parser.parse_args([f"--model_base_path={tmp_path}", "--max_k=50",
                              "--max_request_bytes=1000", "--max_tensor_elements=10",
                              "--max_batch_size=2", "--max_list_length=3"])
    server = server_module.server_from_args(args)
    assert server.limits == Limits(1000, 10, 2, 3, 50)
    assert server.host == "127.0.0.1"
