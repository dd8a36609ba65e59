"""An experimental gRPC server on HTTP/2 (the ``h2`` library) and asyncio: unary calls only.

The same machinery as the REST server (``http_server.py``): one event loop owns every
connection and parses the frames; handlers run on a bounded thread pool and hand their answer
back with ``call_soon_threadsafe``; the deadline is a loop timer. What it speaks:

* gRPC over HTTP/2 without TLS: ``POST`` with ``content-type: application/grpc``, one
  5-byte length-prefixed message each way (no compression), ``grpc-status`` /
  ``grpc-message`` (percent-encoded) in the trailers, or a trailers-only answer for errors;
* ``grpc-timeout`` deadlines (DEADLINE_EXCEEDED, the call's cancellation started), client
  cancellation (RST_STREAM) and disconnects (the calls' cancellations started);
* a message size limit (RESOURCE_EXHAUSTED, as grpcio: "Received message larger than max");
* at most ``threads`` + ``max_queued`` calls running or waiting (RESOURCE_EXHAUSTED);
* flow control both ways (the receive windows are re-opened as data is consumed, answers
  larger than the peer's window wait for its WINDOW_UPDATE), many streams per connection.

Handlers: ``{"/package.Service/Method": (request_class.FromString, fn)}`` where
``fn(request, call) -> message`` runs on a worker thread and raises
:class:`serving.status.ServerError` to answer an error; ``call.metadata`` holds the request
headers (str -> str) and ``call.cancellation`` the TF CancellationManager.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import threading
from typing import Callable

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from serving import status as st

log = logging.getLogger("serving.grpc_h2")

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
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
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
        loop = server.loop

        def run():
            return fn(deserialize(payload), call)

        future = stream.future = server.pool.submit(run)

        def handled(f):  # on the worker thread
            try:
                loop.call_soon_threadsafe(self._handled, stream, f)
            except RuntimeError:  # the loop is closed: the server stopped
                pass

        future.add_done_callback(handled)

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


class GrpcH2Server:
    """Serves ``handlers`` on ``host:port`` from an event loop on a background thread."""

    def __init__(self, handlers: dict, host: str, port: int, *, threads: int = 8,
                 max_queued: int = 64, max_message_bytes: int = 16 << 20,
                 max_streams: int = 1000, backlog: int = 1024,
                 authorize: Callable[[str | None], None] | None = None,
                 new_cancellation: Callable[[], object] = lambda: None):
        self.handlers = dict(handlers)
        self.host, self.port = host, port
        self.threads, self.max_queued = threads, max_queued
        self.max_message_bytes = max_message_bytes
        self.max_streams, self.backlog = max_streams, backlog
        self.authorize = authorize
        self.new_cancellation = new_cancellation
        self.h2_config = h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=False,
            normalize_inbound_headers=False, validate_outbound_headers=False,
            normalize_outbound_headers=False)
        self.connections = 0
        self.in_flight = 0
        self.pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="grpc")
        self.loop = asyncio.new_event_loop()
        self._server = None
        self._thread: threading.Thread | None = None

    def start(self) -> "GrpcH2Server":
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as err:
            sock.close()
            raise OSError(f"could not bind the gRPC port {self.host}:{self.port}: {err}") from None
        self.port = sock.getsockname()[1]

        async def serve():
            self._server = await self.loop.create_server(
                lambda: _Connection(self), sock=sock, backlog=self.backlog)

        self.loop.run_until_complete(serve())
        self._thread = threading.Thread(target=self.loop.run_forever, name="grpc-loop",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return

        def shutdown():
            self._server.close()
            self.loop.call_soon(self.loop.stop)

        self.loop.call_soon_threadsafe(shutdown)
        self._thread.join(timeout=5)
        self._thread = None
        self.pool.shutdown(wait=False, cancel_futures=True)
        try:
            self.loop.close()
        except RuntimeError:
            pass
