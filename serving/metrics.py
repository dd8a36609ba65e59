"""Prometheus metrics at TF Serving's monitoring path, ``/monitoring/prometheus/metrics``.

TF Serving exports them on its REST port when started with a monitoring config
(``prometheus_config { enable: true }``); this server always does (the REST port is
loopback-only and token-protected like the API when configured). Families, with TF
Serving's names (its request_latency is in microseconds, with its exponential buckets
10 * 1.8^i):

* ``:tensorflow:serving:request_count`` -- counter of requests by ``model_name``,
  ``model_version``, ``signature_name``, ``API`` (predict, metadata, status, ...),
  ``entrypoint`` (REST, GRPC) and ``status`` (OK or the error code).
* ``:tensorflow:serving:request_latency`` -- histogram (µs) by the same labels but status.
* ``:tensorflow:serving:request_error_count`` -- counter of failed requests (status != OK)
  by the request labels and ``status``; TF Serving folds these into request_count.

Labels we add to TF Serving's: ``model_version`` and ``signature_name`` (empty when the
request failed before a version or signature was chosen).
"""
from __future__ import annotations

import bisect
import threading

BUCKETS_US = tuple(10 * 1.8 ** i for i in range(33))
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PATH = "/monitoring/prometheus/metrics"

_LABELS = ("model_name", "model_version", "signature_name", "API", "entrypoint")


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names, values) -> str:
    return ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values))


class Metrics:
    """Thread-safe counters and histograms; :meth:`render` is Prometheus' text format."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[tuple, int] = {}
        self._hist: dict[tuple, list] = {}  # labels -> [bucket counts..., sum, count]

    def observe(self, model: str, version, signature: str, api: str, entrypoint: str,
                status: str, seconds: float) -> None:
        key = (model or "", "" if version is None else str(version), signature or "", api,
               entrypoint)
        us = seconds * 1e6
        with self._lock:
            self._counts[key + (status,)] = self._counts.get(key + (status,), 0) + 1
            hist = self._hist.get(key)
            if hist is None:
                hist = self._hist[key] = [0] * (len(BUCKETS_US) + 2)
            index = bisect.bisect_left(BUCKETS_US, us)
            if index < len(BUCKETS_US):  # beyond the last bucket: only +Inf (the count)
                hist[index] += 1
            hist[-2] += us
            hist[-1] += 1

    def count(self, **labels) -> int:
        """Sum of request_count over series matching ``labels`` (tests, benchmarks)."""
        names = _LABELS + ("status",)
        with self._lock:
            return sum(n for key, n in self._counts.items()
                       if all(key[names.index(k)] == str(v) for k, v in labels.items()))

    def render(self) -> str:
        with self._lock:
            counts = sorted(self._counts.items())
            hists = sorted((k, list(v)) for k, v in self._hist.items())
        lines = ["# TYPE :tensorflow:serving:request_count counter"]
        for key, n in counts:
            lines.append(f":tensorflow:serving:request_count{{{_labels(_LABELS + ('status',), key)}}} {n}")
        lines.append("# TYPE :tensorflow:serving:request_error_count counter")
        for key, n in counts:
            if key[-1] != "OK":
                lines.append(f":tensorflow:serving:request_error_count"
                             f"{{{_labels(_LABELS + ('status',), key)}}} {n}")
        lines.append("# TYPE :tensorflow:serving:request_latency histogram")
        for key, hist in hists:
            base = _labels(_LABELS, key)
            cumulative = 0
            for bound, n in zip(BUCKETS_US, hist):
                cumulative += n
                lines.append(f':tensorflow:serving:request_latency_bucket{{{base},le="{bound:.6g}"}}'
                             f" {cumulative}")
            lines.append(f':tensorflow:serving:request_latency_bucket{{{base},le="+Inf"}} {hist[-1]}')
            lines.append(f":tensorflow:serving:request_latency_sum{{{base}}} {hist[-2]:.1f}")
            lines.append(f":tensorflow:serving:request_latency_count{{{base}}} {hist[-1]}")
        return "\n".join(lines) + "\n"
