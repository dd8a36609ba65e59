"""Server-side batching: concurrent requests to one signature run as one model call.

Modelled on TF Serving's ``--enable_batching`` with a ``--batching_parameters_file``
(a ``BatchingParameters`` text proto)::

    max_batch_size { value: 64 }          # rows per model call
    batch_timeout_micros { value: 1000 }  # how long the first request waits for company
    max_enqueued_batches { value: 16 }    # queue bound, in batches (then UNAVAILABLE)
    num_batch_threads { value: 2 }        # model calls running at once
    allowed_batch_sizes: 8                # optional: pad each batch up to one of these
    allowed_batch_sizes: 64
    pad_variable_length_inputs: true      # pad [B, L] inputs of different L to one L

As in TF Serving, requests are concatenated along dimension 0 and outputs are split
back along dimension 0; a request larger than ``max_batch_size`` is INVALID_ARGUMENT
("Task size ... is larger than maximum batch size") and a full queue is UNAVAILABLE.
Requests only share a batch when they call the same version, signature and output
filter, and their inputs agree on every dimension but the first (with
``pad_variable_length_inputs``, ragged string lists are padded with ``""`` and numbers
with 0, the recommender models' padding values; TF Serving pads with the tensor's first
element instead). Batches padded to an allowed size repeat their last row.
Ranked outputs are cut back to each request's own k afterwards
(:meth:`serving.servable.Servable.finish`), so a batched answer equals the unbatched one.
"""
from __future__ import annotations

import collections
import concurrent.futures
import logging
import re
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from serving import status as st

log = logging.getLogger("serving.batching")


@dataclass(frozen=True)
class BatchingParameters:
    max_batch_size: int = 64
    batch_timeout_micros: int = 1000
    max_enqueued_batches: int = 16
    num_batch_threads: int = 2
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = True

    def __post_init__(self):
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"batching parameter {name} must be >= 1")
        if self.batch_timeout_micros < 0:
            raise ValueError("batching parameter batch_timeout_micros must be >= 0")
        sizes = list(self.allowed_batch_sizes)
        if sizes and (sizes != sorted(set(sizes)) or sizes[-1] != self.max_batch_size):
            raise ValueError("allowed_batch_sizes must increase and end with max_batch_size "
                             "(as TF Serving requires)")


_WRAPPED = re.compile(r"(\w+)\s*\{\s*value\s*:\s*([^\s}]+)\s*\}")
_PLAIN = re.compile(r"(\w+)\s*:\s*([^\s{}]+)")


def parse_batching_parameters(text: str) -> BatchingParameters:
    """Reads TF Serving's BatchingParameters text format (the fields listed above)."""
    values: dict = {}
    sizes: list[int] = []
    rest = _WRAPPED.sub(lambda m: values.__setitem__(m.group(1), m.group(2)) or "", text)
    for m in _PLAIN.finditer(rest):
        if m.group(1) == "allowed_batch_sizes":
            sizes.append(int(m.group(2)))
        else:
            values[m.group(1)] = m.group(2)
    known = {f for f in BatchingParameters.__dataclass_fields__ if f != "allowed_batch_sizes"}
    kwargs: dict = {}
    for name, value in values.items():
        if name == "thread_pool_name":
            continue
        if name not in known:
            raise ValueError(f"unknown batching parameter {name!r} (known: {sorted(known)})")
        kwargs[name] = value.lower() == "true" if name == "pad_variable_length_inputs" \
            else int(value.strip('"'))
    return BatchingParameters(allowed_batch_sizes=tuple(sizes), **kwargs)


@dataclass(eq=False)  # compared by identity (queue removal), never by value
class _Task:
    servable: object
    prepared: object
    cancellation: object
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    enqueued: float = field(default_factory=time.monotonic)
    started: bool = False


