"""JSON <-> tensor and TensorProto <-> numpy rules of serving.codec (no server involved)."""
from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
import tensorflow as tf

from serving import codec, tensors
from serving.status import ServerError

RETRIEVAL_INPUTS = {"history": codec.DT_STRING, "k": codec.DT_INT32, "exclude": codec.DT_STRING}


def parse(body, infos=RETRIEVAL_INPUTS):
    text = body if isinstance(body, str) else json.dumps(body)
    return codec.parse_predict_request(text.encode("utf-8"), lambda signature: infos)


def parse_error(body, infos=RETRIEVAL_INPUTS) -> ServerError:
    with pytest.raises(ServerError) as info:
        parse(body, infos)
    return info.value


@pytest.mark.parametrize("value,bits,text", [
    (0.1, 32, "0.1"), (1.0, 32, "1.0"), (-2.0, 32, "-2.0"), (9000000.0, 32, "9e+06"),
    (0.123456789, 32, "0.123456791"), (3e-05, 32, "3e-05"), (0.1, 64, "0.1"),
    (1 / 3, 64, "0.33333333333333331"), (float("nan"), 32, "NaN"),
    (float("inf"), 32, "Infinity"), (float("-inf"), 64, "-Infinity"),
])
def test_decimal_formatting_follows_tf_serving(value, bits, text):
    if bits == 32:
        value = float(np.float32(value))
    assert codec._decimal(value, bits) == text


def test_float32_text_round_trips_exactly():
    values = np.random.default_rng(0).normal(size=200).astype(np.float32)
    text = codec.array_to_json_text(values)
    assert np.array_equal(np.asarray(json.loads(text), dtype=np.float32), values)


def test_row_response_single_output_is_a_list_of_values():
    text = codec.format_predict_response({"y": np.array([1.0, 2.5], np.float32)}, codec.ROW)
    assert json.loads(text) == {"predictions": [1.0, 2.5]}


def test_row_response_multi_output_is_a_list_of_objects():
    outputs = {"item_ids": np.array([[b"a", b"b"], [b"c", b"d"]], dtype=object),
               "scores": np.array([[0.5, 0.25], [1.0, 0.0]], np.float32)}
    assert json.loads(codec.format_predict_response(outputs, codec.ROW)) == {"predictions": [
        {"item_ids": ["a", "b"], "scores": [0.5, 0.25]},
        {"item_ids": ["c", "d"], "scores": [1.0, 0.0]}]}


def test_columnar_response_and_bytes_suffix():
    outputs = {"data_bytes": np.array([b"\xff\x00"], dtype=object),
               "text": np.array(["h\u00e9".encode("utf-8")], dtype=object),
               "n": np.array([3], np.int64), "ok": np.array([True])}
    assert json.loads(codec.format_predict_response(outputs, codec.COLUMNAR)) == {"outputs": {
        "data_bytes": [{"b64": "/wA="}], "text": ["h\u00e9"], "n": [3], "ok": [True]}}
    single = codec.format_predict_response({"y": np.array([[1, 2]], np.int32)}, codec.COLUMNAR)
    assert json.loads(single) == {"outputs": [[1, 2]]}


def test_row_response_errors():
    with pytest.raises(ServerError, match="Tensor name: s has no shape information"):
        codec.format_predict_response({"s": np.float32(1)}, codec.ROW)
    with pytest.raises(ServerError, match="Tensor name: b has inconsistent batch size: 3 "
                                          "expecting: 2"):
        codec.format_predict_response({"a": np.zeros(2), "b": np.zeros(3)}, codec.ROW)


def test_parse_columnar_and_row_give_the_same_tensors():
    sig, columnar, fmt = parse({"signature_name": "s", "inputs": {
        "history": [["a", "b"], ["c", ""]], "k": [2, 3], "exclude": [[""], ["a"]]}})
    assert (sig, fmt) == ("s", codec.COLUMNAR)
    _, rows, fmt = parse({"instances": [{"history": ["a", "b"], "k": 2, "exclude": [""]},
                                        {"history": ["c", ""], "k": 3, "exclude": ["a"]}]})
    assert fmt == codec.ROW
    for arrays in (columnar, rows):
        assert arrays["k"].dtype == np.int32 and arrays["k"].tolist() == [2, 3]
        assert arrays["history"].tolist() == [[b"a", b"b"], [b"c", b""]]
        assert arrays["exclude"].tolist() == [[b""], [b"a"]]


