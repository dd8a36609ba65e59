"""Experiment (not adopted; figures in serving/README.md, "Tried and not adopted"): a gRPC
server on HTTP/2 with the ``h2`` library on the REST server's asyncio machinery, against
grpcio's synchronous server and grpclib's asyncio server.

    python benchmarks/serving_grpc_h2.py [--servers grpcio,h2,h2-inline,grpclib,grpclib-inline]
        [--requests 500] [--rounds 8] [--concurrency 8] [--report PATH]
    python benchmarks/serving_overhead.py --output artifacts-rank --grpc_servers grpcio,h2 --sweep ''
    python benchmarks/serving_grpc_h2.py --model_server <python -m serving.server flags>

The first command: what each server's machinery costs per call -- a no-op ``Predict`` from the
same grpcio client, interleaved. Each server runs in its own process (no GIL shared with the
client) and answers ``tensorflow.serving.PredictionService/Predict`` with an empty
``PredictResponse`` after parsing the request (a ``recommend_user``-shaped ``PredictRequest``,
3 small inputs):

* ``grpcio``: grpcio's synchronous server, 8 worker threads (what ``serving.server`` runs);
* ``h2``: :class:`GrpcH2Server` below (h2 on an asyncio loop, the handler on an 8-thread pool
  and the answer back through ``call_soon_threadsafe``: the REST server's machinery);
* ``h2-inline``: the same with the handler run on the event loop (no hand-off): h2's floor;
* ``grpclib``: grpclib 0.4.9's asyncio server, the handler on an 8-thread pool
  (``run_in_executor``); ``grpclib-inline``: the handler on its event loop.

Rounds: every server's sequential block (``--requests`` calls), then every server's concurrent
block (``--concurrency`` client threads, one channel each). Printed: p50 / p99 / req/s over all
rounds and CPU ms per sequential call, client and server process (medians over the rounds).

The second: the real model call (``recommend_user``) through ``serving.server`` with grpcio and
with :class:`GrpcH2Server` (started by the third command: ``serving.server`` with its gRPC port
on :class:`GrpcH2Server` and ``serving.grpc_service``'s services; no TLS).

:class:`GrpcH2Server` speaks gRPC over HTTP/2 without TLS: ``POST`` with ``content-type:
application/grpc``, one 5-byte length-prefixed message each way (no compression),
``grpc-status`` / ``grpc-message`` (percent-encoded) in the trailers, or a trailers-only answer
for errors; ``grpc-timeout`` deadlines (DEADLINE_EXCEEDED, the call's cancellation started),
client cancellation (RST_STREAM) and disconnects; a message size limit (RESOURCE_EXHAUSTED, as
grpcio: "Received message larger than max"); at most ``threads`` + ``max_queued`` calls running
or waiting (RESOURCE_EXHAUSTED); flow control both ways; many streams per connection. Wired
into ``serving.server`` (commit e98988e, ``--grpc_server=h2``) it passed 497 of the 498 tests of
``tests/serving`` (all but TLS, which it refused); from here, a pytest plugin module that calls
``use_h2_in(serving.server.ModelServer)`` (``pytest -p <module> tests/serving``) runs the suite
against it the same way.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serving import status as st  # noqa: E402
from serving.http_server import HttpServer, set_nodelay  # noqa: E402
from serving_overhead import run_concurrent, run_sequential, summarize  # noqa: E402

log = logging.getLogger("grpc_h2")

# ------------------------------------------------------------------ the experimental server

_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_WINDOW = 16 << 20  # receive window (connection and stream): bounded by the message limit


def parse_timeout(value: str) -> float | None:
    """``grpc-timeout`` (e.g. ``"299993u"``) in seconds, or None if malformed."""
    unit = _TIMEOUT_UNITS.get(value[-1:])
    digits = value[:-1]
    if unit is None or not digits.isdigit() or len(digits) > 8:
        return None
    return int(digits) * unit


def encode_message(text: str) -> bytes:
    """``grpc-message``: UTF-8, percent-encoding bytes outside 0x20-0x7E and ``%``."""
    raw = text.encode("utf-8")
    if all(0x20 <= b <= 0x7E and b != 0x25 for b in raw):
        return raw
    return b"".join(bytes([b]) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b
                    for b in raw)


class Call:
    """What a handler sees of its call."""

    __slots__ = ("metadata", "cancellation")

    def __init__(self, metadata: dict, cancellation):
        self.metadata = metadata
        self.cancellation = cancellation


class _Stream:
    __slots__ = ("id", "path", "metadata", "data", "timer", "cancellation", "future",
                 "pending", "trailers", "finished")

    def __init__(self, stream_id: int):
        self.id = stream_id
        self.path = ""
        self.metadata: dict[str, str] = {}
        self.data = bytearray()
        self.timer = None
        self.cancellation = None
        self.future = None
        self.pending = b""  # answer bytes waiting for the peer's flow-control window
        self.trailers = None
        self.finished = False  # answered or reset: later events are ignored


_RESPONSE_HEADERS = ((b":status", b"200"), (b"content-type", b"application/grpc"))


class _Connection(asyncio.Protocol):
    def __init__(self, server: "GrpcH2Server"):
        self.server = server
        self.h2 = h2.connection.H2Connection(server.h2_config)
        self.transport = None
        self.streams: dict[int, _Stream] = {}
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        set_nodelay(transport)
        self.server.connections += 1
        h2c = self.h2
        h2c.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.server.max_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 64 * 1024})
        h2c.initiate_connection()
        h2c.increment_flow_control_window(_WINDOW - 65535)
        transport.write(h2c.data_to_send())

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.server.connections -= 1
        for stream in self.streams.values():
            self._abandon(stream)
        self.streams.clear()

    def _abandon(self, stream: _Stream) -> None:
        stream.finished = True
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None
        if stream.future is not None and stream.cancellation is not None:
            stream.cancellation.start_cancel()

    # ----------------------------------------------------------------- input

    def data_received(self, data: bytes) -> None:
        h2c = self.h2
        try:
            events = h2c.receive_data(data)
        except h2.exceptions.ProtocolError as err:
            log.debug("HTTP/2 protocol error: %s", err)
            self._flush()
            self.transport.close()
            return
        for event in events:
            kind = type(event)
            if kind is h2.events.DataReceived:
                self._data(event)
            elif kind is h2.events.RequestReceived:
                self._request(event)
            elif kind is h2.events.StreamEnded:
                stream = self.streams.get(event.stream_id)
                if stream is not None and not stream.finished:
                    self._dispatch(stream)
            elif kind is h2.events.StreamReset:
                stream = self.streams.pop(event.stream_id, None)
                if stream is not None:
                    self._abandon(stream)
            elif kind is h2.events.WindowUpdated:
                self._window_opened(event.stream_id)
            elif kind is h2.events.ConnectionTerminated:
                self._flush()
                self.transport.close()
                return
        self._flush()

    def _flush(self) -> None:
        out = self.h2.data_to_send()
        if out and not self.closed:
            self.transport.write(out)

    def _request(self, event) -> None:
        stream = _Stream(event.stream_id)
        self.streams[event.stream_id] = stream
        metadata = stream.metadata
        for name, value in event.headers:
            metadata[name.decode("latin-1")] = value.decode("latin-1")
        stream.path = metadata.get(":path", "")
        server = self.server
        if metadata.get(":method") != "POST" or \
                not metadata.get("content-type", "").startswith("application/grpc"):
            self._trailers_only(stream, st.ServerError(
                grpc.StatusCode.INTERNAL, "Bad gRPC request: POST with content-type "
                "application/grpc expected"))
            return
        if stream.path not in server.handlers:
            self._trailers_only(stream, st.ServerError(grpc.StatusCode.UNIMPLEMENTED,
                                                       "Method not found!"))
            return
        if server.authorize is not None:
            try:
                server.authorize(metadata.get("authorization"))
            except st.ServerError as err:
                self._trailers_only(stream, err)
                return
        timeout = metadata.get("grpc-timeout")
        if timeout is not None:
            seconds = parse_timeout(timeout)
            if seconds is not None:
                stream.timer = server.loop.call_later(seconds, self._deadline, stream)

    def _data(self, event) -> None:
        self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        stream = self.streams.get(event.stream_id)
        if stream is None or stream.finished:
            return
        stream.data += event.data
        limit = self.server.max_message_bytes
        if len(stream.data) >= 5:
            length = int.from_bytes(stream.data[1:5], "big")
            if length > limit:
                self._trailers_only(stream, st.ServerError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"Received message larger than max ({length} vs. {limit})"))
                self._reset(stream)

    def _reset(self, stream: _Stream) -> None:
        try:
            self.h2.reset_stream(stream.id, h2.errors.ErrorCodes.NO_ERROR)
        except h2.exceptions.H2Error:
            pass

    def _dispatch(self, stream: _Stream) -> None:
        server = self.server
        data = stream.data
        if len(data) < 5 or data[0] != 0 or int.from_bytes(data[1:5], "big") != len(data) - 5:
            code, message = grpc.StatusCode.INTERNAL, (
                "Compressed messages are not supported" if data[:1] == b"\x01" else
                "Expected exactly one length-prefixed message")
            if not data:
                code, message = grpc.StatusCode.UNIMPLEMENTED, \
                    "Expected one request message (unary calls only)"
            self._trailers_only(stream, st.ServerError(code, message))
            return
        if server.in_flight >= server.threads + server.max_queued:
            self._trailers_only(stream, st.ServerError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                                       "Concurrent RPC limit exceeded!"))
            return
        stream.cancellation = server.new_cancellation()
        server.in_flight += 1
        deserialize, fn = server.handlers[stream.path]
        payload = bytes(data[5:])
        stream.data = None
        call = Call(stream.metadata, stream.cancellation)
        stream.future = server.submit(lambda: fn(deserialize(payload), call),
                                      on_done=lambda f: self._handled(stream, f))

    # ---------------------------------------------------------------- output

    def _deadline(self, stream: _Stream) -> None:
        stream.timer = None
        if stream.finished:
            return
        if stream.cancellation is not None:
            stream.cancellation.start_cancel()
        self._trailers_only(stream, st.ServerError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                                   "Deadline Exceeded"))
        self._flush()

    def _handled(self, stream: _Stream, future) -> None:
        self.server.in_flight -= 1
        if stream.finished or self.closed:
            return
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None
        try:
            response = future.result()
            body = response.SerializeToString()
        except st.ServerError as err:
            self._trailers_only(stream, err)
        except Exception as err:  # the handler itself failed (it should not)
            log.error("gRPC handler failed", exc_info=err)
            self._trailers_only(stream, st.ServerError(
                grpc.StatusCode.UNKNOWN, f"Exception calling application: {err}"))
        else:
            self._answer(stream, body)
        self._flush()

    def _answer(self, stream: _Stream, body: bytes) -> None:
        h2c = self.h2
        h2c.send_headers(stream.id, _RESPONSE_HEADERS)
        stream.pending = b"\x00" + len(body).to_bytes(4, "big") + body
        stream.trailers = ((b"grpc-status", b"0"),)
        self._send_pending(stream)

    def _send_pending(self, stream: _Stream) -> None:
        h2c = self.h2
        data = stream.pending
        try:
            while data:
                window = min(h2c.local_flow_control_window(stream.id),
                             h2c.max_outbound_frame_size)
                if window <= 0:
                    break
                h2c.send_data(stream.id, data[:window])
                data = data[window:]
            stream.pending = data
            if not data:
                h2c.send_headers(stream.id, stream.trailers, end_stream=True)
                self._finish(stream)
        except h2.exceptions.H2Error:  # the stream was reset or closed meanwhile
            self._finish(stream)

    def _window_opened(self, stream_id: int) -> None:
        waiting = [s for s in self.streams.values() if s.pending and s.trailers is not None] \
            if stream_id == 0 else [self.streams[stream_id]] if stream_id in self.streams else []
        for stream in waiting:
            if stream.pending:
                self._send_pending(stream)

    def _trailers_only(self, stream: _Stream, error: st.ServerError) -> None:
        if stream.finished:
            return
        headers = _RESPONSE_HEADERS + (
            (b"grpc-status", str(error.code.value[0]).encode()),
            (b"grpc-message", encode_message(error.message)))
        try:
            self.h2.send_headers(stream.id, headers, end_stream=True)
        except h2.exceptions.H2Error:
            pass
        self._finish(stream)

    def _finish(self, stream: _Stream) -> None:
        stream.finished = True
        stream.pending = b""
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None
        self.streams.pop(stream.id, None)


class GrpcH2Server(HttpServer):
    """Serves ``handlers`` on ``host:port``: the REST server's loop, pool, bind and stop with
    this module's HTTP/2 connections."""

    connection_class = _Connection
    name = "gRPC"

    def __init__(self, handlers: dict, host: str, port: int, *, threads: int = 8,
                 max_queued: int = 64, max_message_bytes: int = 16 << 20,
                 max_streams: int = 1000, backlog: int = 1024,
                 authorize: Callable[[str | None], None] | None = None,
                 new_cancellation: Callable[[], object] = lambda: None):
        super().__init__(None, host, port, threads=threads, max_queued=max_queued,
                         backlog=backlog, max_body_bytes=max_message_bytes,
                         new_cancellation=new_cancellation)
        self.handlers = dict(handlers)
        self.max_message_bytes = max_message_bytes
        self.max_streams = max_streams
        self.authorize = authorize
        self.h2_config = h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=False,
            normalize_inbound_headers=False, validate_outbound_headers=False,
            normalize_outbound_headers=False)

    def stop(self, grace: float | None = None) -> threading.Event:
        """Stops at once (``grace`` is ignored); returns a set Event, like grpc.Server.stop."""
        super().stop()
        stopped = threading.Event()
        stopped.set()
        return stopped


