"""TF Serving's REST JSON encoding of tensors: request JSON -> numpy, numpy -> response JSON.

The JSON rules follow ``tensorflow_serving/util/json_tensor.cc``:

* requests are ``{"signature_name": ..., "instances": [...]}`` (row format) or
  ``{"signature_name": ..., "inputs": ...}`` (columnar format); JSON values are checked
  against the dtype of the signature input (an int32 input takes JSON integers only,
  a float input takes any number that fits, strings take JSON strings or
  ``{"b64": "..."}``), and error messages use TF Serving's wording;
* responses are ``{"predictions": [...]}`` for row requests (one value per row when the
  signature has one output, else one object per row) and ``{"outputs": ...}`` for
  columnar requests (the bare value for one output, else an object); floats are
  written in their shortest round-tripping form with a trailing ``.0`` for whole
  numbers, NaN/Infinity as bare tokens; string outputs are written as JSON strings,
  except outputs whose name ends in ``_bytes``, which become ``{"b64": ...}``.

Importing this module does not import TensorFlow (the client's REST path uses it).
"""
from __future__ import annotations

import base64
import binascii
import json
import math
from itertools import chain
from json.encoder import encode_basestring
from typing import Any, Callable, Mapping

import numpy as np

from commerce_recsys_client.jsontext import (  # noqa: F401 - request_json_text re-exported
    _decimal, _nest, integer_texts, request_json_text)
from serving.status import ServerError, invalid_argument, unimplemented
from serving.tensors import (  # noqa: F401 - DT_* re-exported for callers of this module
    DT_BOOL, DT_DOUBLE, DT_FLOAT, DT_HALF, DT_INT8, DT_INT16, DT_INT32, DT_INT64, DT_STRING,
    DT_UINT8, DT_UINT16, DT_UINT32, DT_UINT64, NUMPY_DTYPES, dtype_name)

ROW = "row"
COLUMNAR = "columnar"

_INT_RANGES = {
    DT_INT8: (-(2**7), 2**7 - 1), DT_UINT8: (0, 2**8 - 1), DT_INT16: (-(2**15), 2**15 - 1),
    DT_UINT16: (0, 2**16 - 1), DT_INT32: (-(2**31), 2**31 - 1), DT_INT64: (-(2**63), 2**63 - 1),
    DT_UINT32: (0, 2**32 - 1), DT_UINT64: (0, 2**64 - 1),
}
_FLOAT_LIMITS = {  # (largest exactly representable integer, largest finite value)
    DT_HALF: (2**11 - 1, 65504.0),
    DT_FLOAT: (2**24 - 1, float(np.finfo(np.float32).max)),
    DT_DOUBLE: (2**53 - 1, float(np.finfo(np.float64).max)),
}
_MAX_ERROR_VALUE_CHARS = 1000


# ----------------------------------------------------------------------------- JSON in


def _json_text(value: Any) -> str:
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > _MAX_ERROR_VALUE_CHARS:
        text = text[:_MAX_ERROR_VALUE_CHARS] + "..."
    return text


def _json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _type_error(value: Any, dtype: int) -> ServerError:
    return invalid_argument(
        f"JSON Value: {_json_text(value)} Type: {_json_type(value)} "
        f"is not of expected type: {dtype_name(dtype)}")


def is_b64_object(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _decode_b64(value: Any) -> bytes:
    if not is_b64_object(value):
        raise invalid_argument(
            f"JSON Value: {_json_text(value)} not formatted correctly for base64 data")
    text = value["b64"]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_argument("Unable to base64 decode") from None


def _leaf(value: Any, dtype: int) -> Any:
    """Checks one JSON scalar against the tensor dtype; returns the Python value to store."""
    if dtype == DT_STRING:
        if isinstance(value, dict):
            return _decode_b64(value)
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, dict):
        raise _type_error(value, dtype)
    if dtype == DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    if dtype in _FLOAT_LIMITS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(value, dtype)
        max_int, max_value = _FLOAT_LIMITS[dtype]
        lossy = (abs(value) > max_int) if isinstance(value, int) else (
            math.isfinite(value) and abs(value) > max_value)
        if lossy:
            raise invalid_argument(f"Cannot convert JSON value: {_json_text(value)} to "
                                   f"{dtype_name(dtype)} without loss of precision.")
        return value
    if dtype in _INT_RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(value, dtype)
        low, high = _INT_RANGES[dtype]
        if not low <= value <= high:
            raise _type_error(value, dtype)
        return value
    raise unimplemented(
        f"Conversion of JSON Value: {_json_text(value)} to type: {dtype_name(dtype)}")


