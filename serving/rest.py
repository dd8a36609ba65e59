"""REST front end of the model server, with TF Serving's URLs, JSON and HTTP codes.

* ``GET  /v1/models/{name}[/versions/{v}|/labels/{l}]``            model status
* ``GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata``   signature defs
* ``POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict``    row or columnar JSON

Errors are ``{"error": "<message>"}`` with the HTTP status TF Serving maps the
canonical code to (see :mod:`serving.status`).
"""
from __future__ import annotations

import concurrent.futures
import http.server
import logging
import re
import threading
import urllib.parse

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from serving import codec, grpc_service
from serving import status as st
from serving.models import ModelRegistry

log = logging.getLogger("serving.rest")

_PREDICT = re.compile(r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                      r":(classify|regress|predict)", re.IGNORECASE)
_STATUS = re.compile(r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                     r"(?:/(metadata))?", re.IGNORECASE)
_API_PATH = re.compile(r"/v1/.*", re.IGNORECASE)
_INT64_MAX = 2**63 - 1


def _json(message, **kwargs) -> str:
    return json_format.MessageToJson(message, including_default_value_fields=True, indent=1,
                                     **kwargs)


class RestApi:
    """Maps (method, path, body) to (HTTP status, JSON text); no sockets involved."""

    def __init__(self, registry: ModelRegistry, timeout_ms: int = 30000,
                 executor: concurrent.futures.Executor | None = None):
        self.registry = registry
        self.timeout_s = timeout_ms / 1000.0 if timeout_ms and timeout_ms > 0 else None
        self.executor = executor

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        try:
            return 200, self._route(method, path, body)
        except st.ServerError as err:
            log.debug("HTTP/REST request %s %s failed: %s", method, path, err)
            return err.http_status, codec.error_json(err.message)
        except Exception as err:  # never let a request take the server down
            log.exception("Error processing HTTP/REST request %s %s", method, path)
            return 500, codec.error_json(f"Internal error: {type(err).__name__}: {err}")

    def _route(self, method: str, path: str, body: bytes) -> str:
        if method == "POST":
            match = _PREDICT.fullmatch(path)
            if match:
                name, version, label = self._model_info(match)
                kind = match.group(4).lower()
                if kind != "predict":
                    raise st.unimplemented(
                        f"The :{kind} API is not supported by this model server (the recommender"
                        " models expose predict signatures only); use :predict")
                return self._predict(name, version, label, body)
        elif method == "GET":
            match = _STATUS.fullmatch(path)
            if match:
                name, version, label = self._model_info(match)
                if not name:
                    raise st.invalid_argument("Missing model name in request.")
                if match.group(4):
                    return self._metadata(name, version, label)
                return self._status(name, version)
        raise st.invalid_argument(f"Malformed request: {method} {path}")

    @staticmethod
    def _model_info(match: re.Match) -> tuple[str, int | None, str | None]:
        name = urllib.parse.unquote(match.group(1) or "")
        version = match.group(2)
        if version is not None:
            if int(version) > _INT64_MAX:
                raise st.invalid_argument(f"Failed to convert version: {version} to numeric.")
            version = int(version)
        label = urllib.parse.unquote(match.group(3)) if match.group(3) else None
        return name, version, label

    def _predict(self, name: str, version: int | None, label: str | None, body: bytes) -> str:
        resolved = {}

        def input_dtypes(signature_name: str):
            resolved["servable"] = self.registry.resolve(name, version, label)
            return resolved["servable"].input_dtypes(signature_name)

        signature_name, inputs, fmt = codec.parse_predict_request(body, input_dtypes)
        servable = resolved["servable"]
        _, outputs = self._run(servable.predict, signature_name, inputs)
        return codec.format_predict_response(outputs, fmt)

    def _run(self, fn, *args):
        if self.executor is None or self.timeout_s is None:
            return fn(*args)
        future = self.executor.submit(fn, *args)
        try:
            return future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise st.deadline_exceeded("Deadline Exceeded") from None

    def _status(self, name: str, version: int | None) -> str:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        if version is not None:
            request.model_spec.version.value = version
        return _json(grpc_service.get_model_status(self.registry, request))

    def _metadata(self, name: str, version: int | None, label: str | None) -> str:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            metadata_field=[grpc_service.SIGNATURE_DEF_FIELD])
        request.model_spec.name = name
        if version is not None:
            request.model_spec.version.value = version
        if label:
            request.model_spec.version_label = label
        response = grpc_service.get_model_metadata(self.registry, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata[grpc_service.SIGNATURE_DEF_FIELD].Unpack(signature_map)
        spec = model_pb2.ModelSpec()
        spec.CopyFrom(response.model_spec)
        # Same layout as TF Serving's ToJsonString(GetModelMetadataResponse).
        return ('{\n"model_spec":' + _json(spec, preserving_proto_field_name=True) + ",\n"
                '"metadata": {"signature_def": '
                + _json(signature_map, preserving_proto_field_name=True) + "}\n}\n")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; also answers "Expect: 100-continue" (curl)
    server_version = "recsys-model-server"
    timeout = 300  # seconds a kept-alive connection may sit idle before it is closed
    api: RestApi  # set on the subclass built by make_http_server

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError) as err:
            self._reply(400, codec.error_json(f"Could not read request body: {err}"))
            return
        path = urllib.parse.urlsplit(self.path).path
        if not _API_PATH.fullmatch(path):
            self._reply(404, codec.error_json(f"Not found: {self.command} {path} (the REST API "
                                              "lives under /v1/models/...)"))
            return
        code, text = self.api.handle(self.command, path, body)
        self._reply(code, text)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _reply(self, code: int, text: str) -> None:
        data = text.encode("utf-8")
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # client went away (e.g. it timed out): nothing to answer
            self.close_connection = True

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)


class RestServer:
    """A ThreadingHTTPServer serving :class:`RestApi` on a background thread."""

    def __init__(self, api: RestApi, host: str, port: int):
        handler = type("RestHandler", (_Handler,), {"api": api})
        self.httpd = http.server.ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="rest-server",
                                        kwargs={"poll_interval": 0.2}, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
