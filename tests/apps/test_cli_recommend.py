"""`recsys recommend --server ...`: bad address, model or k give one line, not a traceback."""
from __future__ import annotations

import socket

import pytest

from apps import cli


@pytest.fixture()
def closed_port():
    """A port bound by this test and never listened on: connections to it are refused for the test's
    whole duration (a port merely found free at collection time can be taken by another test's server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.mark.parametrize("args,needle", [
    (["--server", "nohost"], "target must be 'host:port'"),
    (["--server", "127.0.0.1:{closed}"], "cannot reach the model server"),
    (["--server", "127.0.0.1:{closed}", "--protocol", "grpc"], "cannot reach the model server"),
    (["--server", "127.0.0.1:8501", "--k", "0"], "--k must be a positive int"),
    (["--server", "127.0.0.1:8501", "--timeout", "0"], "timeout must be a positive number"),
])
def test_recommend_errors_are_one_line(capsys, closed_port, args, needle):
    args = [a.format(closed=closed_port) for a in args]
    code = cli.main(["recommend", "--history", "1,2", "--model", "retrieval", *args])
    err = capsys.readouterr().err
    assert code in (1, 2)
    assert needle in err and "Traceback" not in err
    assert err.startswith("recsys recommend: error: ") and err.count("\n") == 1


@pytest.fixture()
def not_found_server():
    """Answers every request as TF Serving does for an unknown model."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"error": "Servable not found for request: Latest(nope)"}'
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_an_unknown_model_is_one_line(capsys, not_found_server):
    code = cli.main(["recommend", "--history", "item-1", "--model", "nope", "--server",
                     f"127.0.0.1:{not_found_server}"])
    err = capsys.readouterr().err
    assert code == 1 and "Servable not found for request: Latest(nope) [404]" in err
    assert "Traceback" not in err
