"""TF DataTypes for numpy arrays, and TensorProto <-> numpy (the gRPC encoding).

Importing this module needs numpy only; the TensorProto helpers import the protos
(``tensorflow.core.framework.tensor_pb2``, from TensorFlow or from the ``grpc`` extra's
``min-tfs-client``) on first use. The model server re-exports these through
``serving.tensors`` with its own INVALID_ARGUMENT error (``error=``, ``too_large=``).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np


class TensorError(ValueError):
    """A tensor this module cannot encode or decode (the server raises its INVALID_ARGUMENT instead)."""

# tensorflow/core/framework/types.proto (kept here so that this module stays TF-free).
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT16, DT_INT8, DT_STRING = 1, 2, 3, 4, 5, 6, 7
DT_INT64, DT_BOOL, DT_UINT16, DT_HALF, DT_UINT32, DT_UINT64 = 9, 10, 17, 19, 22, 23

DTYPE_NAMES = {  # DataTypeString()
    DT_FLOAT: "float", DT_DOUBLE: "double", DT_INT32: "int32", DT_UINT8: "uint8",
    DT_INT16: "int16", DT_INT8: "int8", DT_STRING: "string", DT_INT64: "int64",
    DT_BOOL: "bool", DT_UINT16: "uint16", DT_HALF: "half", DT_UINT32: "uint32",
    DT_UINT64: "uint64", 8: "complex64", 14: "bfloat16", 18: "complex128",
    20: "resource", 21: "variant",
}
NUMPY_DTYPES = {
    DT_FLOAT: np.float32, DT_DOUBLE: np.float64, DT_INT32: np.int32, DT_UINT8: np.uint8,
    DT_INT16: np.int16, DT_INT8: np.int8, DT_STRING: object, DT_INT64: np.int64,
    DT_BOOL: np.bool_, DT_UINT16: np.uint16, DT_HALF: np.float16, DT_UINT32: np.uint32,
    DT_UINT64: np.uint64,
}
def dtype_name(dtype: int) -> str:
    return DTYPE_NAMES.get(int(dtype), f"DataType({int(dtype)})")


def dtype_of_array(array: np.ndarray, error: Callable[[str], Exception] = TensorError) -> int:
    """TF DataType enum for a numpy array (object/bytes/str arrays are DT_STRING)."""
    if array.dtype.kind in "OSU":
        return DT_STRING
    for dtype, np_dtype in NUMPY_DTYPES.items():
        if np_dtype is not object and array.dtype == np.dtype(np_dtype):
            return dtype
    raise error(f"unsupported numpy dtype {array.dtype}")


def declared_elements(proto, error: Callable[[str], Exception] = TensorError) -> int:
    """Number of elements the TensorProto's shape declares (what decoding would allocate)."""
    if proto.tensor_shape.unknown_rank:
        raise error("Tensor in request has an unknown rank; give its shape")
    count = 1
    for dim in proto.tensor_shape.dim:
        if dim.size < 0:
            raise error(f"Tensor in request has a negative dimension ({dim.size})")
        count *= dim.size
    return count


_TYPED_FIELDS = {
    DT_FLOAT: "float_val", DT_DOUBLE: "double_val", DT_INT32: "int_val", DT_INT16: "int_val",
    DT_INT8: "int_val", DT_UINT8: "int_val", DT_UINT16: "int_val", DT_INT64: "int64_val",
    DT_BOOL: "bool_val", DT_UINT32: "uint32_val", DT_UINT64: "uint64_val",
}


