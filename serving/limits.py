"""Resource limits of the model server, and the recommender contract checks that use them.

Every limit is configurable (``python -m serving.server --help``) and every refusal uses
the code TF Serving would: a request body or gRPC message over ``max_request_bytes`` is
HTTP 413 / RESOURCE_EXHAUSTED; more tensor elements than ``max_tensor_elements`` (checked
on the *declared* shapes, before anything is allocated) is 413 / RESOURCE_EXHAUSTED; a
batch larger than ``max_batch_size`` (TF Serving's "Task size ... is larger than maximum
batch size"), inputs with different batch sizes, ``k`` outside ``1..max_k`` and history or
exclude lists longer than ``max_list_length`` are 400 / INVALID_ARGUMENT.
"""
from __future__ import annotations

from dataclasses import dataclass

import grpc

from serving import status as st

MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    #: REST body and gRPC message size (bytes).
    max_request_bytes: int = 16 * MiB
    #: Elements summed over every input tensor of one request.
    max_tensor_elements: int = 1_000_000
    #: Rows (dimension 0) of one request.
    max_batch_size: int = 1024
    #: Items per row of ``history`` / ``order_pos`` / ``exclude``.
    max_list_length: int = 2000
    #: Largest ``k`` (items asked for per row).
    max_k: int = 10_000

    def __post_init__(self):
        for name, value in vars(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"limit {name} must be a positive int, got {value!r}")


def too_large(message: str) -> st.ServerError:
    """RESOURCE_EXHAUSTED over gRPC, 413 Payload Too Large over REST."""
    return st.ServerError(grpc.StatusCode.RESOURCE_EXHAUSTED, message, http_status=413)


def check_elements(total: int, limits: Limits) -> None:
    if total > limits.max_tensor_elements:
        raise too_large(f"Request has {total:,} tensor elements, more than the server's limit of "
                        f"{limits.max_tensor_elements:,} (--max_tensor_elements)")
