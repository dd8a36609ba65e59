"""The vectorised codec paths equal the general ones, value for value and error for error.

* REST in: ``codec.json_to_array`` takes a fast path for regular lists of the dtype's own JSON
  types; it must give the array the general path gives, and leave every other input (and so
  every error message) to the general path.
* REST out: ``codec.array_to_json_text`` formats whole arrays at once; the text must be what
  the per-value formatter (``codec._leaf_formatter``, TF Serving's rules) writes.
* REST client: ``codec.request_json_text`` must parse back (through the server's parser) to
  exactly the array sent.
* gRPC client: ``tensors.array_to_tensor_proto(content=True)`` (``tensor_content``) must decode
  to exactly the array, like the typed fields and like TensorFlow's own decoder.
* ``serving.client.retrieval_features`` equals the per-item loop it replaced.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from recsys import names as N
from serving import client, codec, tensors
from serving.codec import (DT_BOOL, DT_DOUBLE, DT_FLOAT, DT_HALF, DT_INT8, DT_INT16, DT_INT32, DT_INT64,
                           DT_STRING, DT_UINT8, DT_UINT16, DT_UINT32, DT_UINT64)
from serving.status import ServerError

UNICODE = ["", "a", "é", "日本語", "한국어 상품", "😀", 'q"\\/\n\t\u0001', "\u2028", "x" * 300]


def general(value, dtype):
    """json_to_array through the general (per-element) path only."""
    fast, codec._fast_json_to_array = codec._fast_json_to_array, lambda value, dtype: None
    try:
        return codec.json_to_array(value, dtype)
    finally:
        codec._fast_json_to_array = fast


def outcome(fn, *args):
    try:
        return fn(*args)
    except ServerError as err:
        return ("error", err.code, err.message)


def same_array(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b)))
    return bool(np.array_equal(a, b)) and [type(x) for x in a.ravel()] == [type(x) for x in b.ravel()]


def assert_same(value, dtype):
    expected, got = outcome(general, value, dtype), outcome(codec.json_to_array, value, dtype)
    if isinstance(expected, tuple):
        assert got == expected
    else:
        assert same_array(got, expected), (value, dtype, got, expected)
    return got


# ----------------------------------------------------------------------------- REST in

ACCEPTED = [
    ([[0.5, -0.0, 0.0, 1e-45, 3.4028234663852886e38, float("nan"), float("inf"), -float("inf")]], DT_FLOAT),
    ([[[0.1, 2.0, -3.25], [1e-30, 5e-324, 1e300]]], DT_DOUBLE),
    ([1.0, 0.5, 65504.0, -65504.0, 6e-8, 1, -2047, 2047], DT_HALF),
    ([1, 2, -3, 2**24 - 1, -(2**24 - 1), 0.25], DT_FLOAT),  # ints a float holds exactly
    ([2**53 - 1, -(2**53 - 1), 0.5], DT_DOUBLE),
    ([[-128, 127, 0]], DT_INT8), ([0, 255], DT_UINT8), ([-(2**15), 2**15 - 1], DT_INT16),
    ([0, 2**16 - 1], DT_UINT16), ([[-(2**31), 2**31 - 1]], DT_INT32), ([0, 2**32 - 1], DT_UINT32),
    ([[-(2**63), 2**63 - 1]], DT_INT64), ([0, 2**64 - 1, 2**63], DT_UINT64),
    ([[True, False], [False, True]], DT_BOOL),
    ([UNICODE, UNICODE[::-1]], DT_STRING), (["\ud800", "a\udfff"], DT_STRING),  # lone surrogates
    ([[["a", "b"]], [["c", "d"]]], DT_STRING), ([5], DT_INT32), ([[1.5]], DT_FLOAT),
]


@pytest.mark.parametrize("value,dtype", ACCEPTED)
def test_fast_path_gives_the_general_paths_array(value, dtype):
    got = codec._fast_json_to_array(value, dtype)
    assert got is not None, "the fast path should take this input"
    expected = general(value, dtype)
    assert same_array(got, expected)
    assert got.dtype == np.dtype(tensors.NUMPY_DTYPES[dtype])
    assert list(got.shape) == codec._dense_shape(value)


def test_fast_path_on_random_floats_of_every_magnitude():
    rng = np.random.default_rng(7)
    wide = rng.normal(size=2000) * 10.0 ** rng.integers(-300, 300, 2000)
    narrow = rng.normal(size=2000) * 10.0 ** rng.integers(-40, 38, 2000)
    for dtype, values in ((DT_DOUBLE, wide), (DT_FLOAT, narrow), (DT_FLOAT, narrow.astype(np.float32)),
                          (DT_HALF, rng.normal(size=500) * 100)):
        value = np.asarray(values, np.float64).reshape(4, -1).tolist()
        assert_same(value, dtype)


FALLBACK = [  # (value, dtype): the fast path must not take these; errors must read the same
    ([], DT_FLOAT), ([[]], DT_STRING), ([[], []], DT_INT32), ([[1.0], []], DT_FLOAT),  # empty
    ([[1.0, 2.0], [3.0]], DT_FLOAT), ([[1.0], 2.0], DT_FLOAT), ([1.0, [2.0]], DT_FLOAT),  # ragged
    ([["a", "b"], {"c": 1, "d": 2}], DT_STRING),  # an object where a list belongs
    ([{"b64": "aGk="}, "x"], DT_STRING), ([{"b64": "!!"}], DT_STRING),  # b64 (valid, invalid)
    ([1, True], DT_INT32), ([True, 1], DT_BOOL), ([1.0, False], DT_FLOAT),  # bools are not numbers
    ([1, 2.0], DT_INT32), ([None, 1.0], DT_FLOAT), (["1"], DT_INT32), ([1], DT_STRING),
    ([2**24], DT_FLOAT), ([-(2**24)], DT_FLOAT), ([2**53], DT_DOUBLE), ([2048], DT_HALF),  # lossy
    ([3.5e38, 1.0], DT_FLOAT), ([1e300], DT_HALF), ([65520.0], DT_HALF),  # too large
    ([128], DT_INT8), ([-1], DT_UINT8), ([2**31], DT_INT32), ([2**63], DT_INT64),
    ([-1], DT_UINT64), ([2**64], DT_UINT64), ([10**30], DT_INT64),  # out of range
    (5, DT_INT32), ("a", DT_STRING), ({"b64": "aGk="}, DT_STRING),  # scalars
]


@pytest.mark.parametrize("value,dtype", FALLBACK)
def test_other_inputs_are_left_to_the_general_path(value, dtype):
    assert codec._fast_json_to_array(value, dtype) is None
    assert_same(value, dtype)


def test_whole_requests_parse_the_same_and_fail_the_same():
    infos = {"x": DT_FLOAT, "s": DT_STRING, "k": DT_INT32}
    bodies = [
        {"inputs": {"x": [[0.5, 1.0]], "s": [["é", "b"]], "k": [3]}},
        {"instances": [{"x": [0.5, 1.0], "s": ["é", "b"], "k": 3}, {"x": [2.0, -1e-3], "s": ["c", ""], "k": 1}]},
        {"instances": [{"x": [0.5, 1.0], "s": ["a"], "k": 3}, {"x": [2.0], "s": ["c"], "k": 1}]},
        {"inputs": {"x": [[0.5, True]], "s": [["a"]], "k": [3]}},
        {"inputs": {"x": [[0.5]], "s": [[1]], "k": [3]}},
        {"inputs": {"x": [[0.5]], "s": [["a"]], "k": [2**31]}},
    ]

    def parse(body):
        return codec.parse_predict_request(json.dumps(body).encode(), lambda name: infos)

    for body in bodies:
        fast = outcome(parse, body)
        slow = outcome(lambda b: (lambda f: (setattr(codec, "_fast_json_to_array", lambda v, d: None),
                                             outcome(parse, b), setattr(codec, "_fast_json_to_array", f))[1])(
            codec._fast_json_to_array), body)
        if isinstance(slow, tuple) and slow[0] == "error":
            assert fast == slow
        else:
            assert fast[0] == slow[0] and fast[2] == slow[2] and sorted(fast[1]) == sorted(slow[1])
            for name in fast[1]:
                assert same_array(fast[1][name], slow[1][name])


# ---------------------------------------------------------------------------- REST out

def per_leaf(array, name=""):
    """The per-value formatting the vectorised writer replaced."""
    array = np.asarray(array)
    fmt = codec._leaf_formatter(array, name.endswith("_bytes") and array.dtype.kind in "OSU")
    return [fmt(v) for v in array.ravel().tolist()]


FLOATS32 = np.float32([0.0, -0.0, 1.0, -2.0, 0.1, 0.123456789, 9e6, 1e7, 16777216.0, 3e-5, 1e-45,
                       3.4028235e38, -3.4028235e38, np.nan, np.inf, -np.inf, 123456.0, 1234567.0])


@pytest.mark.parametrize("array", [
    FLOATS32, FLOATS32.reshape(2, 3, 3), FLOATS32.astype(np.float64),
    np.array([1 / 3, 1e16, 1e17, 5e-324, 2.0**60, 0.1 + 0.2]), np.float16([0.1, 2, 65504, -0.0, np.inf]),
    np.random.default_rng(3).random((4, 500), dtype=np.float32),
    np.random.default_rng(4).normal(size=(50, 7)) * 1e200,
    np.array([[1, -2, 2**40]], np.int64), np.array([0, 2**64 - 1], np.uint64), np.int8([-128, 127]),
    np.array([[True, False]]), np.float32(2.5), np.int32(7), np.zeros((0, 3), np.float32), np.zeros((2, 0), np.int32),
])
def test_numbers_are_written_as_the_per_value_formatter_writes_them(array):
    assert codec._leaf_texts(np.asarray(array), False) == per_leaf(array)
    text = codec.array_to_json_text(array)
    if np.asarray(array).dtype.kind == "f" and np.asarray(array).size and np.isfinite(array).all():
        assert np.array_equal(np.asarray(json.loads(text), np.float64).astype(np.asarray(array).dtype), array)


STRINGS = np.array([s.encode("utf-8") for s in UNICODE] + [b"\xff\xfe", b"\x00a\x00", "é".encode("latin-1")],
                   dtype=object)


@pytest.mark.parametrize("name", ["item_ids", "data_bytes"])
@pytest.mark.parametrize("array", [STRINGS, STRINGS.reshape(3, 4), np.array(UNICODE, dtype=object),
                                   np.array(["a", "é"]), np.array([b"a", b"bc"]), np.empty((1, 0), object)])
def test_strings_are_written_as_the_per_value_formatter_writes_them(array, name):
    assert codec._leaf_texts(array, name.endswith("_bytes")) == per_leaf(array, name)
    assert json.loads(codec.array_to_json_text(array, name)) is not None


def test_responses_keep_their_layout():
    outputs = {"item_ids": np.array([[b"a", "é".encode()], [b"c", b""]], dtype=object),
               "scores": np.float32([[0.5, 0.123456789], [-np.inf, -np.inf]])}
    assert codec.format_predict_response(outputs, codec.COLUMNAR) == (
        '{"outputs": {"item_ids": [["a", "é"], ["c", ""]], '
        '"scores": [[0.5, 0.123456791], [-Infinity, -Infinity]]}}')
    assert codec.format_predict_response(outputs, codec.ROW) == (
        '{"predictions": [{"item_ids": ["a", "é"], "scores": [0.5, 0.123456791]},\n'
        '{"item_ids": ["c", ""], "scores": [-Infinity, -Infinity]}]}')


# -------------------------------------------------------------------------- REST client

def old_client_json(array):
    """What the client sent before: json.dumps of the array with bytes as str or {"b64"}."""
    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        def leaf(v):
            if isinstance(v, bytes):
                try:
                    return v.decode("utf-8")
                except UnicodeDecodeError:
                    import base64
                    return {"b64": base64.b64encode(v).decode("ascii")}
            return str(v)
        value = np.vectorize(leaf, otypes=[object])(array).tolist() if array.size else array.tolist()
    else:
        value = array.tolist()
    return json.dumps(value)


@pytest.mark.parametrize("array,dtype", [
    (FLOATS32.reshape(1, 2, 9), DT_FLOAT), (np.random.default_rng(5).random((1, 500, 12), dtype=np.float32), DT_FLOAT),
    (np.where(np.random.default_rng(6).random((1, 50, 12)) < 0.7, 0, 1).astype(np.float32) * 0.3, DT_FLOAT),
    (np.array([1 / 3, -0.0, 5e-324, 1e300, 2.0**60, np.nan]), DT_DOUBLE), (np.float16([0.1, -0.0, 65504]), DT_HALF),
    (np.array([[1, -2, 2**40]], np.int64), DT_INT64), (np.int32([7]), DT_INT32), (np.array([True, False]), DT_BOOL),
    (np.array([UNICODE], dtype=object), DT_STRING), (STRINGS, DT_STRING), (np.array(["a", "é"]), DT_STRING),
    (np.zeros((1, 0), np.float32), DT_FLOAT), (np.empty((2, 0), object), DT_STRING), (np.float32(2.5), DT_FLOAT),
])
def test_client_json_parses_back_to_the_array_sent(array, dtype):
    text = codec.request_json_text(array)
    assert text.isascii()
    got = outcome(codec.json_to_array, json.loads(text), dtype)
    before = outcome(codec.json_to_array, json.loads(old_client_json(array)), dtype)
    assert same_array(got, before)
    if dtype != DT_STRING:
        assert same_array(got, np.asarray(array))
    elif array.size:
        want = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in np.asarray(array).ravel().tolist()]
        assert got.ravel().tolist() == want


def test_client_json_refuses_what_json_cannot_hold():
    with pytest.raises(TypeError):
        codec.request_json_text(np.array([1 + 2j]))


# ------------------------------------------------------------------------------- gRPC

@pytest.mark.parametrize("array", [
    np.random.default_rng(8).random((1, 500, 12), dtype=np.float32), FLOATS32, np.array([1 / 3, -0.0, np.nan]),
    np.float16([0.1, -2, 65504]), np.array([[1, -2, 2**40]], np.int64), np.int32([-(2**31), 2**31 - 1]),
    np.int16([-5, 5]), np.int8([-128, 127]), np.uint8([0, 255]), np.uint16([0, 65535]), np.uint32([0, 2**32 - 1]),
    np.uint64([0, 2**64 - 1]), np.array([[True, False, True]]), np.zeros((0,), np.float32), np.zeros((3, 0), np.int64),
    np.float32(2.5), np.int64(-3),
])
def test_tensor_content_round_trips_exactly(array):
    proto = tensors.array_to_tensor_proto(array, content=True)
    assert array.size == 0 or proto.tensor_content
    assert not (proto.float_val or proto.int_val or proto.int64_val or proto.double_val or proto.bool_val)
    got = tensors.tensor_proto_to_array(proto)
    assert same_array(got, np.asarray(array))
    assert same_array(got, tensors.tensor_proto_to_array(tensors.array_to_tensor_proto(array)))
    assert same_array(tf.make_ndarray(proto), np.asarray(array))


def test_strings_stay_in_string_val_with_content():
    array = np.array([[s.encode("utf-8") for s in UNICODE] + [b"\xff"]], dtype=object)
    proto = tensors.array_to_tensor_proto(array, content=True)
    assert proto.string_val and not proto.tensor_content
    assert same_array(tensors.tensor_proto_to_array(proto), array)
    empty = tensors.array_to_tensor_proto(np.empty((2, 0), object), content=True)
    assert tensors.tensor_proto_to_array(empty).shape == (2, 0)


def test_an_explicit_dtype_casts_as_the_typed_fields_do():
    values = np.array([1.7, -2.2, 3.0])
    for dtype in (DT_INT32, DT_FLOAT, DT_INT64):
        assert same_array(tensors.tensor_proto_to_array(tensors.array_to_tensor_proto(values, dtype, content=True)),
                          tensors.tensor_proto_to_array(tensors.array_to_tensor_proto(values, dtype)))


# ----------------------------------------------------------------------- client features

def loop_features(candidates, sources):
    """The per-item loop ``RecommenderClient.rank`` used before."""
    width = len(N.RANKER_SOURCE_FEATURES)
    feats = np.zeros((1, len(candidates), len(N.RANKER_SOURCES) * width), np.float32)
    col = {c: i for i, c in enumerate(candidates)}
    for s_idx, source in enumerate(N.RANKER_SOURCES):
        for r, (item, score) in enumerate((sources or {}).get(source, ())):
            if str(item) in col:
                feats[0, col[str(item)], s_idx * width:(s_idx + 1) * width] = (1.0, float(score), 1.0 / (r + 1))
    return feats


def test_retrieval_features_equal_the_per_item_loop():
    rng = np.random.default_rng(9)
    candidates = [f"i{i}" for i in range(500)]
    sources = {s: [(f"i{j}", float(rng.normal()) * 10 ** float(rng.integers(-3, 3)))
                   for j in rng.integers(0, 700, 300)] for s in N.RANKER_SOURCES[:3]}  # repeats, unknown items
    sources[N.RANKER_SOURCES[0]].append((7, np.float32(0.3)))  # a non-str id and a numpy score
    candidates.append("7")
    for src in (sources, {}, None, {N.RANKER_SOURCES[1]: []}, {N.RANKER_SOURCES[2]: [("nope", 1.0)]}):
        got, want = client.retrieval_features(candidates, src), loop_features(candidates, src)
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)
