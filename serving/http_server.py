"""A small HTTP/1.1 server on asyncio for the REST API: bounded, timed, one write per answer.

Why not ``http.server.ThreadingHTTPServer`` (what this server used before): one thread per
connection without a cap, a listen backlog of 5, no read timeouts, and headers and body
sent in two writes, so a kept-alive connection stalled ~40 ms on TCP delayed ACK
(Nagle). Here:

* one event loop owns every connection (``max_connections``; more are answered 503 and
  closed), the listen backlog is ``backlog``;
* handlers run on a bounded thread pool (``threads``); at most ``max_queued`` requests
  wait for a thread, more are answered 503 (UNAVAILABLE) at once;
* a request whose head and body do not arrive within ``read_timeout`` seconds is answered
  408 and closed; an idle kept-alive connection is closed after ``idle_timeout``;
* ``Content-Length`` (or a chunked body) over ``max_body_bytes`` is answered 413 before
  the body is read; request heads over 64 KiB are answered 431;
* a handler that has not answered within ``request_timeout`` is answered 504 and its
  work is cancelled (``cancellation.start_cancel()``), as is the work of a client that
  disconnects;
* every answer is one ``write`` (status line, headers and body) with TCP_NODELAY set.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger("serving.http")

MAX_HEAD_BYTES = 64 * 1024
_REASONS = {200: "OK", 100: "Continue", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 409: "Conflict", 411: "Length Required",
            413: "Payload Too Large", 429: "Too Many Requests",
            431: "Request Header Fields Too Large", 499: "Client Closed Request",
            500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
            504: "Gateway Timeout"}


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes = b""
    cancellation: object = None  # a TF CancellationManager, set by the server


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Response]


class _HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _error_body(message: str) -> bytes:
    import json

    return json.dumps({"error": message}).encode("utf-8")


def encode_response(response: Response, keep_alive: bool) -> bytes:
    head = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}"]
    head += [f"{k}: {v}" for k, v in response.headers]
    if not keep_alive:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body


def set_nodelay(transport) -> None:
    """TCP_NODELAY on the transport's socket: an answer written at once is sent at once."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