def _dense_shape(value: Any) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, level: int, shape: list[int], dtype: int, out: list) -> None:
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid_argument(
                f"JSON Value: {_json_text(value)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}")
        out.append(_leaf(value, dtype))
        return
    if level >= rank:
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}")
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


def _fast_json_to_array(value: Any, dtype: int) -> np.ndarray | None:
    """:func:`json_to_array` without a Python call per element, for the common case: a
    non-empty, regular nest of lists whose leaves all have the dtype's exact JSON types
    (strings: ``str``; bool: ``bool``; integers: ``int`` in range; floats: ``float`` and
    ``int`` that convert without loss). Returns None for anything else (b64 objects,
    ragged or empty lists, a wrong type or value anywhere): the general path then decides,
    so every error keeps its wording, and an accepted request gives the same array."""
    if type(value) is not list:
        return None
    shape = _dense_shape(value)
    if 0 in shape:
        return None
    level = [value]
    for depth, size in enumerate(shape):
        if set(map(type, level)) != {list} or set(map(len, level)) != {size}:
            return None
        level = list(chain.from_iterable(level))
    leaves = level
    kinds = set(map(type, leaves))
    if dtype == DT_STRING:
        if kinds != {str}:
            return None
        array = np.empty(len(leaves), dtype=object)
        array[:] = [v.encode("utf-8", "surrogatepass") for v in leaves]
        return array.reshape(shape)
    if dtype == DT_BOOL:
        return np.array(leaves, dtype=np.bool_).reshape(shape) if kinds == {bool} else None
    if dtype in _FLOAT_LIMITS:
        if not kinds or not kinds <= {float, int}:
            return None
        max_int, max_value = _FLOAT_LIMITS[dtype]
        if int in kinds:
            ints = [v for v in leaves if type(v) is int]
            if max(ints) > max_int or min(ints) < -max_int:
                return None
        wide = np.array(leaves, dtype=np.float64)
        big = np.abs(wide) > max_value
        if big.any() and np.isfinite(wide[big]).any():
            return None
        return wide.astype(NUMPY_DTYPES[dtype]).reshape(shape)
    if dtype in _INT_RANGES:
        if kinds != {int}:
            return None
        low, high = _INT_RANGES[dtype]
        if min(leaves) < low or max(leaves) > high:
            return None
        return np.array(leaves, dtype=NUMPY_DTYPES[dtype]).reshape(shape)
    return None


def json_to_array(value: Any, dtype: int) -> np.ndarray:
    """Converts a (nested list of) JSON value(s) to a dense array of the given TF dtype."""
    if dtype not in NUMPY_DTYPES:
        raise unimplemented(
            f"Conversion of JSON Value: {_json_text(value)} to type: {dtype_name(dtype)}")
    fast = _fast_json_to_array(value, dtype)
    if fast is not None:
        return fast
    shape = _dense_shape(value)
    flat: list = []
    try:
        _fill(value, 0, shape, dtype, flat)
    except RecursionError:
        raise invalid_argument("JSON value is nested too deeply") from None
    if dtype == DT_STRING:
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
    else:
        array = np.array(flat, dtype=NUMPY_DTYPES[dtype])
    return array.reshape(shape)


def _instances_to_arrays(instances: list, infos: Mapping[str, int]) -> dict[str, np.ndarray]:
    if not isinstance(instances[0], dict) and len(infos) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map")

    def is_object(value: Any) -> bool:
        return isinstance(value, dict) and not is_b64_object(value)

    objects = is_object(instances[0])
    names = sorted(infos)
    rows: dict[str, list[np.ndarray]] = {}

    def add(value: Any, name: str) -> None:
        if name not in infos:
            raise invalid_argument(f"JSON object: does not have named input: {name}")
        array = json_to_array(value, infos[name])
        if name in rows:
            expected = rows[name][0].shape
            if int(np.prod(expected)) != array.size:
                raise invalid_argument(
                    f"Expecting tensor size: {int(np.prod(expected))} but got: {array.size}")
            if expected != array.shape:
                raise invalid_argument(f"Expecting shape {_shape_text(expected)} but got: "
                                       f"{_shape_text(array.shape)}")
        rows.setdefault(name, []).append(array)

    for index, element in enumerate(instances):
        if objects:
            if not is_object(element):
                raise invalid_argument(
                    f"Expecting object but got list at item {index} of input list")
            for key, value in element.items():
                try:
                    add(value, key)
                except ServerError as err:
                    raise invalid_argument(f"Failed to process element: {index} key: {key} of "
                                           f"'instances' list. Error: {err}") from None
            if set(element) != set(names):
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{_json_text(element)} keys must be equal to: {','.join(names)}")
        else:
            if is_object(element):
                raise invalid_argument(
                    f"Expecting value/list but got object at item {index} of input list")
            try:
                add(element, names[0])
            except ServerError as err:
                raise invalid_argument(f"Failed to process element: {index} of 'instances' "
                                       f"list. Error: {err}") from None
    return {name: np.stack(arrays) for name, arrays in rows.items()}


