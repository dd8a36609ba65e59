"""Thin Python client for the recommender models behind TF Serving's API (REST or gRPC).

Works against real TensorFlow Serving and against ``python -m serving.server``::

    from commerce_recsys_client import RecommenderClient  # or: from serving.client import ...

    client = RecommenderClient("localhost:8501")                  # REST
    client = RecommenderClient("localhost:8500", protocol="grpc")  # gRPC
    client.recommend(history=["sku-1", "sku-7"], k=10)   # signature serving_default
    client.recommend(user_id="u-42", k=10, exclude=["sku-1"])  # signature recommend_user

The REST path needs only the standard library and numpy (``pip install ./clients/python``:
this module ships in its own distribution, ``commerce-recsys-client``, and the full stack
re-exports it as ``serving.client``); the gRPC path imports ``grpc`` and
``tensorflow_serving.apis`` on first use: TensorFlow's own in the full install, or the
TF-free protos of the ``grpc`` extra (``min-tfs-client``; see ``clients/python/README.md``).

Retrieval SavedModel contract: ``serving_default(history: string[B, H], k: int32[B],
exclude: string[B, E])`` and ``recommend_user(user_id: string[B], k, exclude)``, both
returning ``item_ids: string[B, K]`` and ``scores: float[B, K]``; lists are padded with "".
"""
from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from commerce_recsys_client import names as N  # recsys/names.py, the contract module, by path
from commerce_recsys_client import tensors
from commerce_recsys_client.jsontext import request_json_text

USER_SIGNATURE = N.RECOMMEND_USER
ORDERS_SIGNATURE = N.RECOMMEND_ORDERS
#: ``model_name="auto"`` picks the first of these the server has available. The pipeline
#: pushes ``dual_retrieval`` only when it beats the two-tower on validation.
DEFAULT_RETRIEVAL_MODELS = N.DEFAULT_RETRIEVAL_MODELS
AUTO = "auto"
_METADATA_TTL_S = 30.0
_NUMPY_BY_NAME = {"DT_" + name.upper(): tensors.NUMPY_DTYPES[dt]
                  for dt, name in tensors.DTYPE_NAMES.items() if dt in tensors.NUMPY_DTYPES}


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    score: float


@dataclass(frozen=True)
class RankedItem:
    """One candidate as the served ranker scored it (``score`` = pCTR x pCVR ** the model's power)."""

    item_id: str
    score: float
    pctr: float
    pcvr: float
    pctcvr: float


ITEM_ENCODER_MODEL = N.ITEM_ENCODER
ITEM_TEXT_FIELDS = N.ITEM_TEXT_FIELDS


@dataclass(frozen=True)
class EncodedItem:
    """An item in content space: its Semantic ID (L codes + disambiguation) and content embedding."""

    semantic_id: tuple[int, ...]
    embedding: np.ndarray | None = field(default=None, compare=False)


class ServingError(Exception):
    """The model server refused or failed a request.

    ``code`` is the HTTP status (REST) or the gRPC status code name (gRPC), or
    "UNAVAILABLE"/"DEADLINE_EXCEEDED" for connection failures and client-side timeouts;
    ``message`` is the server's error text.
    """

    def __init__(self, message: str, code: int | str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]" if self.code is not None else self.message


class ServingTimeout(ServingError):
    """The request did not finish within the client's timeout (or the server's deadline)."""


INT32_MAX = 2**31 - 1


def check_k(k: Any, name: str = "k") -> int:
    """A top-k count as the server accepts it: an int (not bool) in 1..2**31-1.

    The server has its own, usually lower, limit (``--max_k``) and answers
    INVALID_ARGUMENT above it.
    """
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {k!r} ({type(k).__name__})")
    if not 1 <= int(k) <= INT32_MAX:
        raise ValueError(f"{name} must be between 1 and {INT32_MAX}, got {k}")
    return int(k)