PREDICTION_SERVICE = "/tensorflow.serving.PredictionService/"
MODEL_SERVICE = "/tensorflow.serving.ModelService/"


# ------------------------------------------------------------ serving.server's services on it

def h2_handlers(registry, reload_config: Callable, security=None, metrics=None) -> dict:
    """serving.grpc_service's services for :class:`GrpcH2Server`: ``{path: (parse, fn)}``,
    ``fn(request, call)`` answering the response message or raising a ServerError."""
    from serving.grpc_service import (_observe, _unsupported, get_model_metadata,
                                      get_model_status, predict)
    from serving.security import Security
    from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                         model_management_pb2, predict_pb2)

    security = security or Security()

    def predict_(request, call):
        info: dict = {}
        return _observe("Predict", lambda: predict(registry, request, call.cancellation, info),
                        metrics, "predict", info)

    def metadata_(request, call):
        return _observe("GetModelMetadata", lambda: get_model_metadata(registry, request),
                        metrics, "metadata", {"model": request.model_spec.name})

    def status_(request, call):
        return _observe("GetModelStatus", lambda: get_model_status(registry, request),
                        metrics, "status", {"model": request.model_spec.name})

    def reload_(request, call):
        def run():
            security.check_reload(request.config)
            reload_config(request.config)
            return model_management_pb2.ReloadConfigResponse()
        return _observe("HandleReloadConfigRequest", run, metrics, "reload_config")

    def unsupported(method):
        def refuse(request, call):
            raise _unsupported(method)
        return refuse

    handlers = {
        PREDICTION_SERVICE + "Predict": (predict_pb2.PredictRequest.FromString, predict_),
        PREDICTION_SERVICE + "GetModelMetadata": (
            get_model_metadata_pb2.GetModelMetadataRequest.FromString, metadata_),
        MODEL_SERVICE + "GetModelStatus": (
            get_model_status_pb2.GetModelStatusRequest.FromString, status_),
        MODEL_SERVICE + "HandleReloadConfigRequest": (
            model_management_pb2.ReloadConfigRequest.FromString, reload_),
    }
    for method in ("Classify", "Regress", "MultiInference"):
        handlers[PREDICTION_SERVICE + method] = (lambda data: None, unsupported(method))
    return handlers


