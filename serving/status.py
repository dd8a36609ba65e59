"""Error statuses shared by the REST and gRPC front ends of the model server.

TF Serving reports every failure as a ``tensorflow::Status`` (a canonical gRPC
code plus a message). Over gRPC that code is sent as is; over REST it becomes an
HTTP status through the table in ``http_server.cc`` (``ToHTTPStatusCode``),
reproduced in :data:`HTTP_STATUS`. The body is then ``{"error": "<message>"}``.
"""
from __future__ import annotations

import grpc

# tensorflow_serving/model_servers/http_server.cc: ToHTTPStatusCode().
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

# TensorFlow's error codes (tf.errors.OpError.error_code) are the gRPC code numbers.
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class ServerError(Exception):
    """A request failed with a canonical status code (what TF Serving would answer)."""

    def __init__(self, code: grpc.StatusCode, message: str, http_status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self._http_status = http_status

    @property
    def http_status(self) -> int:
        """TF Serving's HTTP status for the code (or an explicit one, e.g. 413 for size)."""
        return self._http_status or HTTP_STATUS.get(self.code, 500)

    def __str__(self) -> str:  # like tensorflow::Status::ToString()
        return f"{self.code.name}: {self.message}"


def invalid_argument(message: str) -> ServerError:
    return ServerError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServerError:
    return ServerError(grpc.StatusCode.NOT_FOUND, message)


def failed_precondition(message: str) -> ServerError:
    return ServerError(grpc.StatusCode.FAILED_PRECONDITION, message)


def unimplemented(message: str) -> ServerError:
    return ServerError(grpc.StatusCode.UNIMPLEMENTED, message)


def internal(message: str) -> ServerError:
    return ServerError(grpc.StatusCode.INTERNAL, message)


def deadline_exceeded(message: str) -> ServerError:
    return ServerError(grpc.StatusCode.DEADLINE_EXCEEDED, message)


def resource_exhausted(message: str) -> ServerError:
    return ServerError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def unavailable(message: str) -> ServerError:
    return ServerError(grpc.StatusCode.UNAVAILABLE, message)


def permission_denied(message: str) -> ServerError:
    return ServerError(grpc.StatusCode.PERMISSION_DENIED, message)


def unauthenticated(message: str) -> ServerError:
    return ServerError(grpc.StatusCode.UNAUTHENTICATED, message)


def cancelled(message: str) -> ServerError:
    return ServerError(grpc.StatusCode.CANCELLED, message)


def code_from_number(number: int) -> grpc.StatusCode:
    """Maps a TensorFlow/absl numeric error code to ``grpc.StatusCode`` (UNKNOWN if odd)."""
    return _BY_NUMBER.get(int(number), grpc.StatusCode.UNKNOWN)


def from_exception(exc: BaseException) -> ServerError:
    """Converts whatever a model call raised into a ServerError.

    ``tf.errors.OpError`` carries its canonical code (e.g. InvalidArgumentError from a
    bad shape inside the graph -> INVALID_ARGUMENT); anything else is INTERNAL.
    """
    if isinstance(exc, ServerError):
        return exc
    error_code = getattr(exc, "error_code", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(error_code, int):
        return ServerError(code_from_number(error_code), message)
    if isinstance(exc, (TypeError, ValueError)):
        return invalid_argument(message)
    return internal(f"{type(exc).__name__}: {message}")