def check_timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or \
            not timeout > 0 or timeout != timeout or timeout == float("inf"):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _pad(rows: Sequence[Sequence[str]]) -> np.ndarray:
    width = max([1] + [len(row) for row in rows])
    array = np.full((len(rows), width), "", dtype=object)
    for i, row in enumerate(rows):
        array[i, : len(row)] = [str(item) for item in row]
    return array


def _cast(value: Any, np_dtype) -> np.ndarray:
    """Casts client input to the signature dtype when that is safe (lists of ints -> int32)."""
    array = np.asarray(value, dtype=object if np_dtype is object else None)
    if np_dtype is object or array.dtype == np.dtype(np_dtype):
        return array
    target = np.dtype(np_dtype)
    if array.dtype.kind in "iub" and target.kind in "iu":
        info = np.iinfo(target)
        if array.size and (array.min() < info.min or array.max() > info.max):
            return array  # let the server report the mismatch
        return array.astype(target)
    if array.dtype.kind in "iuf" and target.kind == "f":
        return array.astype(target)
    return array


def _strings(array: np.ndarray, name: str) -> np.ndarray:
    """String outputs as str (bytes for *_bytes outputs), whatever the protocol gave."""
    def leaf(v: Any) -> Any:
        if name.endswith("_bytes"):
            if isinstance(v, dict):
                return base64.b64decode(v["b64"])
            return v if isinstance(v, bytes) else str(v).encode("utf-8")
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else v
    out = np.empty(array.shape, dtype=object)
    if array.dtype == object:  # a list at a time (tolist() gives the very objects ndenumerate does)
        out.reshape(-1)[:] = [leaf(v) for v in array.ravel().tolist()] if array.size else []
        return out
    for index, v in np.ndenumerate(array):
        out[index] = leaf(v)
    return out


def _object_array(value: Any) -> np.ndarray:
    shape = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    flat: list = []

    def walk(v: Any) -> None:
        if isinstance(v, list):
            for item in v:
                walk(item)
        else:
            flat.append(v)

    walk(value)
    array = np.empty(len(flat), dtype=object)
    array[:] = flat
    return array.reshape(shape)


def retrieval_features(candidates: Sequence[str],
                       sources: Mapping[str, Sequence[tuple[str, float]]] | None) -> np.ndarray:
    """The ranker's ``retrieval_features`` [1, N, sources x 3] for ``RecommenderClient.rank``:
    per source in ``recsys.names.RANKER_SOURCES`` order (retrieved 1/0, score, 1/rank), rank
    being the 1-based position in that source's list; an item listed twice keeps its last
    entry; items not among ``candidates`` are ignored."""
    width = len(N.RANKER_SOURCE_FEATURES)
    feats = np.zeros((1, len(candidates), len(N.RANKER_SOURCES) * width), np.float32)
    col = {c: i for i, c in enumerate(candidates)}
    for s_idx, source in enumerate(N.RANKER_SOURCES):
        found: dict[int, tuple[float, float]] = {}  # candidate -> (score, 1/rank)
        for r, (item, score) in enumerate((sources or {}).get(source, ())):
            i = col.get(str(item))
            if i is not None:
                found[i] = (float(score), 1.0 / (r + 1))
        if found:
            rows = np.fromiter(found, np.int64, len(found))
            feats[0, rows, s_idx * width] = 1.0
            feats[0, rows, s_idx * width + 1:(s_idx + 1) * width] = np.array(list(found.values()), np.float64)
    return feats


