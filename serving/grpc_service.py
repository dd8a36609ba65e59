"""gRPC services of the model server: tensorflow.serving.PredictionService and ModelService.

The proto-level operations (:func:`predict`, :func:`get_model_metadata`,
:func:`get_model_status`) are shared with the REST front end, so both APIs answer
from the same code, with TF Serving's status codes and messages.
"""
from __future__ import annotations

import logging
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
from serving.models import ModelRegistry, Servable

log = logging.getLogger("serving.grpc")

SIGNATURE_DEF_FIELD = "signature_def"


def _resolve(registry: ModelRegistry, spec) -> Servable:
    version = spec.version.value if spec.HasField("version") else None
    label = spec.version_label if spec.WhichOneof("version_choice") == "version_label" else None
    return registry.resolve(spec.name, version, label)


def predict(registry: ModelRegistry, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
    if not request.HasField("model_spec"):
        raise st.invalid_argument("Missing ModelSpec")
    servable = _resolve(registry, request.model_spec)
    inputs = {name: tensors.tensor_proto_to_array(proto) for name, proto in request.inputs.items()}
    signature_name, outputs = servable.predict(
        request.model_spec.signature_name, inputs, list(request.output_filter))
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


def _answer(context: grpc.ServicerContext, method: str, fn: Callable):
    try:
        return fn()
    except st.ServerError as err:
        error = err
    except Exception as err:  # a bug or an unexpected TF failure: INTERNAL, server stays up
        log.exception("%s failed", method)
        error = st.internal(f"{type(err).__name__}: {err}")
    log.debug("%s failed: %s", method, error)
    context.abort(error.code, error.message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def Predict(self, request, context):
        return _answer(context, "Predict", lambda: predict(self.registry, request))

    def GetModelMetadata(self, request, context):
        return _answer(context, "GetModelMetadata",
                       lambda: get_model_metadata(self.registry, request))

    def _unsupported(self, context, method: str):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      f"{method} is not supported by this model server (the recommender models "
                      "expose Predict signatures only); use Predict")

    def Classify(self, request, context):
        self._unsupported(context, "Classify")

    def Regress(self, request, context):
        self._unsupported(context, "Regress")

    def MultiInference(self, request, context):
        self._unsupported(context, "MultiInference")


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, registry: ModelRegistry,
                 reload_config: Callable[[model_server_config_pb2.ModelServerConfig], None]):
        self.registry = registry
        self.reload_config = reload_config

    def GetModelStatus(self, request, context):
        return _answer(context, "GetModelStatus", lambda: get_model_status(self.registry, request))

    def HandleReloadConfigRequest(self, request, context):
        def run():
            self.reload_config(request.config)
            return model_management_pb2.ReloadConfigResponse()
        return _answer(context, "HandleReloadConfigRequest", run)


def add_services(server: grpc.Server, registry: ModelRegistry,
                 reload_config: Callable[[model_server_config_pb2.ModelServerConfig], None]) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(registry), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelServicer(registry, reload_config), server)