class _Connection(asyncio.Protocol):
    def __init__(self, server: "HttpServer"):
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.paused = False
        self.closed = False
        self.continue_sent = False
        self.timer: asyncio.TimerHandle | None = None
        self.cancellation = None
        self.current = None  # the handler's future of the request being answered

    # ------------------------------------------------------------- connection

    def connection_made(self, transport) -> None:
        self.transport = transport
        set_nodelay(transport)
        server = self.server
        server.connections += 1
        if server.connections > server.max_connections:
            self._send(Response(503, _error_body(
                f"Too many connections (the server allows {server.max_connections})")), False)
            return
        self._arm(server.idle_timeout, idle=True)

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.server.connections -= 1
        if self.timer is not None:
            self.timer.cancel()
        if self.busy and self.cancellation is not None:
            self.cancellation.start_cancel()  # the client went away: stop its work

    def _arm(self, seconds: float, idle: bool) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.server.loop.call_later(seconds, self._timed_out, idle) \
            if seconds and seconds > 0 else None

    def _timed_out(self, idle: bool) -> None:
        if self.closed or self.busy:
            return
        if idle and not self.buffer:
            self.transport.close()
        else:
            self._send(Response(408, _error_body(
                f"Request not received within {self.server.read_timeout:g}s")), False)

    # ----------------------------------------------------------------- input

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.buffer and not self.busy:
            self._arm(self.server.read_timeout, idle=False)  # a request has begun
        self.buffer += data
        if not self.busy:
            self._process()
        elif len(self.buffer) > self.server.max_body_bytes + MAX_HEAD_BYTES:
            self.paused = True  # a pipelining client far ahead of us: stop reading for now
            self.transport.pause_reading()

    def _process(self) -> None:
        while not self.busy and not self.closed and self.buffer:
            try:
                parsed = self._parse()
            except _HttpError as err:
                self._send(Response(err.status, _error_body(str(err))), False)
                return
            if parsed is None:
                return
            request, keep_alive = parsed
            self._dispatch(request, keep_alive)

    def _parse(self):
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise _HttpError(431, "Request head larger than 64 KiB")
            return None
        if end > MAX_HEAD_BYTES:
            raise _HttpError(431, "Request head larger than 64 KiB")
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _HttpError(400, f"Malformed request line: {lines[0][:200]!r}")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _HttpError(400, f"Malformed header line: {line[:200]!r}")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        limit = self.server.max_body_bytes
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body, consumed = self._chunked(start, limit)
            if body is None:
                self._maybe_continue(headers)
                return None
        else:
            text = headers.get("content-length", "0") or "0"
            if not text.isdigit():
                raise _HttpError(400, f"Invalid Content-Length: {text[:50]!r}")
            length = int(text)
            if length > limit:
                raise _HttpError(413, f"Request body of {length:,} bytes is larger than the "
                                      f"server's limit of {limit:,} bytes (--max_request_bytes)")
            if len(buffer) - start < length:
                self._maybe_continue(headers)
                return None
            body, consumed = bytes(buffer[start:start + length]), start + length
        del buffer[:consumed]
        self.continue_sent = False
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection and (version == "HTTP/1.1"
                                                    or "keep-alive" in connection)
        return Request(method, target, version, headers, body), keep_alive

    def _chunked(self, pos: int, limit: int):
        buffer = self.buffer
        chunks = []
        size_total = 0
        while True:
            eol = buffer.find(b"\r\n", pos)
            if eol < 0:
                return None, 0
            try:
                size = int(bytes(buffer[pos:eol]).split(b";")[0].strip() or b"0", 16)
            except ValueError:
                raise _HttpError(400, "Malformed chunk size") from None
            size_total += size
            if size_total > limit:
                raise _HttpError(413, f"Request body larger than the server's limit of "
                                      f"{limit:,} bytes (--max_request_bytes)")
            if size == 0:
                trailer_end = buffer.find(b"\r\n\r\n", eol)
                if buffer[eol:eol + 4] == b"\r\n\r\n":
                    return b"".join(chunks), eol + 4
                if trailer_end < 0:
                    return None, 0
                return b"".join(chunks), trailer_end + 4
            if len(buffer) < eol + 2 + size + 2:
                return None, 0
            chunks.append(bytes(buffer[eol + 2:eol + 2 + size]))
            pos = eol + 2 + size + 2

    def _maybe_continue(self, headers) -> None:
        if not self.continue_sent and headers.get("expect", "").lower() == "100-continue":
            self.continue_sent = True
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    # ---------------------------------------------------------------- output

    def _dispatch(self, request: Request, keep_alive: bool) -> None:
        server = self.server
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if server.in_flight >= server.threads + server.max_queued:
            self._send(Response(503, _error_body(
                f"Server busy: {server.in_flight} requests in progress or queued "
                f"(--rest_api_num_threads={server.threads}, --rest_max_queued="
                f"{server.max_queued}); retry later")), keep_alive)
            return
        # Reading goes on while the request runs, so a client that disconnects is noticed
        # (connection_lost) and its work cancelled. The answer comes back through callbacks,
        # not a coroutine: a Task, a shield and a wait_for per request cost the event loop
        # more Python than the request's own parsing.
        self.busy = True
        self.cancellation = request.cancellation = server.new_cancellation()
        server.in_flight += 1
        future = self.current = server.submit(
            server.handler, request, on_done=lambda f: self._handled(f, keep_alive))
        self.timer = server.loop.call_later(server.request_timeout, self._deadline, future,
                                            keep_alive) if server.request_timeout else None

    def _deadline(self, future, keep_alive: bool) -> None:
        """The request ran past ``request_timeout``: 504 now, and its model call cancelled."""
        self.timer = None
        if future.done() or not self.busy:
            return
        if self.cancellation is not None:
            self.cancellation.start_cancel()  # stop the model call, not just the wait
        self._respond(Response(504, _error_body("Deadline Exceeded")), keep_alive)

    def _handled(self, future, keep_alive: bool) -> None:
        self.server.in_flight -= 1
        if future is not self.current:
            return  # already answered (504) -- the handler's late answer is dropped
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        try:
            response = future.result()
        except Exception as err:  # the handler itself failed (it should not)
            log.error("REST handler failed", exc_info=err)
            response = Response(500, _error_body(f"Internal error: {type(err).__name__}"))
        self._respond(response, keep_alive)

    def _respond(self, response: Response, keep_alive: bool) -> None:
        server = self.server
        self.busy = False
        self.cancellation = self.current = None
        if self.closed:
            return
        self._send(response, keep_alive)
        if keep_alive and not self.closed:
            if self.paused:
                self.paused = False
                self.transport.resume_reading()
            if self.buffer:
                self._arm(server.read_timeout, idle=False)
                self._process()
            else:
                self._arm(server.idle_timeout, idle=True)

    def _send(self, response: Response, keep_alive: bool) -> None:
        if self.closed:
            return
        self.transport.write(encode_response(response, keep_alive))
        if not keep_alive:
            self.closed = True
            if self.timer is not None:
                self.timer.cancel()
            self.transport.close()