def tensor_proto_to_array(proto, max_elements: int | None = None,
                          error: Callable[[str], Exception] = TensorError,
                          too_large: Callable[[str], Exception] | None = None) -> np.ndarray:
    """TensorProto -> numpy (strings come back as object arrays of bytes).

    The declared shape is checked against ``max_elements`` *before* anything is
    allocated: a 100-byte proto declaring 10^8 elements would otherwise be expanded to
    the full size (a TensorProto with fewer values than elements repeats the last one).
    Fully specified tensors are decoded with numpy directly; the rest (repeated last
    value, half floats, ...) go through ``tf.make_ndarray`` (TensorFlow needed for those only).
    ``error`` makes the exception for a malformed proto, ``too_large`` the one for more
    elements than ``max_elements`` (default: ``error``).
    """
    if proto.dtype not in NUMPY_DTYPES:
        raise error(f"Unsupported tensor dtype in request: {dtype_name(proto.dtype)}")
    count = declared_elements(proto, error)
    if max_elements is not None and count > max_elements:
        raise (too_large or error)(f"Tensor in request declares {count:,} elements, more than the "
                        f"server's limit of {max_elements:,} (--max_tensor_elements)")
    shape = [d.size for d in proto.tensor_shape.dim]
    if proto.dtype == DT_STRING:
        if len(proto.string_val) == count:
            array = np.empty(count, dtype=object)
            array[:] = list(proto.string_val)
            return array.reshape(shape)
    elif proto.tensor_content:
        np_dtype = np.dtype(NUMPY_DTYPES[proto.dtype])
        if len(proto.tensor_content) == count * np_dtype.itemsize:
            return np.frombuffer(proto.tensor_content, dtype=np_dtype).reshape(shape).copy()
    elif proto.dtype in _TYPED_FIELDS:
        values = getattr(proto, _TYPED_FIELDS[proto.dtype])
        if len(values) == count:
            try:
                return np.array(values, dtype=NUMPY_DTYPES[proto.dtype]).reshape(shape)
            except (OverflowError, ValueError):
                pass  # out-of-range values: TensorFlow's decoder says what is wrong
    try:
        import tensorflow as tf
    except ImportError:  # the client without TensorFlow: only fully specified tensors
        raise error(f"Cannot parse a {dtype_name(proto.dtype)} tensor proto of {count} elements "
                    f"that does not store each value without TensorFlow") from None
    try:
        return tf.make_ndarray(proto)
    except Exception as err:  # malformed protos: wrong number of values, bad content size...
        raise error(f"Cannot parse tensor from proto: {err}") from None


def array_to_tensor_proto(array: Any, dtype: int | None = None, content: bool = False,
                          error: Callable[[str], Exception] = TensorError):
    """numpy -> TensorProto, values in the typed repeated fields (Tensor::AsProtoField, what
    TF Serving answers with), or with ``content=True`` numeric values as little-endian bytes
    in ``tensor_content`` (Tensor::AsProtoTensorContent, what ``tf.make_tensor_proto``
    sends): one copy instead of a Python float or int per element. Strings always go in
    ``string_val``."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    array = np.asarray(array)
    if dtype is None:
        dtype = dtype_of_array(array, error)
    if content and dtype != DT_STRING and dtype in NUMPY_DTYPES:
        proto = tensor_pb2.TensorProto(
            dtype=dtype,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in array.shape]))
        proto.tensor_content = np.ascontiguousarray(
            array, dtype=np.dtype(NUMPY_DTYPES[dtype]).newbyteorder("<")).tobytes()
        return proto
    if dtype == DT_STRING:
        values = [v.encode("utf-8") if isinstance(v, str) else bytes(v)
                  for v in array.ravel().tolist()]
    else:
        array = array.astype(NUMPY_DTYPES[dtype], copy=False)
        values = array.ravel()
    proto = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in array.shape]))
    if dtype == DT_STRING:
        proto.string_val.extend(values)
    elif dtype == DT_FLOAT:
        proto.float_val.extend(values.tolist())
    elif dtype == DT_DOUBLE:
        proto.double_val.extend(values.tolist())
    elif dtype in (DT_INT32, DT_INT16, DT_INT8, DT_UINT8, DT_UINT16):
        proto.int_val.extend(values.tolist())
    elif dtype == DT_INT64:
        proto.int64_val.extend(values.tolist())
    elif dtype == DT_BOOL:
        proto.bool_val.extend(values.tolist())
    elif dtype == DT_HALF:
        proto.half_val.extend(values.view(np.uint16).tolist())
    elif dtype == DT_UINT32:
        proto.uint32_val.extend(values.tolist())
    elif dtype == DT_UINT64:
        proto.uint64_val.extend(values.tolist())
    else:
        raise error(f"Unsupported output dtype {dtype_name(dtype)}")
    return proto
