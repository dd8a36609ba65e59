"""REST front end of the model server, with TF Serving's URLs, JSON and HTTP codes.

* ``GET  /v1/models/{name}[/versions/{v}|/labels/{l}]``            model status
* ``GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata``   signature defs
* ``POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict``    row or columnar JSON
* ``GET  /monitoring/prometheus/metrics``                          Prometheus metrics

Errors are ``{"error": "<message>"}`` with the HTTP status TF Serving maps the
canonical code to (see :mod:`serving.status`). The sockets, limits and timeouts are
:mod:`serving.http_server`'s.
"""
from __future__ import annotations

import logging
import re
import time
import urllib.parse

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from serving import codec, grpc_service
from serving import metrics as metrics_module
from serving import status as st
from serving.http_server import HttpServer, Request, Response
from serving.models import ModelRegistry
from serving.security import Security
from serving.servable import new_cancellation

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
    """Maps a request to (HTTP status, JSON text); no sockets involved.

    ``security`` checks the shared token; ``metrics`` counts every request by model,
    version and signature.
    """

    def __init__(self, registry: ModelRegistry, security: Security | None = None,
                 metrics: metrics_module.Metrics | None = None):
        self.registry = registry
        self.security = security or Security()
        self.metrics = metrics

    def __call__(self, request: Request) -> Response:
        """The :class:`serving.http_server.HttpServer` handler."""
        path = urllib.parse.urlsplit(request.target).path
        try:
            self.security.check_authorization(request.headers.get("authorization"))
        except st.ServerError as err:
            return Response(err.http_status, codec.error_json(err.message).encode("utf-8"),
                            headers=[("WWW-Authenticate", "Bearer")])
        if path == metrics_module.PATH and request.method == "GET" and self.metrics is not None:
            return Response(200, self.metrics.render().encode("utf-8"),
                            content_type=metrics_module.CONTENT_TYPE)
        if not _API_PATH.fullmatch(path):
            return Response(404, codec.error_json(
                f"Not found: {request.method} {path} (the REST API lives under "
                "/v1/models/...)").encode("utf-8"))
        code, text = self.handle(request.method, path, request.body, request.cancellation)
        return Response(code, text.encode("utf-8"))

    def handle(self, method: str, path: str, body: bytes,
               cancellation=None) -> tuple[int, str]:
        info = {"api": "unknown"}
        start = time.perf_counter()
        try:
            result = 200, self._route(method, path, body, cancellation, info)
            status = "OK"
        except st.ServerError as err:
            log.debug("HTTP/REST request %s %s failed: %s", method, path, err)
            result = err.http_status, codec.error_json(err.message)
            status = err.code.name
        except Exception as err:  # never let a request take the server down
            log.exception("Error processing HTTP/REST request %s %s", method, path)
            result = 500, codec.error_json(f"Internal error: {type(err).__name__}: {err}")
            status = "INTERNAL"
        if self.metrics is not None:
            self.metrics.observe(info.get("model", ""), info.get("version"),
                                 info.get("signature", ""), info["api"], "REST", status,
                                 time.perf_counter() - start)
        return result

    def _route(self, method: str, path: str, body: bytes, cancellation, info: dict) -> str:
        if method == "POST":
            match = _PREDICT.fullmatch(path)
            if match:
                name, version, label = self._model_info(match)
                kind = match.group(4).lower()
                info.update(api=kind, model=name, version=version)
                if kind != "predict":
                    raise st.unimplemented(
                        f"The :{kind} API is not supported by this model server (the recommender"
                        " models expose predict signatures only); use :predict")
                return self._predict(name, version, label, body, cancellation, info)
        elif method == "GET":
            match = _STATUS.fullmatch(path)
            if match:
                name, version, label = self._model_info(match)
                info.update(model=name, version=version)
                if not name:
                    raise st.invalid_argument("Missing model name in request.")
                if match.group(4):
                    info["api"] = "metadata"
                    return self._metadata(name, version, label)
                info["api"] = "status"
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

    def _predict(self, name: str, version: int | None, label: str | None, body: bytes,
                 cancellation, info: dict) -> str:
        resolved = {}

        def input_dtypes(signature_name: str):
            servable = resolved["servable"] = self.registry.resolve(name, version, label)
            info.update(version=servable.version,
                        signature=signature_name or grpc_service.DEFAULT_SIGNATURE)
            return servable.input_dtypes(signature_name)

        signature_name, inputs, fmt = codec.parse_predict_request(
            body, input_dtypes, max_elements=self.registry.limits.max_tensor_elements)
        servable = resolved["servable"]
        _, outputs = servable.predict(signature_name, inputs, cancellation=cancellation)
        return codec.format_predict_response(outputs, fmt)

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


def make_rest_server(api: RestApi, host: str, port: int, **options) -> HttpServer:
    """The REST API on :class:`serving.http_server.HttpServer` (options: its keywords)."""
    return HttpServer(api, host, port, new_cancellation=new_cancellation, **options)