class HttpServer:
    """Serves ``handler`` on ``host:port`` from an event loop on a background thread."""

    connection_class = _Connection  # the asyncio.Protocol of one connection
    name = "REST"  # in errors and thread names

    def __init__(self, handler: Handler, host: str, port: int, *, threads: int = 4,
                 max_queued: int = 64, max_connections: int = 1024, backlog: int = 1024,
                 max_body_bytes: int = 16 << 20, read_timeout: float = 30.0,
                 idle_timeout: float = 300.0, request_timeout: float | None = 30.0,
                 ssl_context: ssl.SSLContext | None = None,
                 new_cancellation: Callable[[], object] = lambda: None):
        self.handler = handler
        self.host, self.port = host, port
        self.threads, self.max_queued = threads, max_queued
        self.max_connections, self.backlog = max_connections, backlog
        self.max_body_bytes = max_body_bytes
        self.read_timeout, self.idle_timeout = read_timeout, idle_timeout
        self.request_timeout = request_timeout
        self.ssl_context = ssl_context
        self.new_cancellation = new_cancellation
        self.connections = 0
        self.in_flight = 0
        self.pool = concurrent.futures.ThreadPoolExecutor(threads,
                                                          thread_name_prefix=self.name.lower())
        self.loop = asyncio.new_event_loop()
        self._server = None
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable, *args, on_done: Callable) -> concurrent.futures.Future:
        """``fn(*args)`` on the pool; ``on_done(future)`` then runs on the event loop."""
        loop = self.loop
        future = self.pool.submit(fn, *args)

        def handled(f):  # on the worker thread
            try:
                loop.call_soon_threadsafe(on_done, f)
            except RuntimeError:  # the loop is closed: the server stopped
                pass

        future.add_done_callback(handled)
        return future

    def start(self) -> "HttpServer":
        """Binds (raising OSError if the port is taken), then serves on a thread."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as err:
            sock.close()
            raise OSError(f"could not bind the {self.name} port {self.host}:{self.port}: {err}") \
                from None
        self.port = sock.getsockname()[1]

        async def serve():
            tls = {"ssl": self.ssl_context,  # a slow TLS handshake is a slow client too
                   "ssl_handshake_timeout": self.read_timeout or None} if self.ssl_context else {}
            self._server = await self.loop.create_server(
                lambda: self.connection_class(self), sock=sock, backlog=self.backlog, **tls)

        self.loop.run_until_complete(serve())
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"{self.name.lower()}-loop",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return

        def shutdown():
            self._server.close()
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.call_soon(self.loop.stop)

        self.loop.call_soon_threadsafe(shutdown)
        self._thread.join(timeout=5)
        self._thread = None
        self.pool.shutdown(wait=False, cancel_futures=True)
        try:
            self.loop.close()
        except RuntimeError:
            pass
