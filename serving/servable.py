"""One loaded SavedModel version: signatures, TF Serving-style Predict, warm-up replay.

``import scann`` and ``import tensorflow_text`` register their TF ops; they are imported
(once) before any SavedModel is loaded, so models using ScaNN or TF Text ops load. If
either import fails, that is logged and such models fail to load with an error saying so.
"""
from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import message, text_format
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2

from tensorflow.python.eager import context as _eager_context
from tensorflow.python.framework.constant_op import convert_to_eager_tensor as _to_eager_tensor

from recsys import names as N
from serving import status as st
from serving import tensors
from serving.limits import Limits, check_elements

try:  # TensorFlow's eager cancellation (how TF Serving's RunOptions deadline stops a Session)
    from tensorflow.python.eager import cancellation as _cancellation
except ImportError:  # pragma: no cover - a TensorFlow without it: requests are not cancellable
    _cancellation = None

# TensorFlow keeps the active CancellationManager in one process-wide global
# (cancellation.CancellationManagerContext), read by context.call_function when a function
# runs. Concurrent requests would cancel each other's calls, so the lookup is made
# per thread: a manager set by this module for this thread wins, else TF's global.
_thread_cancellation = threading.local()
if _cancellation is not None and not getattr(_cancellation, "_serving_thread_local", False):
    _tf_context_lookup = _cancellation.context

    def _thread_local_context():
        manager = getattr(_thread_cancellation, "manager", None)
        return manager if manager is not None else _tf_context_lookup()

    _cancellation.context = _thread_local_context
    _cancellation._serving_thread_local = True

log = logging.getLogger("serving.models")

DEFAULT_SIGNATURE = N.SERVING_DEFAULT
SERVE_TAG = "serve"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving's limit

_LIST_INPUTS = (N.HISTORY, N.EXCLUDE, N.ORDER_POS)
_RANKED_PADDING = {N.ITEM_IDS: b"", N.SCORES: -np.inf}

_custom_ops_lock = threading.Lock()
_custom_ops: dict[str, str | None] = {}


def import_custom_ops() -> dict[str, str | None]:
    """Imports the libraries whose TF ops SavedModels may use (ScaNN, TF Text), once.

    Returns {module: None if imported else the error}. A failure is logged, not raised:
    models that need those ops then fail to load with an error that says why.
    """
    with _custom_ops_lock:
        if not _custom_ops:
            for module in ("scann", "tensorflow_text"):
                try:
                    importlib.import_module(module)
                    _custom_ops[module] = None
                    log.info("Imported %s: its TF ops are registered", module)
                except Exception as err:  # ImportError, or a .so that fails to load
                    _custom_ops[module] = f"{type(err).__name__}: {err}"
                    log.error("Could not import %s (%s); SavedModels using its ops will fail "
                              "to load", module, _custom_ops[module])
        return dict(_custom_ops)


_gc_lock = threading.Lock()


def freeze_heap() -> float:
    """Collects, then moves every object alive into the collector's permanent generation
    (``gc.freeze``); returns the seconds it took.

    A loaded TensorFlow and its SavedModels are some 400,000 long-lived Python objects that a
    full (generation 2) collection walks every time: about 0.3 s with the MovieLens ranker loaded
    on the development machine, a pause for every request in flight. Frozen, they are no longer
    walked. Called after each version loads; ``gc.unfreeze`` first, so that the cycles of versions
    unloaded since the last load are collected then. Objects allocated later are collected as
    usual."""
    start = time.perf_counter()
    with _gc_lock:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
    return time.perf_counter() - start