class _HttpConnection:
    """One kept-alive HTTP/1.1 connection: each request is one ``sendall`` (request line,
    headers and body together), the answer is read with one ``recv`` when it fits.

    ``http.client`` sent the head and the body in two writes (two segments, so the server
    woke up twice per request) and parsed the answer's headers with the ``email`` package;
    on a small request that was about 0.1 ms of client CPU and 0.15 ms of latency on the
    development machine. Answers with ``Content-Length``, ``chunked`` or read-until-close
    bodies are understood; ``1xx`` interim answers are skipped.
    """

    def __init__(self, host: str, port: int, timeout: float, ssl_context=None):
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ssl_context is not None:
                sock = ssl_context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.host_header = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.buffer = b""

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def request(self, method: str, url: str, headers: str, body: bytes | None
                ) -> tuple[int, str, bool, bytes]:
        """Sends one request; returns (status, reason, server closes the connection, body)."""
        head = f"{method} {url} HTTP/1.1\r\nHost: {self.host_header}\r\n{headers}"
        if body is not None:
            head += f"Content-Length: {len(body)}\r\n"
        message = (head + "\r\n").encode("latin-1")
        self.sock.sendall(message + body if body else message)
        self.buffer = b""
        while True:
            status, reason, fields, version = self._read_head()
            if not 100 <= status < 200:
                break
        close = "close" in fields.get("connection", "").lower() or (
            version == "HTTP/1.0" and "keep-alive" not in fields.get("connection", "").lower())
        if "chunked" in fields.get("transfer-encoding", "").lower():
            data = self._read_chunked()
        elif "content-length" in fields:
            try:
                length = int(fields["content-length"])
            except ValueError:
                raise http.client.HTTPException(
                    f"invalid Content-Length {fields['content-length']!r}") from None
            data = self._read_exactly(length)
        else:
            data, close = self._read_to_close(), True
        return status, reason, close, data

    def _recv(self) -> bytes:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        return chunk

    def _read_head(self):
        buffer = self.buffer
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buffer) > 65536:
                raise http.client.HTTPException("answer head larger than 64 KiB")
            buffer += self._recv()
        lines = buffer[:end].decode("latin-1").split("\r\n")
        self.buffer = buffer[end + 4:]
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/") or not code.isdigit():
            raise http.client.BadStatusLine(lines[0][:100])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        return int(code), reason, fields, version

    def _read_exactly(self, length: int) -> bytes:
        buffer = self.buffer
        if len(buffer) < length:
            parts, have = [buffer], len(buffer)
            while have < length:
                chunk = self._recv()
                parts.append(chunk)
                have += len(chunk)
            buffer = b"".join(parts)
        self.buffer = buffer[length:]
        return buffer[:length]

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self.buffer += self._recv()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            try:
                size = int(self._read_line().split(b";")[0].strip(), 16)
            except ValueError:
                raise http.client.HTTPException("malformed chunk size") from None
            if size == 0:
                while self._read_line():  # trailer fields, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._read_exactly(size))
            self._read_exactly(2)

    def _read_to_close(self) -> bytes:
        parts = [self.buffer]
        while True:
            chunk = self.sock.recv(262144)
            if not chunk:
                break
            parts.append(chunk)
        self.buffer = b""
        return b"".join(parts)


