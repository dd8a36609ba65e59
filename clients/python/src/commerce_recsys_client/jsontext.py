"""One input tensor as TF Serving's REST API reads it: the JSON text the client sends.

numpy only. The model server's JSON writer (``serving.codec``) shares the number
formatting (:func:`_decimal`) and the nesting (:func:`_nest`) from here.
"""
from __future__ import annotations

import base64
import math
from json.encoder import encode_basestring_ascii
from typing import Any

import numpy as np


def _decimal(value: float, bits: int) -> str:
    """WriteDecimal(): shortest '%g' form if it round-trips, else full precision."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = "%g" % value
    if bits == 64:
        if float(text) != value:
            text = "%.17g" % value
    elif np.float32(float(text)) != np.float32(value):
        text = "%.9g" % value
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def integer_texts(values: np.ndarray) -> list[str]:
    """Integer and bool leaves (a flat array) as JSON numbers / ``true`` / ``false``."""
    if values.dtype.kind == "b":
        return ["true" if v else "false" for v in values.tolist()]
    return list(map(str, values.tolist()))


def _request_string_text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return encode_basestring_ascii(value.decode("utf-8"))
        except UnicodeDecodeError:
            return '{"b64": "' + base64.b64encode(value).decode("ascii") + '"}'
    return encode_basestring_ascii(str(value))


def request_json_text(array: np.ndarray) -> str:
    """One input tensor as a REST client writes it: numbers in TF Serving's decimal form
    (floats round-trip exactly: float32 through ``%g`` or ``%.9g``), strings as ASCII JSON
    strings, bytes that are not UTF-8 as ``{"b64": ...}``. Parses to the same values as
    ``json.dumps(array.tolist())`` (with that string rule), in a fraction of the time and
    bytes for float32 tensors. Dtypes JSON cannot hold (complex, ...) raise TypeError."""
    array = np.asarray(array)
    kind = array.dtype.kind
    if kind in "OSU":
        leaves = list(map(_request_string_text, array.ravel().tolist()))
    elif kind == "f":
        leaves = _request_float_texts(array.ravel())
    elif kind in "iub":
        leaves = integer_texts(array.ravel())
    else:
        raise TypeError(f"Object of type {array.dtype} is not JSON serializable")
    return _nest(leaves, array)


def _request_float_texts(values: np.ndarray) -> list[str]:
    """Floats that parse back to the same value: float64 as ``json.dumps`` writes them
    (``repr``), narrower floats with 9 significant digits (always enough for float32),
    ``.0`` on whole numbers so that they stay JSON floats, NaN/Infinity as ``json.dumps``
    writes them; +0.0 (most retrieval features) without formatting."""
    fmt = repr if values.dtype == np.float64 else "%.9g".__mod__
    nonzero = np.flatnonzero((values != 0) | np.signbit(values))
    texts = ["0.0"] * values.size
    if nonzero.size:
        picked = values[nonzero]
        done = [t if "." in t or "e" in t else t + ".0" for t in map(fmt, picked.tolist())]
        # NaN/Infinity as json.dumps writes them; a float32 within 9 digits of its maximum in
        # full (rounded to 9 digits it could exceed the maximum, which the server refuses)
        bad = ~np.isfinite(picked) | (np.abs(picked) >= np.float32(3.4e38))
        if bad.any():
            for i in np.flatnonzero(bad).tolist():
                done[i] = _decimal(float(picked[i]), 64)
        if nonzero.size == values.size:
            return done
        out = np.array(texts, dtype=object)
        out[nonzero] = done
        texts = out.tolist()
    return texts


def _nest(leaves: list[str], array: np.ndarray) -> str:
    """The leaves' texts nested as JSON lists in the array's shape."""
    if array.ndim == 0:
        return leaves[0]

    def nest(start: int, dim: int) -> tuple[str, int]:
        if dim == array.ndim - 1:
            end = start + array.shape[dim]
            return "[" + ", ".join(leaves[start:end]) + "]", end
        parts = []
        for _ in range(array.shape[dim]):
            part, start = nest(start, dim + 1)
            parts.append(part)
        return "[" + ", ".join(parts) + "]", start

    return nest(0, 0)[0]
