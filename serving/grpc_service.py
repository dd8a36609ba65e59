"""gRPC services of the model server: tensorflow.serving.PredictionService and ModelService.

The proto-level operations (:func:`predict`, :func:`get_model_metadata`,
:func:`get_model_status`) are shared with the REST front end, so both APIs answer
from the same code, with TF Serving's status codes and messages.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from serving import tensors
from serving import status as st
from serving.metrics import Metrics
from serving.models import ModelRegistry, Servable
from serving.security import Security
from serving.servable import DEFAULT_SIGNATURE, new_cancellation

log = logging.getLogger("serving.grpc")

SIGNATURE_DEF_FIELD = "signature_def"


def _resolve(registry: ModelRegistry, spec) -> Servable:
    version = spec.version.value if spec.HasField("version") else None
    label = spec.version_label if spec.WhichOneof("version_choice") == "version_label" else None
    return registry.resolve(spec.name, version, label)


def predict(registry: ModelRegistry, request: predict_pb2.PredictRequest, cancellation=None,
            info: dict | None = None) -> predict_pb2.PredictResponse:
    info = {} if info is None else info
    if not request.HasField("model_spec"):
        raise st.invalid_argument("Missing ModelSpec")
    info["model"] = request.model_spec.name
    servable = _resolve(registry, request.model_spec)
    info.update(version=servable.version,
                signature=request.model_spec.signature_name or DEFAULT_SIGNATURE)
    budget = registry.limits.max_tensor_elements
    inputs = {}
    for name, proto in request.inputs.items():  # declared shapes checked before decoding
        inputs[name] = tensors.tensor_proto_to_array(proto, max_elements=budget)
        budget -= inputs[name].size
    signature_name, outputs = servable.predict(
        request.model_spec.signature_name, inputs, list(request.output_filter),
        cancellation=cancellation)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = request.model_spec.name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = signature_name
    for name, array in outputs.items():
        response.outputs[name].CopyFrom(tensors.array_to_tensor_proto(array))
    return response


def get_model_metadata(
    registry: ModelRegistry, request: get_model_metadata_pb2.GetModelMetadataRequest
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    if not request.HasField("model_spec"):
        raise st.invalid_argument("Missing ModelSpec")
    if not request.metadata_field:
        raise st.invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != SIGNATURE_DEF_FIELD:
            raise st.invalid_argument(f"Metadata field {field} is not supported")
    servable = _resolve(registry, request.model_spec)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in servable.signature_defs.items():
        signature_map.signature_def[name].CopyFrom(signature)
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response


def get_model_status(
    registry: ModelRegistry, request: get_model_status_pb2.GetModelStatusRequest
) -> get_model_status_pb2.GetModelStatusResponse:
    if not request.HasField("model_spec"):
        raise st.invalid_argument("Missing ModelSpec")
    spec = request.model_spec
    version = spec.version.value if spec.HasField("version") else None
    response = get_model_status_pb2.GetModelStatusResponse()
    for number, state in registry.status(spec.name, version):
        entry = response.model_version_status.add(version=number, state=state.state)
        entry.status.error_code = state.error_code.value[0]
        entry.status.error_message = state.error_message
    return response


def _observe(method: str, fn: Callable, metrics: Metrics | None = None, api: str = "",
             info: dict | None = None):
    """``fn()``, counted in the metrics; any failure raised as a :class:`st.ServerError`
    (an unexpected one -- a bug, a TF failure -- as INTERNAL: the server stays up)."""
    start = time.perf_counter()
    info = {} if info is None else info
    error = None
    try:
        return fn()
    except st.ServerError as err:
        error = err
    except Exception as err:
        log.exception("%s failed", method)
        error = st.internal(f"{type(err).__name__}: {err}")
    finally:
        if metrics is not None:
            metrics.observe(info.get("model", ""), info.get("version"), info.get("signature", ""),
                            api or method, "GRPC", "OK" if error is None else error.code.name,
                            time.perf_counter() - start)
    log.debug("%s failed: %s", method, error)
    raise error


def _answer(context: grpc.ServicerContext, method: str, fn: Callable,
            metrics: Metrics | None = None, api: str = "", info: dict | None = None):
    try:
        return _observe(method, fn, metrics, api, info)
    except st.ServerError as error:
        context.abort(error.code, error.message)


def _cancel_on_termination(context: grpc.ServicerContext):
    """A TF CancellationManager cancelled when the RPC ends early (client cancel, deadline)."""
    cancellation = new_cancellation()
    if cancellation is not None:
        context.add_callback(cancellation.start_cancel)
        if not context.is_active():
            cancellation.start_cancel()
    return cancellation


def _unsupported(method: str) -> st.ServerError:
    return st.ServerError(grpc.StatusCode.UNIMPLEMENTED,
                          f"{method} is not supported by this model server (the recommender "
                          "models expose Predict signatures only); use Predict")


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, registry: ModelRegistry, metrics: Metrics | None = None):
        self.registry = registry
        self.metrics = metrics

    def Predict(self, request, context):
        info: dict = {}
        return _answer(context, "Predict",
                       lambda: predict(self.registry, request, _cancel_on_termination(context),
                                       info), self.metrics, "predict", info)

    def GetModelMetadata(self, request, context):
        info = {"model": request.model_spec.name}
        return _answer(context, "GetModelMetadata",
                       lambda: get_model_metadata(self.registry, request), self.metrics,
                       "metadata", info)

    def _unsupported(self, context, method: str):
        error = _unsupported(method)
        context.abort(error.code, error.message)

    def Classify(self, request, context):
        self._unsupported(context, "Classify")

    def Regress(self, request, context):
        self._unsupported(context, "Regress")

    def MultiInference(self, request, context):
        self._unsupported(context, "MultiInference")


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, registry: ModelRegistry,
                 reload_config: Callable[[model_server_config_pb2.ModelServerConfig], None],
                 security: Security | None = None, metrics: Metrics | None = None):
        self.registry = registry
        self.reload_config = reload_config
        self.security = security or Security()
        self.metrics = metrics

    def GetModelStatus(self, request, context):
        return _answer(context, "GetModelStatus", lambda: get_model_status(self.registry, request),
                       self.metrics, "status", {"model": request.model_spec.name})

    def HandleReloadConfigRequest(self, request, context):
        def run():
            self.security.check_reload(request.config)
            self.reload_config(request.config)
            return model_management_pb2.ReloadConfigResponse()
        return _answer(context, "HandleReloadConfigRequest", run, self.metrics, "reload_config")


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses calls without ``authorization: Bearer <token>`` metadata (UNAUTHENTICATED)."""

    def __init__(self, security: Security):
        self.security = security

    def intercept_service(self, continuation, handler_call_details):
        metadata = dict(handler_call_details.invocation_metadata or ())
        try:
            self.security.check_authorization(metadata.get("authorization"))
        except st.ServerError as err:
            error = err

            def deny(request, context):
                context.abort(error.code, error.message)
            return grpc.unary_unary_rpc_method_handler(deny)
        return continuation(handler_call_details)


def add_services(server: grpc.Server, registry: ModelRegistry,
                 reload_config: Callable[[model_server_config_pb2.ModelServerConfig], None],
                 security: Security | None = None, metrics: Metrics | None = None) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(registry, metrics), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelServicer(registry, reload_config, security, metrics), server)