def test_parse_plain_values_and_b64_for_a_single_input():
    infos = {"data": codec.DT_STRING}
    _, arrays, _ = parse({"instances": [{"b64": "aGk="}, "yo"]}, infos)
    assert arrays["data"].tolist() == [b"hi", b"yo"]
    _, arrays, _ = parse({"inputs": [[1, 2.5]]}, {"x": codec.DT_FLOAT})
    assert arrays["x"].dtype == np.float32 and arrays["x"].tolist() == [[1.0, 2.5]]


@pytest.mark.parametrize("body,infos,message", [
    ("", RETRIEVAL_INPUTS, "JSON Parse error: The document is empty"),
    ("{\"inputs\": [1,", RETRIEVAL_INPUTS, "JSON Parse error"),
    ([1], RETRIEVAL_INPUTS, "Is not object"),
    ({"signature_name": 3, "inputs": {}}, RETRIEVAL_INPUTS,
     "'signature_name' key must be a string value."),
    ({"instances": [], }, RETRIEVAL_INPUTS, "No values in 'instances' array"),
    ({"instances": [1], "inputs": [1]}, RETRIEVAL_INPUTS,
     "expecting only one of 'inputs' or 'instances' keys to exist"),
    ({"foo": 1}, RETRIEVAL_INPUTS, "Missing 'inputs' or 'instances' key"),
    ({"inputs": {"history": [["a"]], "k": [1]}}, RETRIEVAL_INPUTS,
     "Missing named input: exclude in 'inputs' object."),
    ({"inputs": {"history": [["a"]], "k": [1.5], "exclude": [[""]]}}, RETRIEVAL_INPUTS,
     "JSON Value: 1.5 Type: Number is not of expected type: int32"),
    ({"inputs": {"history": [["a"]], "k": [True], "exclude": [[""]]}}, RETRIEVAL_INPUTS,
     "JSON Value: true Type: True is not of expected type: int32"),
    ({"inputs": {"history": [[1]], "k": [1], "exclude": [[""]]}}, RETRIEVAL_INPUTS,
     "JSON Value: 1 Type: Number is not of expected type: string"),
    ({"inputs": {"history": [["a", "b"], ["c"]], "k": [1, 1], "exclude": [[""], [""]]}},
     RETRIEVAL_INPUTS, "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
    ({"inputs": {"history": [["a"], "b"], "k": [1, 1], "exclude": [[""], [""]]}},
     RETRIEVAL_INPUTS, "JSON Value: \"b\" found at incorrect level: 2 in the JSON DOM. "
                       "Expected at level: 2"),
    ({"instances": [{"history": ["a"], "k": 1}]}, RETRIEVAL_INPUTS,
     "Failed to process element: 0 of 'instances' list. JSON object: "
     "{\"history\":[\"a\"],\"k\":1} keys must be equal to: exclude,history,k"),
    ({"instances": [{"history": ["a"], "k": 1, "exclude": [""]},
                    {"history": ["a", "b"], "k": 1, "exclude": [""]}]}, RETRIEVAL_INPUTS,
     "Failed to process element: 1 key: history of 'instances' list. Error: "
     "INVALID_ARGUMENT: Expecting tensor size: 1 but got: 2"),
    ({"instances": [[1, 2]]}, RETRIEVAL_INPUTS,
     "instances is a plain list, but expecting list of objects"),
    ({"inputs": [[16777217]]}, {"x": codec.DT_FLOAT},
     "Cannot convert JSON value: 16777217 to float without loss of precision."),
    ({"inputs": [{"b64": "%%%"}]}, {"data": codec.DT_STRING}, "Unable to base64 decode"),
    ({"inputs": [2**31]}, {"k": codec.DT_INT32}, "is not of expected type: int32"),
])
def test_parse_errors_are_invalid_argument_with_tf_serving_messages(body, infos, message):
    error = parse_error(body, infos)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.http_status == 400
    assert message in error.message


@pytest.mark.parametrize("array", [
    np.array([[1.5, -2.25]], np.float32), np.array([1e300], np.float64),
    np.array([[1, -2]], np.int32), np.array([2**40], np.int64), np.array([True, False]),
    np.array([[b"a", b"\xff"]], dtype=object), np.array([7], np.uint8),
    np.array([0.5, 2.0], np.float16), np.zeros((2, 0), np.float32),
])
def test_tensor_proto_round_trip_uses_typed_fields(array):
    proto = tensors.array_to_tensor_proto(array)
    assert proto.tensor_content == b""
    back = tensors.tensor_proto_to_array(proto)
    assert back.shape == array.shape and back.dtype == array.dtype
    assert back.tolist() == array.tolist()
    assert tf.make_ndarray(proto).tolist() == array.tolist()