def _shape_text(shape) -> str:
    return "[" + ",".join(str(int(d)) for d in shape) + "]"


def parse_predict_request(
    body: bytes,
    get_input_dtypes: Callable[[str], Mapping[str, int]],
    max_elements: int | None = None,
) -> tuple[str, dict[str, np.ndarray], str]:
    """Parses a REST predict body.

    ``get_input_dtypes(signature_name)`` returns {input name: DataType} for the requested
    signature (raising ServerError for an unknown model or signature). Returns
    (signature_name as given, possibly "", input arrays, ROW or COLUMNAR).
    Inputs the signature does not have are refused (as over gRPC); more than
    ``max_elements`` tensor elements in all is RESOURCE_EXHAUSTED (HTTP 413).
    """
    signature_name, arrays, fmt = _parse_predict_request(body, get_input_dtypes)
    total = sum(array.size for array in arrays.values())
    if max_elements is not None and total > max_elements:
        from serving.limits import too_large

        raise too_large(f"Request has {total:,} tensor elements, more than the server's limit "
                        f"of {max_elements:,} (--max_tensor_elements)")
    return signature_name, arrays, fmt


def _parse_predict_request(body, get_input_dtypes):
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except UnicodeDecodeError as err:
        raise invalid_argument(f"JSON Parse error: Invalid encoding in string. at offset: "
                               f"{err.start}") from None
    except json.JSONDecodeError as err:
        raise invalid_argument(f"JSON Parse error: {err.msg} at offset: {err.pos}") from None
    except RecursionError:
        raise invalid_argument("JSON Parse error: document is nested too deeply") from None
    if not isinstance(doc, dict):
        raise invalid_argument(f"JSON Value: {_json_text(doc)} Is not object")
    signature_name = doc.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise invalid_argument(f"JSON Value: {_json_text(doc)} not formatted correctly. "
                               "'signature_name' key must be a string value.")
    infos = dict(get_input_dtypes(signature_name))
    if not infos:
        raise invalid_argument(
            f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
    if "instances" in doc and "inputs" in doc:
        raise invalid_argument(f"JSON Value: {_json_text(doc)} Not formatted correctly "
                               "expecting only one of 'inputs' or 'instances' keys to exist ")
    if "instances" in doc:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise invalid_argument(
                f"JSON Value: {_json_text(doc)} Excepting 'instances' to be an list/array")
        if not instances:
            raise invalid_argument(f"JSON Value: {_json_text(doc)} No values in 'instances' array")
        return signature_name, _instances_to_arrays(instances, infos), ROW
    if "inputs" in doc:
        value = doc["inputs"]
        if not isinstance(value, dict) or is_b64_object(value):
            if len(infos) > 1:
                raise invalid_argument(
                    "inputs is a plain value/list, but expecting an object as multiple input "
                    "tensors required as per tensorinfo_map")
            (name, dtype), = infos.items()
            return signature_name, {name: json_to_array(value, dtype)}, COLUMNAR
        extra = sorted(set(value) - set(infos))
        if extra:
            raise invalid_argument(
                f"input tensor alias not found in signature: {extra[0]}. Inputs expected to be "
                f"in the set {{{','.join(sorted(infos))}}}.")
        arrays = {}
        for name in sorted(infos):
            if name not in value:
                raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
            arrays[name] = json_to_array(value[name], infos[name])
        return signature_name, arrays, COLUMNAR
    raise invalid_argument("Missing 'inputs' or 'instances' key")


# ---------------------------------------------------------------------------- JSON out


def _leaf_formatter(array: np.ndarray, as_bytes: bool) -> Callable[[Any], str]:
    kind = array.dtype.kind
    if kind == "f":
        bits = 64 if array.dtype == np.float64 else 32
        return lambda v: _decimal(v, bits)
    if kind in "iu":
        return lambda v: str(int(v))
    if kind == "b":
        return lambda v: "true" if v else "false"
    if kind in "OSU":
        def text(v: Any) -> str:
            raw = v.encode("utf-8") if isinstance(v, str) else bytes(v)
            if as_bytes:
                return '{"b64": "' + base64.b64encode(raw).decode("ascii") + '"}'
            return json.dumps(raw.decode("utf-8", "replace"), ensure_ascii=False)
        return text
    raise invalid_argument(f"Failed to write JSON value for tensor type: {array.dtype}")


def _float_texts(values: np.ndarray) -> list[str]:
    """``[_decimal(v, bits) for v in values]`` with the round-trip test done by numpy."""
    bits = 64 if values.dtype == np.float64 else 32
    py = values.tolist()
    texts = ["%g" % v for v in py]
    finite = np.isfinite(values)
    back = np.array(texts, dtype=np.float64)  # "nan" and "inf" parse; they are replaced below
    if bits == 64:
        same = back == values
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            same = back.astype(np.float32) == values.astype(np.float32)
    wide = "%.17g" if bits == 64 else "%.9g"
    for i in np.flatnonzero(~same & finite).tolist():
        texts[i] = wide % py[i]
    texts = [t if "." in t or "e" in t else t + ".0" for t in texts]
    for i in np.flatnonzero(~finite).tolist():
        texts[i] = _decimal(py[i], bits)
    return texts


def _string_texts(values: list, as_bytes: bool) -> list[str]:
    """The string leaves of :func:`_leaf_formatter`, a list at a time."""
    if not as_bytes and set(map(type, values)) <= {bytes}:
        return list(map(encode_basestring, [v.decode("utf-8", "replace") for v in values]))
    fmt = _leaf_formatter(np.empty(0, dtype=object), as_bytes)
    return [fmt(v) for v in values]


def _leaf_texts(array: np.ndarray, as_bytes: bool) -> list[str]:
    """``[_leaf_formatter(array, as_bytes)(v) for v in array.ravel().tolist()]``, vectorised."""
    kind = array.dtype.kind
    flat = array.ravel()
    if kind == "f":
        return _float_texts(flat)
    if kind in "iub":
        return integer_texts(flat)
    if kind in "OSU":
        return _string_texts(flat.tolist(), as_bytes)
    raise invalid_argument(f"Failed to write JSON value for tensor type: {array.dtype}")


def array_to_json_text(array: np.ndarray, name: str = "") -> str:
    """Serialises one tensor (any rank) as TF Serving writes it."""
    array = np.asarray(array)
    return _nest(_leaf_texts(array, name.endswith("_bytes") and array.dtype.kind in "OSU"), array)


def format_predict_response(outputs: Mapping[str, np.ndarray], fmt: str) -> str:
    """MakeJsonFromTensors(): ``{"predictions": ...}`` or ``{"outputs": ...}``."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    arrays = {name: np.asarray(outputs[name]) for name in names}
    if fmt == COLUMNAR:
        if len(names) == 1:
            body = array_to_json_text(arrays[names[0]], names[0])
        else:
            body = "{" + ", ".join(f"{json.dumps(n)}: {array_to_json_text(arrays[n], n)}"
                                   for n in names) + "}"
        return '{"outputs": ' + body + "}"
    if fmt != ROW:
        raise invalid_argument("Invalid request format")
    batch = -1
    for name in names:
        if arrays[name].ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and arrays[name].shape[0] != batch:
            raise invalid_argument(f"Tensor name: {name} has inconsistent batch size: "
                                   f"{arrays[name].shape[0]} expecting: {batch}")
        batch = arrays[name].shape[0]
    rows = []
    for i in range(batch):
        if len(names) == 1:
            rows.append(array_to_json_text(arrays[names[0]][i], names[0]))
        else:
            rows.append("{" + ", ".join(f"{json.dumps(n)}: {array_to_json_text(arrays[n][i], n)}"
                                        for n in names) + "}")
    return '{"predictions": [' + ",\n".join(rows) + "]}"


def error_json(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)