def model_server(argv: list[str]) -> int:
    """``python -m serving.server`` with its gRPC port on :class:`GrpcH2Server` (what
    ``serving_overhead.py --grpc_servers grpcio,h2`` starts for ``h2``). No TLS."""
    from serving import server as model_server_module

    use_h2_in(model_server_module.ModelServer)
    return model_server_module.main(argv)


def use_h2_in(model_server_class) -> None:
    """Makes ``serving.server.ModelServer`` serve gRPC with :class:`GrpcH2Server` (e.g. from a
    pytest plugin, to run ``tests/serving`` against it)."""
    from serving.servable import new_cancellation

    def start_grpc(self) -> None:
        if self.security.tls is not None:
            raise OSError("the experimental h2 gRPC server does not do TLS")
        self._grpc = GrpcH2Server(
            h2_handlers(self.registry, self.reload_config, self.security, self.metrics),
            self.host, self.grpc_port, threads=self.grpc_max_workers,
            max_queued=self.grpc_max_queued, max_message_bytes=self.limits.max_request_bytes,
            backlog=self.backlog, new_cancellation=new_cancellation,
            authorize=self.security.check_authorization if self.security.token else None)
        self._grpc.start()
        self.grpc_port = self._grpc.port

    model_server_class._start_grpc = start_grpc