class RecommenderClient:
    def __init__(self, target: str, protocol: str = "rest", model_name: str = AUTO,
                 signature_name: str = N.SERVING_DEFAULT, timeout: float = 5.0, *,
                 token: str | None = None, tls: bool = False,
                 root_certificates: str | bytes | None = None):
        """``token``: the server's shared token (``--auth_token_file``); ``tls``: talk
        HTTPS / TLS gRPC (``root_certificates``: a PEM file or bytes trusting the server's
        certificate, default: the system's CAs); ``https://`` targets imply ``tls``."""
        if protocol not in ("rest", "grpc"):
            raise ValueError(f"protocol must be 'rest' or 'grpc', got {protocol!r}")
        if not isinstance(target, str) or not target.strip():
            raise ValueError(f"target must be 'host:port', got {target!r}")
        if not isinstance(model_name, str) or not model_name:
            raise ValueError(f"model_name must be a non-empty string, got {model_name!r}")
        self.tls = bool(tls or root_certificates is not None or target.startswith("https://"))
        self.target = target.split("://", 1)[-1].rstrip("/")
        host, sep, port = self.target.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"target must be 'host:port', got {target!r}")
        self._host, self._port = host.strip("[]"), int(port)
        self.protocol = protocol
        self._model_name = model_name
        self.signature_name = signature_name
        self.timeout = check_timeout(timeout)
        self.token = token
        if isinstance(root_certificates, str):
            with open(root_certificates, "rb") as f:
                root_certificates = f.read()
        self._root_certificates = root_certificates
        self._channel = None
        self._lock = threading.Lock()
        self._local = threading.local()  # one kept-alive HTTP connection per thread
        self._connections: list = []
        self._signature_cache: dict[tuple, tuple[float, dict]] = {}

    @property
    def model_name(self) -> str:
        """The retrieval model requests go to; ``"auto"`` resolves (once) to the first of
        ``DEFAULT_RETRIEVAL_MODELS`` with an AVAILABLE version on the server."""
        if self._model_name == AUTO:
            for name in DEFAULT_RETRIEVAL_MODELS:
                try:
                    states = [v.get("state") for v in self.model_status(name)]
                except ServingError as e:
                    if e.code in (404, "NOT_FOUND"):  # not served here: try the next one
                        continue
                    raise  # the server is down or failing: say so, do not guess a model
                if "AVAILABLE" in states:
                    self._model_name = name
                    break
            else:
                raise ServingError(f"none of {DEFAULT_RETRIEVAL_MODELS} is available on {self.target}")
        return self._model_name

    def __repr__(self) -> str:
        return (f"RecommenderClient({self.target!r}, protocol={self.protocol!r}, "
                f"model_name={self._model_name!r})")

    def __enter__(self) -> "RecommenderClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    # ------------------------------------------------------------------ public API

    def predict(self, inputs: Mapping[str, Any], signature_name: str | None = None,
                model_name: str | None = None, version: int | None = None) -> dict[str, np.ndarray]:
        """Runs a signature; returns {output name: array} (strings as str, *_bytes as bytes)."""
        model = model_name or self.model_name
        signature = signature_name or self.signature_name
        spec = self._signature(model, version, signature)
        arrays = {}
        for name, value in inputs.items():
            dtype = spec["inputs"].get(name) if spec else None
            arrays[name] = _cast(value, dtype) if dtype is not None else np.asarray(value)
        if self.protocol == "grpc":
            outputs = self._grpc_predict(model, version, signature, arrays)
        else:
            outputs = self._rest_predict(model, version, signature, arrays, spec)
        for name, array in outputs.items():
            if array.dtype.kind in "OSU":
                outputs[name] = _strings(array, name)
        return outputs

    def recommend(self, user_id: str | None = None, history: Sequence[str] | None = None,
                  k: int = 10, exclude: Sequence[str] = (),
                  order_positions: Sequence[int] | None = None) -> list[Recommendation]:
        """Top-k items for one user id (``recommend_user``) or one history (``serving_default``).

        ``order_positions`` (one int per history item, equal within one order) sends the
        history's basket structure to models that read it (``recommend_orders``).
        """
        if (user_id is None) == (history is None):
            raise ValueError("give exactly one of user_id or history")
        if isinstance(history, str) or isinstance(exclude, str):
            raise ValueError("history and exclude must be sequences of item ids, not strings")
        batch = self.recommend_batch(
            user_ids=None if user_id is None else [user_id],
            histories=None if history is None else [history], k=k, exclude=[exclude],
            order_positions=None if order_positions is None else [order_positions])
        return batch[0]

    def recommend_batch(self, user_ids: Sequence[str] | None = None,
                        histories: Sequence[Sequence[str]] | None = None,
                        k: int | Sequence[int] = 10,
                        exclude: Sequence[Sequence[str]] | None = None,
                        order_positions: Sequence[Sequence[int]] | None = None,
                        model_name: str | None = None,
                        ) -> list[list[Recommendation]]:
        """One request for several users (or histories); one list per row (``model_name``
        overrides the client's model, e.g. ``"generative"``)."""
        if (user_ids is None) == (histories is None):
            raise ValueError("give exactly one of user_ids or histories")
        if order_positions is not None:
            if histories is None:
                raise ValueError("order_positions go with histories, not user ids")
            if len(order_positions) != len(histories) or any(
                    len(p) != len(h) for p, h in zip(order_positions, histories)):
                raise ValueError("order_positions must give one position per history item")
        rows = list(user_ids) if user_ids is not None else [list(h) for h in histories]
        if not rows:
            return []
        if isinstance(k, (str, bytes)) or not isinstance(k, Sequence) and not isinstance(
                k, np.ndarray):
            ks = [check_k(k)] * len(rows)
        else:
            ks = [check_k(v, f"k[{i}]") for i, v in enumerate(k)]
            if len(ks) != len(rows):
                raise ValueError(f"k must be one int, or one int per row ({len(rows)}), got "
                                 f"{len(ks)} values")
        excludes = [list(e) for e in exclude] if exclude is not None else [[] for _ in rows]
        if len(excludes) == 1 and len(rows) > 1:
            excludes = excludes * len(rows)
        if len(excludes) != len(rows):
            raise ValueError("exclude must have one list per row")
        inputs: dict[str, np.ndarray] = {N.K: np.asarray(ks, dtype=np.int32),
                                         N.EXCLUDE: _pad(excludes)}
        if user_ids is not None:
            inputs[N.USER_ID] = np.asarray([str(u) for u in rows], dtype=object)
            signature = USER_SIGNATURE
        else:
            inputs[N.HISTORY] = _pad(rows)
            signature = self.signature_name
            if order_positions is not None:
                width = inputs[N.HISTORY].shape[1]
                inputs[N.ORDER_POS] = np.asarray([list(p) + [0] * (width - len(p)) for p in order_positions],
                                                 dtype=np.int64)
                signature = ORDERS_SIGNATURE
        outputs = self.predict(inputs, signature_name=signature, model_name=model_name)
        results = []
        for row, (ids, scores) in enumerate(zip(outputs[N.ITEM_IDS], outputs[N.SCORES])):
            skip = set(excludes[row]) | {""}
            recs = [Recommendation(str(item), float(np.float32(score)))
                    for item, score in zip(ids, scores) if item not in skip]
            results.append(recs[: int(ks[row])])
        return results

    def rank(self, user_id: str, candidates: Sequence[str],
             sources: Mapping[str, Sequence[tuple[str, float]]] | None = None,
             history: Sequence[str] = (), history_types: Sequence[str] | None = None,
             history_gaps: Sequence[int] | None = None, request_time: float | None = None,
             model_name: str = N.RANKER) -> list["RankedItem"]:
        """Scores ``candidates`` for one user with the served ranker (signature ``rank``); best first.

        ``sources``: each candidate source's ranked list as (item, score), best first, keyed by the
        names in ``recsys.names.RANKER_SOURCES`` (other keys are an error): they become the
        ``retrieval_features`` the ranker was trained with (retrieved 0/1, score, 1/rank).
        ``history``: the user's items, oldest first (up to 500), with their behaviours
        (default ``purchase``) and order gaps (orders before now, 1 = the latest; default: each
        item its own order, the latest last). ``request_time``: epoch seconds of the request, for
        the candidates' age (default: now; when replaying a historical dataset give its time).
        """
        if isinstance(candidates, (str, bytes)) or isinstance(history, (str, bytes)):
            raise ValueError("candidates and history must be sequences of item ids, not strings")
        candidates = [str(c) for c in candidates]
        if not candidates or any(not c for c in candidates):
            raise ValueError("candidates must be a non-empty list of non-empty item ids")
        if len(set(candidates)) != len(candidates):
            raise ValueError("candidates must not repeat an item")
        history = [str(h) for h in history]
        types = list(history_types) if history_types is not None else ["purchase"] * len(history)
        gaps = list(history_gaps) if history_gaps is not None else list(range(len(history), 0, -1))
        if len(types) != len(history) or len(gaps) != len(history):
            raise ValueError("history_types and history_gaps must give one value per history item")
        when = time.time() if request_time is None else request_time
        if isinstance(when, bool) or not isinstance(when, (int, float, np.integer, np.floating)) \
                or not np.isfinite(when):
            raise ValueError(f"request_time must be epoch seconds (a finite number), got {request_time!r}")
        unknown = set(sources or {}) - set(N.RANKER_SOURCES)
        if unknown:
            raise ValueError(f"unknown candidate sources {sorted(unknown)}; known {list(N.RANKER_SOURCES)}")
        feats = retrieval_features(candidates, sources)
        inputs = {N.USER_ID: np.asarray([str(user_id)], dtype=object),
                  N.HISTORY: _pad([history]), N.HISTORY_TYPES: _pad([types]),
                  N.HISTORY_GAPS: np.asarray([gaps or [0]], dtype=np.int64),
                  N.REQUEST_TIME: np.asarray([int(when)], dtype=np.int64),
                  N.CANDIDATES: np.asarray([candidates], dtype=object),
                  N.RETRIEVAL_FEATURES: feats}
        spec = self._signature(model_name, None, N.RANK)
        if spec is not None and N.REQUEST_TIME not in spec["inputs"]:
            del inputs[N.REQUEST_TIME]  # a ranker exported before request_time (no item-age inputs)
        out = self.predict(inputs, signature_name=N.RANK, model_name=model_name)
        columns = [out[name][0].astype(np.float64).tolist() for name in (N.SCORE, N.PCTR, N.PCVR, N.PCTCVR)]
        ranked = list(map(RankedItem, candidates, *columns))
        return sorted(ranked, key=lambda x: -x.score)

    def encode_items(self, items: Sequence[Mapping[str, str]] | None = None,
                     embeddings: Sequence[Sequence[float]] | None = None, item_ids: Sequence[str] | None = None,
                     model_name: str = ITEM_ENCODER_MODEL) -> list[EncodedItem]:
        """Content embedding and Semantic ID per item, from the served ``item_encoder``.

        Give exactly one of: ``items`` (dicts with any of title / description /
        category / brand; signature ``encode_text``), ``embeddings`` (precomputed
        content vectors; ``encode_embedding``) or ``item_ids`` (known catalogue
        items; ``lookup``, Semantic ID -1s for unknown ids).
        """
        if sum(x is not None for x in (items, embeddings, item_ids)) != 1:
            raise ValueError("give exactly one of items, embeddings or item_ids")
        if items is not None:
            unknown = {k for it in items for k in it} - set(ITEM_TEXT_FIELDS)
            if unknown:
                raise ValueError(f"unknown item fields {sorted(unknown)}; expected {ITEM_TEXT_FIELDS}")
            inputs = {f: np.asarray([str(it.get(f) or "") for it in items], dtype=object) for f in ITEM_TEXT_FIELDS}
            out = self.predict(inputs, signature_name=N.ENCODE_TEXT, model_name=model_name)
        elif embeddings is not None:
            out = self.predict({N.EMBEDDING: np.asarray(embeddings, dtype=np.float32)},
                               signature_name=N.ENCODE_EMBEDDING, model_name=model_name)
        else:
            out = self.predict({N.ITEM_ID: np.asarray([str(i) for i in item_ids], dtype=object)},
                               signature_name=N.LOOKUP, model_name=model_name)
        vectors = out.get(N.EMBEDDING)
        return [EncodedItem(tuple(int(c) for c in sid), None if vectors is None else np.asarray(vectors[i]))
                for i, sid in enumerate(out[N.SEMANTIC_ID])]

    def model_status(self, model_name: str | None = None) -> list[dict]:
        """[{"version": "1", "state": "AVAILABLE", "status": {...}}, ...] like TF Serving's REST."""
        model = model_name or self.model_name
        if self.protocol == "rest":
            return self._http("GET", self._url(model, None))["model_version_status"]
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        response = self._grpc_call("model", "GetModelStatus", request)
        return json_format.MessageToDict(response, including_default_value_fields=True,
                                         preserving_proto_field_name=True)["model_version_status"]

    def metadata(self, model_name: str | None = None, version: int | None = None) -> dict:
        """TF Serving's REST metadata document: {"model_spec": ..., "metadata": {"signature_def":
        {"signature_def": {name: {"inputs": ..., "outputs": ..., "method_name": ...}}}}}."""
        model = model_name or self.model_name
        if self.protocol == "rest":
            return self._http("GET", self._url(model, version) + "/metadata")
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = int(version)
        response = self._grpc_call("prediction", "GetModelMetadata", request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        options = dict(including_default_value_fields=True, preserving_proto_field_name=True)
        return {"model_spec": json_format.MessageToDict(response.model_spec, **options),
                "metadata": {"signature_def": json_format.MessageToDict(signature_map, **options)}}

    def signature_defs(self, model_name: str | None = None, version: int | None = None) -> dict:
        """{signature name: {"inputs": ..., "outputs": ..., "method_name": ...}}."""
        return self.metadata(model_name, version)["metadata"]["signature_def"]["signature_def"]

    # ------------------------------------------------------------------- internals

    def _signature(self, model: str, version: int | None, signature: str) -> dict | None:
        """{"inputs": {name: np dtype}, "outputs": {name: np dtype}} for casting, cached."""
        key = (model, version, signature)
        cached = self._signature_cache.get(key)
        if cached and time.monotonic() - cached[0] < _METADATA_TTL_S:
            return cached[1]
        defs = self.signature_defs(model, version)
        spec = None
        if signature in defs:
            spec = {side: {name: _NUMPY_BY_NAME.get(info.get("dtype"))
                           for name, info in defs[signature].get(side, {}).items()}
                    for side in ("inputs", "outputs")}
        self._signature_cache[key] = (time.monotonic(), spec)
        return spec

    def _url(self, model: str, version: int | None) -> str:
        url = f"/v1/models/{urllib.parse.quote(model, safe='')}"
        return url + (f"/versions/{int(version)}" if version is not None else "")

    def _rest_predict(self, model, version, signature, arrays, spec) -> dict[str, np.ndarray]:
        body = ('{"signature_name": ' + json.dumps(signature) + ', "inputs": {'
                + ", ".join(json.dumps(name) + ": " + request_json_text(array)
                            for name, array in arrays.items()) + "}}")
        outputs = self._http("POST", self._url(model, version) + ":predict",
                             data=body.encode("ascii"))["outputs"]
        names = list(spec["outputs"]) if spec else []
        if len(names) == 1:
            outputs = {names[0]: outputs}
        elif not isinstance(outputs, dict):
            outputs = {"outputs": outputs}
        result = {}
        for name, value in outputs.items():
            dtype = spec["outputs"].get(name) if spec else None
            if dtype is None:  # no metadata: strings stay objects, numbers as JSON gave them
                probe = _object_array(value)
                dtype = object if any(isinstance(v, (str, dict)) for v in probe.ravel()) else None
            result[name] = _object_array(value) if dtype is object else np.asarray(value, dtype)
        return result

    def _connection(self, fresh: bool = False) -> "_HttpConnection":
        """This thread's kept-alive connection (TCP_NODELAY: no Nagle stall on small writes)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None and not fresh:
            return connection
        if connection is not None:
            connection.close()
        context = None
        if self.tls:
            import ssl

            context = ssl.create_default_context()
            if self._root_certificates is not None:
                context.load_verify_locations(cadata=self._root_certificates.decode("ascii"))
        connection = _HttpConnection(self._host, self._port, self.timeout, context)
        self._local.connection = connection
        with self._lock:
            self._connections.append(connection)
        return connection

    def _http(self, method: str, url: str, body: Any = None, data: bytes | None = None) -> dict:
        """``body``: a JSON document to send, or ``data``: its bytes, already written."""
        if body is not None:
            data = json.dumps(body).encode("utf-8")
        headers = "Content-Type: application/json\r\n"
        if self.token:
            headers += f"Authorization: Bearer {self.token}\r\n"
        for attempt in (0, 1):
            reused = getattr(self._local, "connection", None) is not None
            try:
                connection = self._connection()
                status, reason, close, raw = connection.request(method, url, headers, data)
                if close:
                    self._drop_connection()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as err:
                # A kept-alive connection the server closed meanwhile: reconnect once.
                self._drop_connection()
                if reused and attempt == 0:
                    continue
                raise self._connection_error(err) from None
            except (TimeoutError, socket.timeout, OSError, http.client.HTTPException) as err:
                self._drop_connection()
                raise self._connection_error(err) from None
        if status != 200:
            try:
                message = json.loads(raw).get("error", raw.decode("utf-8", "replace"))
            except (ValueError, AttributeError):
                message = raw.decode("utf-8", "replace") or reason
            error_class = ServingTimeout if status == 504 else ServingError
            raise error_class(message, code=status)
        try:
            return json.loads(raw)
        except ValueError:
            raise ServingError(f"the server at {self.target} answered with invalid JSON: "
                               f"{raw[:200]!r}", code=status) from None

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _connection_error(self, reason: Any) -> ServingError:
        if isinstance(reason, (TimeoutError, socket.timeout)) or "timed out" in str(reason):
            return ServingTimeout(f"no answer from the model server at {self.target} within "
                                  f"{self.timeout}s", code="DEADLINE_EXCEEDED")
        return ServingError(
            f"cannot reach the model server at {self.target} over {self.protocol.upper()} "
            f"({reason}); is it running? Start one with `recsys serve` (or TF Serving).",
            code="UNAVAILABLE")

    def _stubs(self):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        with self._lock:
            if self._channel is None:
                options = [("grpc.max_receive_message_length", -1),
                           ("grpc.max_send_message_length", -1), ("grpc.enable_http_proxy", 0)]
                if self.tls:
                    credentials = grpc.ssl_channel_credentials(self._root_certificates)
                    self._channel = grpc.secure_channel(self.target, credentials, options=options)
                else:
                    self._channel = grpc.insecure_channel(self.target, options=options)
                self._prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
                self._model = model_service_pb2_grpc.ModelServiceStub(self._channel)
            return self._prediction, self._model

    def _grpc_call(self, service: str, method: str, request):
        import grpc

        prediction, model = self._stubs()
        stub = prediction if service == "prediction" else model
        metadata = (("authorization", f"Bearer {self.token}"),) if self.token else None
        try:
            return getattr(stub, method)(request, timeout=self.timeout, metadata=metadata)
        except grpc.RpcError as err:
            code, details = err.code(), err.details() or ""
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise ServingTimeout(f"no answer from the model server at {self.target} within "
                                     f"{self.timeout}s ({details})", code=code.name) from None
            if code == grpc.StatusCode.UNAVAILABLE:
                raise self._connection_error(details) from None
            raise ServingError(details, code=code.name) from None

    def _grpc_predict(self, model, version, signature, arrays) -> dict[str, np.ndarray]:
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        if version is not None:
            request.model_spec.version.value = int(version)
        for name, array in arrays.items():
            request.inputs[name].CopyFrom(tensors.array_to_tensor_proto(array, content=True))
        response = self._grpc_call("prediction", "Predict", request)
        return {name: tensors.tensor_proto_to_array(proto) for name, proto in response.outputs.items()}