def read_signature_defs(export_dir: str) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDef map of the 'serve' MetaGraph, as TF Serving reports it in metadata."""
    saved_model = saved_model_pb2.SavedModel()
    pb_path = os.path.join(export_dir, "saved_model.pb")
    pbtxt_path = os.path.join(export_dir, "saved_model.pbtxt")
    try:
        if tf.io.gfile.exists(pb_path):
            with tf.io.gfile.GFile(pb_path, "rb") as f:
                saved_model.ParseFromString(f.read())
        elif tf.io.gfile.exists(pbtxt_path):
            with tf.io.gfile.GFile(pbtxt_path, "r") as f:
                text_format.Parse(f.read(), saved_model)
    except (message.DecodeError, text_format.ParseError) as err:
        raise st.ServerError(grpc.StatusCode.DATA_LOSS,
                             f"Could not parse the SavedModel in {export_dir}: {err}") from None
    if not saved_model.meta_graphs:
        raise st.not_found(f"Could not find a SavedModel (saved_model.pb or .pbtxt with a "
                           f"MetaGraph) at supplied export directory path: {export_dir}")
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise st.not_found(f"Could not find meta graph def matching supplied tags: {{ {SERVE_TAG} }}"
                       f" in {export_dir}")


class _FlatCall:
    """``fn(**feeds)`` for a loaded signature function, without TensorFlow's per-call
    argument binding.

    ``ConcreteFunction.__call__`` binds the keyword arguments to the function type, flattens
    them, maps the captured inputs and checks for a gradient tape before it reaches
    ``_inference_function.call_preflattened(inputs + captured_inputs)``: about 0.15-0.2 ms of
    Python per request on the development machine, a third of a small model's whole call. The
    server feeds exactly one tensor per input, records no gradients and uses no distribution
    strategy, so it calls ``call_preflattened`` itself with the inputs in the function type's
    order -- what ``_call_flat`` does in that case (TensorFlow 2.16). :meth:`create` returns
    None (the server then calls ``fn(**feeds)``) when the function does not have that shape:
    a parameter that is not a keyword-only tensor, or a TensorFlow without these attributes.
    """

    __slots__ = ("fn", "names", "call")

    def __init__(self, fn, names: list[str], call):
        self.fn, self.names, self.call = fn, names, call

    @classmethod
    def create(cls, fn) -> "_FlatCall | None":
        try:
            params = list(fn.function_type.parameters.values())
            call = fn._inference_function.call_preflattened
            keywords = list(fn._arg_keywords)
            fn.captured_inputs  # noqa: B018 - the attribute must exist
        except Exception:  # another TensorFlow, or not a ConcreteFunction
            return None
        names = [p.name for p in params]
        if (not params or keywords != names
                or any(p.kind is not p.KEYWORD_ONLY or p.default is not p.empty
                       or not isinstance(p.type_constraint, tf.TensorSpec) for p in params)):
            return None
        return cls(fn, names, call)

    def __call__(self, feeds: Mapping[str, tf.Tensor]):
        if len(feeds) != len(self.names):  # an input left to its default: TF binds it
            return self.fn(**feeds)
        return self.call([feeds[name] for name in self.names] + self.fn.captured_inputs)


def _shape_text(shape: Iterable[int]) -> str:
    return "[" + ",".join("?" if d < 0 else str(d) for d in shape) + "]"


@dataclass(eq=False)
class Prepared:
    """A validated request: what :meth:`Servable.run` (or a batch scheduler) executes."""

    signature_name: str
    feeds: dict[str, np.ndarray]
    outputs: list[str]
    rows: int | None  # dimension 0 shared by the batched inputs (None: no batch dimension)
    ks: np.ndarray | None = None  # per-row k of the recommender contract

    def batch_key(self) -> tuple:
        return (self.signature_name, tuple(self.outputs), tuple(sorted(self.feeds)))


@contextlib.contextmanager
def _cancellation_context(manager):
    """Runs TF functions of this thread under ``manager`` (start_cancel() stops them)."""
    if manager is None or _cancellation is None:
        yield
        return
    _thread_cancellation.manager = manager
    try:
        yield
    finally:
        _thread_cancellation.manager = None


class Servable:
    """One loaded version of a model: its SavedModel, signature functions and defs."""

    def __init__(self, name: str, version: int, path: str, limits: Limits | None = None):
        self.name, self.version, self.path = name, int(version), path
        self.limits = limits or Limits()
        self.signature_defs: dict[str, meta_graph_pb2.SignatureDef] = {}
        self.functions: dict = {}
        self._calls: dict = {}  # signature name -> _FlatCall, or the function itself
        self._input_dtypes: dict[str, dict[str, tf.DType]] = {}
        self.warmup_records = 0
        self.batcher = None  # set by the registry when --enable_batching

    def __repr__(self) -> str:
        return f"Servable(name={self.name!r}, version={self.version}, path={self.path!r})"

    def load(self) -> "Servable":
        self.signature_defs = read_signature_defs(self.path)
        try:
            loaded = tf.saved_model.load(self.path, tags=[SERVE_TAG])
        except Exception as err:
            error = st.from_exception(err)
            if "Op type not registered" in error.message:
                missing = {m: e for m, e in import_custom_ops().items() if e}
                hint = (f" (these libraries failed to import, so their ops are missing: "
                        f"{missing})") if missing else ""
                error = st.ServerError(error.code, error.message + hint)
            raise error from None
        self._loaded = loaded  # keeps variables/tables alive
        self.functions = dict(loaded.signatures)
        for name, fn in self.functions.items():
            flat = _FlatCall.create(fn)
            self._calls[name] = flat if flat is not None else (lambda feeds, fn=fn: fn(**feeds))
            if name in self.signature_defs:
                self._input_dtypes[name] = {
                    key: tf.dtypes.as_dtype(info.dtype)
                    for key, info in self.signature_defs[name].inputs.items()}
        self.warmup_records = self._warmup()
        freeze_heap()
        return self

    # -------------------------------------------------------------------- requests

    def signature_def(self, signature_name: str) -> meta_graph_pb2.SignatureDef:
        name = signature_name or DEFAULT_SIGNATURE
        if name not in self.signature_defs or name not in self.functions:
            raise st.failed_precondition(f'Serving signature key "{name}" not found.')
        return self.signature_defs[name]

    def input_dtypes(self, signature_name: str) -> dict[str, int]:
        """Input name -> DataType for the REST parser (REST reports a bad signature as 400)."""
        name = signature_name or DEFAULT_SIGNATURE
        if name not in self.signature_defs or name not in self.functions:
            raise st.invalid_argument(
                f'Serving signature name: "{name}" not found in signature def')
        return {k: v.dtype for k, v in self.signature_defs[name].inputs.items()}

    def prepare(self, signature_name: str, inputs: Mapping[str, np.ndarray],
                output_filter: Sequence[str] = ()) -> Prepared:
        """Checks a request against the signature and the limits (TF Serving's messages)."""
        name = signature_name or DEFAULT_SIGNATURE
        signature = self.signature_def(name)
        expected = sorted(signature.inputs)
        sent = sorted(inputs)
        if len(sent) > len(expected) or (len(sent) < len(expected) and not signature.defaults):
            extra = sorted(set(sent) - set(expected))
            missing = sorted(set(expected) - set(sent))
            raise st.invalid_argument(
                f"input size does not match signature: {len(sent)}!={len(expected)} "
                f"len({{{','.join(sent)}}}) != len({{{','.join(expected)}}}). "
                f"Sent extra: {{{','.join(extra)}}}. Missing but required: "
                f"{{{','.join(missing)}}}.")
        feeds: dict[str, np.ndarray] = {}
        rows: dict[str, int] = {}
        total = 0
        for key, array in inputs.items():
            if key not in signature.inputs:
                raise st.invalid_argument(
                    f"input tensor alias not found in signature: {key}. Inputs expected to be "
                    f"in the set {{{','.join(expected)}}}.")
            info = signature.inputs[key]
            array = np.asarray(array)
            if tensors.dtype_of_array(array) != info.dtype:
                raise st.invalid_argument(
                    f"Expects arg[{expected.index(key)}] ({key}) to be "
                    f"{tensors.dtype_name(info.dtype)} but "
                    f"{tensors.dtype_name(tensors.dtype_of_array(array))} is provided")
            total += array.size
            if not info.tensor_shape.unknown_rank:
                want = [d.size for d in info.tensor_shape.dim]
                if len(want) != array.ndim or any(
                        w >= 0 and w != g for w, g in zip(want, array.shape)):
                    raise st.invalid_argument(
                        f"input '{key}' has shape {_shape_text(array.shape)}, which is "
                        f"incompatible with the signature's {_shape_text(want)}")
                if want and want[0] < 0:
                    rows[key] = array.shape[0]
            feeds[key] = array
        check_elements(total, self.limits)
        if len(set(rows.values())) > 1:
            sizes = ", ".join(f"{k} has {n}" for k, n in sorted(rows.items()))
            raise st.invalid_argument(
                f"inputs must have the same batch size (dimension 0): {sizes}")
        batch = next(iter(rows.values()), None)
        if batch is not None and batch > self.limits.max_batch_size:
            raise st.invalid_argument(
                f"Task size {batch} is larger than maximum batch size "
                f"{self.limits.max_batch_size} (--max_batch_size)")
        ks = self._check_contract(feeds)
        wanted = list(output_filter)
        for alias in wanted:
            if alias not in signature.outputs:
                raise st.invalid_argument(
                    f"output tensor alias not found in signature: {alias} Outputs expected to "
                    f"be in the set {{{','.join(sorted(signature.outputs))}}}.")
        if len(set(wanted)) != len(wanted):
            dup = next(a for a in wanted if wanted.count(a) > 1)
            raise st.invalid_argument(f"duplicate output tensor alias: {dup}")
        return Prepared(name, feeds, wanted or sorted(signature.outputs), batch, ks)

    def _check_contract(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """The recommender signatures' own rules: 1 <= k <= max_k, bounded list lengths."""
        limits = self.limits
        for key in _LIST_INPUTS:
            array = feeds.get(key)
            if array is not None and array.ndim >= 2 and array.shape[1] > limits.max_list_length:
                raise st.invalid_argument(
                    f"input '{key}' has {array.shape[1]} items per row, more than the server's "
                    f"limit of {limits.max_list_length} (--max_list_length)")
        k = feeds.get(N.K)
        if k is None or k.dtype.kind not in "iu":
            return None
        bad = np.flatnonzero((k < 1) | (k > limits.max_k))
        if bad.size:
            row = int(bad[0])
            raise st.invalid_argument(
                f"k must be between 1 and {limits.max_k} (--max_k); got {k.reshape(-1)[row]}"
                + (f" in row {row}" if k.ndim else ""))
        return k.reshape(-1) if k.ndim <= 1 else None

    def run(self, prepared: Prepared, cancellation=None) -> dict[str, np.ndarray]:
        """Runs the signature function on validated feeds; ``cancellation`` (a TF
        CancellationManager) stops it mid-way when the client goes away or times out."""
        dtypes = self._input_dtypes[prepared.signature_name]
        ctx = _eager_context.context()
        try:
            feeds = {key: _to_eager_tensor(array, ctx, dtypes[key])  # what tf.constant does
                     for key, array in prepared.feeds.items()}
            with _cancellation_context(cancellation):
                result = self._calls[prepared.signature_name](feeds)
        except Exception as err:
            raise st.from_exception(err) from None
        return {alias: result[alias].numpy() for alias in prepared.outputs}

    @staticmethod
    def finish(prepared: Prepared, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per-row k of the recommender contract: ranked outputs ([B, K] ``item_ids`` and
        ``scores``) keep the first k[i] entries of row i; the rest is the contract's
        padding ("" and -inf), so one row's k is never replaced by the batch's maximum."""
        ks = prepared.ks
        ranked = [alias for alias in outputs if alias in _RANKED_PADDING]
        if ks is None or not ranked:
            return outputs
        ids = outputs[ranked[0]]
        if ids.ndim != 2 or ids.shape[0] != ks.shape[0]:
            return outputs
        width = min(ids.shape[1], int(ks.max()) if ks.size else 0)
        mask = np.arange(width)[None, :] >= ks[:, None]
        done = {}
        for alias, array in outputs.items():
            if array.ndim >= 2 and array.shape[0] == ks.shape[0] and alias in _RANKED_PADDING:
                array = array[:, :width].copy()
                if mask.any():
                    array[mask] = _RANKED_PADDING[alias]
            done[alias] = array
        return done

    def predict(self, signature_name: str, inputs: Mapping[str, np.ndarray],
                output_filter: Sequence[str] = (), *, cancellation=None,
                batching: bool = True) -> tuple[str, dict[str, np.ndarray]]:
        """Runs a signature like TF Serving's RunPredict; returns (signature name, outputs).

        With a batch scheduler attached (``--enable_batching``) the request joins a batch.
        """
        prepared = self.prepare(signature_name, inputs, output_filter)
        if batching and self.batcher is not None and prepared.rows is not None:
            outputs = self.batcher.run(self, prepared, cancellation)
        else:
            outputs = self.run(prepared, cancellation)
        return prepared.signature_name, self.finish(prepared, outputs)

    # --------------------------------------------------------------------- warm-up

    def _warmup(self) -> int:
        path = os.path.join(self.path, WARMUP_FILE)
        if not tf.io.gfile.exists(path):
            return 0
        start = time.monotonic()
        count = 0
        for record in tf.data.TFRecordDataset(path):
            entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            kind = entry.WhichOneof("log_type")
            if kind != "predict_log":
                log.warning("Skipping warmup record of type %s for %s version %d (only "
                            "predict_log is replayed)", kind, self.name, self.version)
                continue
            count += 1
            if count > MAX_WARMUP_RECORDS:
                raise st.invalid_argument(f"Number of warmup records exceeds the maximum "
                                          f"({MAX_WARMUP_RECORDS}) at {path}")
            request = entry.predict_log.request
            inputs = {k: tensors.tensor_proto_to_array(v) for k, v in request.inputs.items()}
            self.predict(request.model_spec.signature_name, inputs, list(request.output_filter),
                         batching=False)
        log.info("Finished reading warmup data for model at %s. Number of warmup records read: "
                 "%d. Elapsed time (microseconds): %d.", path, count,
                 int((time.monotonic() - start) * 1e6))
        return count


def new_cancellation():
    """A TF CancellationManager for one request (None if this TensorFlow has none)."""
    return _cancellation.CancellationManager() if _cancellation is not None else None
