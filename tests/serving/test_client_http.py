"""The client's own HTTP/1.1 connection (``_HttpConnection``) against canned answers.

One ``sendall`` per request (head and body together), answers with Content-Length, chunked
or read-until-close bodies, interim ``100`` answers, ``Connection: close``, and a kept-alive
connection the server dropped meanwhile (reconnected once).
"""
from __future__ import annotations

import json
import socket
import threading

import pytest

from serving.client import RecommenderClient, ServingError

OK = b'{"ok": 1}'


class CannedServer:
    """Accepts connections; answers the i-th request with ``answers[i]`` (bytes, or None
    to close the connection without answering); records each request's bytes."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            buffer = b""
            while self.answers:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                buffer = rest[length:]
                answer = self.answers.pop(0)
                if answer is None:
                    return
                conn.sendall(answer)
                if b"Connection: close" in answer or answer.startswith(b"HTTP/1.0"):
                    return

    def close(self):
        self.sock.close()


def answer(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


@pytest.fixture()
def canned():
    servers = []

    def make(*answers):
        servers.append(CannedServer(answers))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def client_for(server, **kwargs):
    return RecommenderClient(f"127.0.0.1:{server.port}", "rest", model_name="m", **kwargs)


def test_each_request_is_one_write_with_host_length_and_token(canned, monkeypatch):
    server = canned(answer(OK), answer(OK))
    sent = []
    original = socket.socket.sendall

    def sendall(self, data, *args):
        sent.append(bytes(data))
        return original(self, data, *args)

    monkeypatch.setattr(socket.socket, "sendall", sendall)
    with client_for(server, token="t" * 16) as client:
        assert client._http("POST", "/v1/x", data=b'{"a": 1}') == {"ok": 1}
        assert client._http("GET", "/v1/y") == {"ok": 1}
    sent = [data for data in sent if not data.startswith(b"HTTP/")]  # the canned answers
    assert len(sent) == 2 and server.connections == 1
    post, get = server.requests
    assert post == (f"POST /v1/x HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                    "Content-Type: application/json\r\nAuthorization: Bearer " + "t" * 16
                    + "\r\nContent-Length: 8\r\n\r\n{\"a\": 1}").encode()
    assert get.startswith(b"GET /v1/y HTTP/1.1\r\n") and b"Content-Length" not in get


def test_chunked_interim_and_read_to_close_answers(canned):
    chunked = (b"HTTP/1.1 100 Continue\r\n\r\n"
               b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3;ext=1\r\n{\"o\r\n6\r\nk\": 2}\r\n0\r\nX-Trailer: 1\r\n\r\n")
    server = canned(chunked, answer(OK), b'HTTP/1.0 200 OK\r\n\r\n{"closed": true}')
    with client_for(server) as client:
        assert client._http("GET", "/a") == {"ok": 2}
        assert client._http("GET", "/b") == {"ok": 1}          # same connection after chunks
        assert client._http("GET", "/c") == {"closed": True}    # no length: read to close
        assert server.connections == 1
        assert client._local.connection is None                 # dropped after a 1.0 answer


def test_connection_close_and_a_dropped_kept_alive_connection_reconnect(canned):
    server = canned(answer(OK, extra="Connection: close\r\n"), answer(OK), None, answer(OK))
    with client_for(server) as client:
        assert client._http("GET", "/1") == {"ok": 1}   # server closes after answering
        assert client._http("GET", "/2") == {"ok": 1}   # on a new connection
        assert client._http("GET", "/3") == {"ok": 1}   # dropped without answer: retried once
    assert server.connections == 3
    assert [r.split(b" ")[1] for r in server.requests] == [b"/1", b"/2", b"/3", b"/3"]


def test_errors_keep_the_servers_message_and_status(canned):
    body = json.dumps({"error": "Servable not found"}).encode()
    server = canned(answer(body, "404 Not Found"), answer(b"not json", "502 Bad Gateway"),
                    answer(b"", "503 Service Unavailable"))
    with client_for(server) as client:
        for code, message in ((404, "Servable not found"), (502, "not json"),
                              (503, "Service Unavailable")):
            with pytest.raises(ServingError) as info:
                client._http("GET", "/x")
            assert (info.value.code, info.value.message) == (code, message)


def test_a_server_that_never_answers_is_a_timeout_and_garbage_is_unavailable(canned):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        client = RecommenderClient(f"127.0.0.1:{silent.getsockname()[1]}", "rest",
                                   model_name="m", timeout=0.3)
        with pytest.raises(ServingError) as info:
            client._http("GET", "/x")
        assert info.value.code == "DEADLINE_EXCEEDED"
    finally:
        silent.close()
    server = canned(b"SPDY/9 what\r\n\r\n")
    with pytest.raises(ServingError) as info:
        client_for(server)._http("GET", "/x")
    assert info.value.code == "UNAVAILABLE"
