"""TF DataTypes for numpy arrays, and TensorProto <-> numpy (the gRPC encoding), for the server.

The code lives in the client distribution (``commerce_recsys_client.tensors``, under
``clients/python``), which backends install without TensorFlow; here it raises the
server's INVALID_ARGUMENT (and RESOURCE_EXHAUSTED above ``--max_tensor_elements``).
Importing this module does not import TensorFlow.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from commerce_recsys_client import tensors as _tensors
from commerce_recsys_client.tensors import (  # noqa: F401 - re-exported for the server's modules
    DT_BOOL, DT_DOUBLE, DT_FLOAT, DT_HALF, DT_INT8, DT_INT16, DT_INT32, DT_INT64, DT_STRING,
    DT_UINT8, DT_UINT16, DT_UINT32, DT_UINT64, DTYPE_NAMES, NUMPY_DTYPES, dtype_name)
from serving.status import invalid_argument


def _too_large(message: str):
    from serving.limits import too_large

    return too_large(message)


def dtype_of_array(array: np.ndarray) -> int:
    """TF DataType enum for a numpy array (object/bytes/str arrays are DT_STRING)."""
    return _tensors.dtype_of_array(array, invalid_argument)


def declared_elements(proto) -> int:
    """Number of elements the TensorProto's shape declares (what decoding would allocate)."""
    return _tensors.declared_elements(proto, invalid_argument)


def tensor_proto_to_array(proto, max_elements: int | None = None) -> np.ndarray:
    """TensorProto -> numpy; see :func:`commerce_recsys_client.tensors.tensor_proto_to_array`."""
    return _tensors.tensor_proto_to_array(proto, max_elements, invalid_argument, _too_large)


def array_to_tensor_proto(array: Any, dtype: int | None = None, content: bool = False):
    """numpy -> TensorProto; see :func:`commerce_recsys_client.tensors.array_to_tensor_proto`."""
    return _tensors.array_to_tensor_proto(array, dtype, content, invalid_argument)