# ------------------------------------------------------------------ the no-op benchmark

def serve(kind: str, port: int) -> None:
    """Child process: a no-op Predict on 127.0.0.1:port, forever."""
    from tensorflow_serving.apis import predict_pb2

    def noop(request, call=None):
        return predict_pb2.PredictResponse()

    if kind == "grpcio":
        server = grpc.server(concurrent.futures.ThreadPoolExecutor(8),
                             options=[("grpc.so_reuseport", 0)])
        handler = grpc.unary_unary_rpc_method_handler(
            noop, request_deserializer=predict_pb2.PredictRequest.FromString,
            response_serializer=predict_pb2.PredictResponse.SerializeToString)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "tensorflow.serving.PredictionService", {"Predict": handler})])
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        print("ready", flush=True)
        server.wait_for_termination()
    elif kind in ("h2", "h2-inline"):
        if kind == "h2-inline":  # the handler on the event loop: h2's floor on our loop
            def dispatch(self, stream):
                deserialize, fn = self.server.handlers[stream.path]
                self._answer(stream, fn(deserialize(bytes(stream.data[5:])), None)
                             .SerializeToString())
            _Connection._dispatch = dispatch

        GrpcH2Server({PREDICTION_SERVICE + "Predict": (predict_pb2.PredictRequest.FromString, noop)}, "127.0.0.1",
                     port, threads=8).start()
        print("ready", flush=True)
        threading.Event().wait()
    elif kind.startswith("grpclib"):
        from grpclib.const import Cardinality, Handler
        from grpclib.server import Server

        inline = kind == "grpclib-inline"
        pool = concurrent.futures.ThreadPoolExecutor(8)

        class Service:
            def __mapping__(self):
                return {PREDICTION_SERVICE + "Predict": Handler(self.predict, Cardinality.UNARY_UNARY,
                                         predict_pb2.PredictRequest, predict_pb2.PredictResponse)}

            async def predict(self, stream):
                request = await stream.recv_message()
                if inline:
                    response = noop(request)
                else:
                    response = await asyncio.get_running_loop().run_in_executor(
                        pool, noop, request)
                await stream.send_message(response)

        async def main():
            server = Server([Service()])
            await server.start("127.0.0.1", port)
            print("ready", flush=True)
            await server.wait_closed()

        asyncio.run(main())
    else:
        raise SystemExit(f"unknown server {kind}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request_message():
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2

    def tensor(dtype, dims, **values):
        proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]))
        for field, value in values.items():
            getattr(proto, field).extend(value)
        return proto

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "retrieval"
    request.model_spec.signature_name = "recommend_user"
    request.inputs["user_id"].CopyFrom(tensor(types_pb2.DT_STRING, [1], string_val=[b"196"]))
    request.inputs["k"].CopyFrom(tensor(types_pb2.DT_INT32, [1], int_val=[10]))
    request.inputs["exclude"].CopyFrom(tensor(types_pb2.DT_STRING, [1, 1], string_val=[b""]))
    return request


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--model_server"]:
        return model_server(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--servers", default="grpcio,h2,h2-inline,grpclib,grpclib-inline")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--report", default=None)
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return 0

    from tensorflow_serving.apis import prediction_service_pb2_grpc

    kinds = [k for k in args.servers.split(",") if k]
    request = request_message()
    processes, ports = {}, {}
    try:
        for kind in kinds:
            ports[kind] = free_port()
            processes[kind] = subprocess.Popen(
                [sys.executable, __file__, "--serve", kind, "--port", str(ports[kind])],
                stdout=subprocess.PIPE, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        for kind, process in processes.items():
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{kind} server did not start")

        def make(kind):
            def factory():
                channel = grpc.insecure_channel(f"127.0.0.1:{ports[kind]}")
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                return lambda _: stub.Predict(request, timeout=30)
            return factory

        calls = {kind: make(kind)() for kind in kinds}
        for call in calls.values():
            for _ in range(50):
                call(None)  # connect, warm up
        load_before = os.getloadavg()
        blocks: dict[str, list[dict]] = {}
        dummy = [None] * args.requests
        per_thread = max(1, args.requests // 2)
        for _ in range(args.rounds):
            for kind in kinds:
                blocks.setdefault(f"{kind} sequential", []).append(run_sequential(
                    calls[kind], dummy, processes[kind].pid, keep=True))
            for kind in kinds:
                blocks.setdefault(f"{kind} {args.concurrency} clients", []).append(
                    run_concurrent(make(kind), dummy, args.concurrency, per_thread, keep=True))
        load = os.getloadavg()
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(30)

    results = {}
    for name, runs in blocks.items():
        result = summarize([x for r in runs for x in r.pop("latencies_s")],
                           sum(r["wall_s"] for r in runs))
        if "client_cpu_ms" in runs[0]:
            for key in ("client_cpu_ms", "server_cpu_ms"):
                result[key] = round(statistics.median(r[key] for r in runs), 3)
        result["round_p50_ms"] = [r["p50_ms"] for r in runs]
        results[name] = result
    print(f"no-op Predict, {args.rounds} rounds x ({args.requests} sequential, then "
          f"{args.concurrency} clients x {per_thread}); load average {load_before[0]:.2f} before, "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} after, {os.cpu_count()} cores")
    print(f"{'server':28s} {'p50 ms':>8s} {'p99 ms':>8s} {'req/s':>8s} {'client CPU':>11s} "
          f"{'server CPU':>11s}")
    for name, r in results.items():
        cpu = (f"{r['client_cpu_ms']:11.3f} {r['server_cpu_ms']:11.3f}"
               if "client_cpu_ms" in r else "")
        print(f"{name:28s} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['throughput_rps']:8.1f} {cpu}")
    if args.report:
        with open(args.report, "w") as f:
            json.dump({"command": "python benchmarks/serving_grpc_noop.py "
                       + " ".join(argv),
                       "load_average_before": [round(x, 2) for x in load_before],
                       "load_average": [round(x, 2) for x in load],
                       "time": time.strftime("%Y-%m-%d %H:%M:%S"), "results": results}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