def _pad(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if array.shape[1:] == shape:
        return array
    out = np.full((array.shape[0],) + shape, b"" if array.dtype == object else 0,
                  dtype=array.dtype)
    out[tuple(slice(0, n) for n in array.shape)] = array
    return out


class BatchScheduler:
    """One queue and ``num_batch_threads`` threads for one servable version."""

    def __init__(self, params: BatchingParameters, name: str = ""):
        self.params = params
        self.name = name
        self._queue: collections.deque[_Task] = collections.deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._stopped = False
        self.batches = 0  # model calls made (for tests and metrics)
        self.batched_rows = 0
        self._threads = [threading.Thread(target=self._loop, daemon=True,
                                          name=f"batch-{name}-{i}")
                         for i in range(params.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            pending = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for task in pending:
            task.future.set_exception(st.unavailable(f"Servable {self.name} is unloading"))

    # ----------------------------------------------------------------- requests

    def run(self, servable, prepared, cancellation=None) -> dict[str, np.ndarray]:
        """Queues one request and waits for its share of a batch's outputs."""
        p = self.params
        if prepared.rows > p.max_batch_size:
            raise st.invalid_argument(f"Task size {prepared.rows} is larger than maximum batch "
                                      f"size {p.max_batch_size}")
        task = _Task(servable, prepared, cancellation)
        with self._cond:
            if self._stopped:
                raise st.unavailable(f"Servable {self.name} is unloading")
            if self._queued_rows + prepared.rows > p.max_enqueued_batches * p.max_batch_size:
                raise st.unavailable("The batch scheduling queue to which this task was "
                                     "submitted is full")
            self._queue.append(task)
            self._queued_rows += prepared.rows
            self._cond.notify()
        while True:
            try:
                return task.future.result(timeout=0.05)
            except concurrent.futures.TimeoutError:
                pass
            if cancellation is not None and cancellation.is_cancelled:
                with self._cond:
                    if not task.started:  # still queued: it never runs
                        self._queue.remove(task)
                        self._queued_rows -= prepared.rows
                        raise st.cancelled("Request cancelled while waiting for a batch")

    # -------------------------------------------------------------------- batches

    def _compatible(self, first: _Task, task: _Task) -> bool:
        a, b = first.prepared, task.prepared
        if task.servable is not first.servable or a.batch_key() != b.batch_key():
            return False
        for key, array in a.feeds.items():
            other = b.feeds[key]
            if array.dtype != other.dtype or array.ndim != other.ndim:
                return False
            if array.shape[1:] != other.shape[1:] and not self.params.pad_variable_length_inputs:
                return False
        return True

    def _next_batch(self) -> list[_Task] | None:
        p = self.params
        with self._cond:
            while not self._queue and not self._stopped:
                self._cond.wait()
            if self._stopped:
                return None
            first = self._queue.popleft()
            batch, rows = [first], first.prepared.rows
            deadline = first.enqueued + p.batch_timeout_micros / 1e6
            while True:
                for task in list(self._queue):
                    if rows + task.prepared.rows <= p.max_batch_size and \
                            self._compatible(first, task):
                        self._queue.remove(task)
                        batch.append(task)
                        rows += task.prepared.rows
                remaining = deadline - time.monotonic()
                if rows >= p.max_batch_size or remaining <= 0 or self._stopped:
                    break
                self._cond.wait(remaining)
            for task in batch:
                task.started = True
                self._queued_rows -= task.prepared.rows
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            live = []
            for task in batch:
                if task.cancellation is not None and task.cancellation.is_cancelled:
                    task.future.set_exception(st.cancelled("Request cancelled"))
                else:
                    live.append(task)
            try:
                if live:
                    self._execute(live)
            except BaseException as err:  # never leave a waiting request without an answer
                log.exception("Batch of %s failed", self.name)
                for task in live:
                    if not task.future.done():
                        task.future.set_exception(st.internal(f"{type(err).__name__}: {err}"))

    def _execute(self, batch: list[_Task]) -> None:
        from serving.servable import Prepared

        first = batch[0].prepared
        rows = [t.prepared.rows for t in batch]
        total = sum(rows)
        padded_total = next((s for s in self.params.allowed_batch_sizes if s >= total), total)
        try:
            feeds = {}
            for key in first.feeds:
                arrays = [t.prepared.feeds[key] for t in batch]
                shape = tuple(max(a.shape[d] for a in arrays) for d in range(1, arrays[0].ndim))
                merged = np.concatenate([_pad(a, shape) for a in arrays], axis=0)
                if padded_total > total:
                    merged = np.concatenate(
                        [merged, np.repeat(merged[-1:], padded_total - total, axis=0)], axis=0)
                feeds[key] = merged
            merged_request = Prepared(first.signature_name, feeds, first.outputs, padded_total)
            outputs = batch[0].servable.run(merged_request)
            for alias, array in outputs.items():
                if array.ndim == 0 or array.shape[0] != padded_total:
                    raise st.internal(
                        f"Batched output '{alias}' has shape {list(array.shape)}; batching needs "
                        f"every output to have the batch ({padded_total}) as dimension 0")
        except Exception as err:  # the whole batch fails alike
            error = st.from_exception(err)
            for task in batch:
                task.future.set_exception(error)
            return
        self.batches += 1
        self.batched_rows += total
        offset = 0
        for task, n in zip(batch, rows):
            task.future.set_result({alias: array[offset:offset + n]
                                    for alias, array in outputs.items()})
            offset += n
