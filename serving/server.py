"""Local model server speaking TensorFlow Serving's gRPC and REST APIs.

TF Serving's own binary is not available everywhere (no pip package, and the stock
image lacks the ScaNN ops), so this server loads the same SavedModels with
``tf.saved_model.load`` and answers the same requests with the same responses:

    python -m serving.server --model_config_file=serving/models.config \\
        --base_path_rewrite=/models=artifacts/serving --port=8500 --rest_api_port=8501
    python -m serving.server --model_name=retrieval --model_base_path=artifacts/serving/retrieval

From Python (tests, the ``recsys`` CLI)::

    server = ModelServer(model_server_config([("retrieval", "/abs/path")]),
                         grpc_port=0, rest_port=0, poll_seconds=1.0).start()
    ... server.grpc_port, server.rest_port ...
    server.stop()
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import logging
import os
import signal
import sys
import threading
from typing import Iterable, Mapping, Sequence

import grpc
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import grpc_service
from serving.batching import BatchingParameters, parse_batching_parameters
from serving.http_server import HttpServer
from serving.limits import Limits
from serving.metrics import Metrics
from serving.models import ModelRegistry, State, validate_config
from serving.rest import RestApi, make_rest_server
from serving.security import Security, TlsConfig, read_token
from serving.status import ServerError

log = logging.getLogger("serving.server")

DEFAULT_HOST = "127.0.0.1"  # TF Serving binds 0.0.0.0; we bind loopback unless told otherwise


def model_server_config(
    models: Iterable[tuple[str, str]] | Mapping[str, str],
) -> model_server_config_pb2.ModelServerConfig:
    """A ModelServerConfig serving each (name, base_path) with the default (latest 1) policy."""
    pairs = models.items() if isinstance(models, Mapping) else models
    config = model_server_config_pb2.ModelServerConfig()
    for name, base_path in pairs:
        config.model_config_list.config.add(name=name, base_path=str(base_path),
                                            model_platform="tensorflow")
    return config


def rewrite_base_paths(config: model_server_config_pb2.ModelServerConfig,
                       rewrites: Sequence[tuple[str, str]]) -> None:
    """Replaces base_path prefixes in place, e.g. ('/models', 'artifacts/serving')."""
    for model in config.model_config_list.config:
        for old, new in rewrites:
            old = old.rstrip("/")
            if model.base_path == old or model.base_path.startswith(old + "/"):
                model.base_path = os.path.abspath(new) + model.base_path[len(old):]
                break


def load_model_server_config(
    path: str, base_path_rewrites: Sequence[tuple[str, str]] = ()
) -> model_server_config_pb2.ModelServerConfig:
    """Reads a ModelServerConfig text proto (TF Serving's --model_config_file).

    Relative base paths are resolved against the config file's directory (TF Serving
    itself wants absolute paths); ``base_path_rewrites`` then map container paths such
    as /models to local directories.
    """
    config = model_server_config_pb2.ModelServerConfig()
    with open(path, encoding="utf-8") as f:
        text_format.Parse(f.read(), config)
    root = os.path.dirname(os.path.abspath(path))
    for model in config.model_config_list.config:
        if model.base_path and "://" not in model.base_path and not os.path.isabs(model.base_path):
            model.base_path = os.path.normpath(os.path.join(root, model.base_path))
    rewrite_base_paths(config, base_path_rewrites)
    validate_config(config)
    return config


class ModelServer:
    """gRPC + REST model server over a :class:`ModelRegistry`.

    ``grpc_port``/``rest_port`` 0 pick free ports (read them back from the attributes
    after :meth:`start`); ``rest_port=None`` disables REST. ``poll_seconds`` <= 0 loads
    once at start and never re-scans. Both ports bind to ``host`` (loopback by
    default). ``limits`` bound every request, ``security`` sets the token, TLS and the
    admin RPC (off by default), ``batching`` turns on server-side batching.
    """

    def __init__(self, config: model_server_config_pb2.ModelServerConfig, grpc_port: int = 8500,
                 rest_port: int | None = 8501, poll_seconds: float = 1.0, *,
                 host: str = DEFAULT_HOST, rest_timeout_ms: int = 30000,
                 grpc_max_workers: int = 8, grpc_max_queued: int = 64,
                 rest_threads: int = 8, rest_max_queued: int = 64,
                 max_connections: int = 1024, backlog: int = 1024,
                 read_timeout_s: float = 30.0, idle_timeout_s: float = 60.0,
                 limits: Limits | None = None, security: Security | None = None,
                 batching: BatchingParameters | None = None,
                 config_file: str | None = None, config_poll_seconds: float = 0.0,
                 base_path_rewrites: Sequence[tuple[str, str]] = ()):
        validate_config(config)
        self.config = config
        self.host = host
        self.grpc_port = grpc_port
        self.rest_port = rest_port
        self.poll_seconds = poll_seconds
        self.rest_timeout_ms = rest_timeout_ms
        self.grpc_max_workers = grpc_max_workers
        self.grpc_max_queued = grpc_max_queued
        self.rest_threads = rest_threads
        self.rest_max_queued = rest_max_queued
        self.max_connections = max_connections
        self.backlog = backlog
        self.read_timeout_s = read_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.limits = limits or Limits()
        if security is None:
            security = Security()
        if not security.reload_allowed_roots:  # the base paths the server starts with
            security = dataclasses.replace(security, reload_allowed_roots=tuple(
                m.base_path for m in config.model_config_list.config))
        self.security = security
        self.batching = batching
        self.metrics = Metrics()
        self.config_file = config_file
        self.config_poll_seconds = config_poll_seconds
        self.base_path_rewrites = list(base_path_rewrites)
        self.registry: ModelRegistry | None = None
        self._grpc: grpc.Server | None = None
        self._rest: HttpServer | None = None
        self._stopped = threading.Event()
        self._config_lock = threading.Lock()
        self._config_thread: threading.Thread | None = None

    def __enter__(self) -> "ModelServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "ModelServer":
        """Loads the models, then listens; returns once both ports accept requests."""
        self.registry = ModelRegistry(self.config, limits=self.limits, batching=self.batching)
        self.registry.poll()
        for name in self.registry.model_names():
            try:
                versions = [v for v, s in self.registry.status(name) if s.state == State.AVAILABLE]
            except Exception:
                versions = []
            if not versions:
                log.warning("Model %s has no available version yet", name)
        try:
            self._start_grpc()
            if self.rest_port is not None:
                api = RestApi(self.registry, self.security, self.metrics)
                timeout = self.rest_timeout_ms / 1000.0 if self.rest_timeout_ms > 0 else None
                self._rest = make_rest_server(
                    api, self.host, self.rest_port, threads=self.rest_threads,
                    max_queued=self.rest_max_queued, max_connections=self.max_connections,
                    backlog=self.backlog, max_body_bytes=self.limits.max_request_bytes,
                    read_timeout=self.read_timeout_s, idle_timeout=self.idle_timeout_s,
                    request_timeout=timeout,
                    ssl_context=self.security.tls.ssl_context() if self.security.tls else None)
                self._rest.start()
                self.rest_port = self._rest.port
                log.info("Exporting HTTP/REST API at:%s:%d ...", self.host, self.rest_port)
        except Exception:
            self.stop()
            raise
        self._log_exposure()
        self.registry.start_polling(self.poll_seconds)
        if self.config_file and self.config_poll_seconds > 0:
            self._config_thread = threading.Thread(target=self._watch_config, daemon=True,
                                                   name="config-poller")
            self._config_thread.start()
        return self

    def _log_exposure(self) -> None:
        security = self.security
        if self.host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("Listening on %s (not loopback): %s", self.host,
                        "TLS on" if security.tls else "no TLS; anyone who can reach the ports "
                        "can read the traffic" + ("" if security.token else
                                                  " and call every model (no --auth_token_file)"))
        if security.enable_reload_config:
            log.warning("HandleReloadConfigRequest is enabled (base paths under %s)",
                        ", ".join(security.reload_allowed_roots))

    def _start_grpc(self) -> None:
        options = [("grpc.max_receive_message_length", self.limits.max_request_bytes),
                   ("grpc.max_send_message_length", -1), ("grpc.so_reuseport", 0)]
        interceptors = [grpc_service.TokenInterceptor(self.security)] if self.security.token else []
        self._grpc = grpc.server(
            concurrent.futures.ThreadPoolExecutor(self.grpc_max_workers,
                                                  thread_name_prefix="grpc"),
            options=options, interceptors=interceptors,
            maximum_concurrent_rpcs=self.grpc_max_workers + self.grpc_max_queued)
        grpc_service.add_services(self._grpc, self.registry, self.reload_config, self.security,
                                  self.metrics)
        address = f"{self.host}:{self.grpc_port}"
        try:
            if self.security.tls is not None:
                port = self._grpc.add_secure_port(address, self.security.tls.grpc_credentials())
            else:
                port = self._grpc.add_insecure_port(address)
        except RuntimeError as err:
            raise OSError(f"could not bind the gRPC port {address}: {err}") from None
        if not port:
            raise OSError(f"could not bind the gRPC port {address}")
        self.grpc_port = port
        self._grpc.start()
        log.info("Running gRPC ModelServer at %s:%d ...", self.host, self.grpc_port)

    def reload_config(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """Applies a new ModelServerConfig (ModelService.HandleReloadConfigRequest)."""
        with self._config_lock:
            self.registry.configure(config)
            self.config = config
            self.registry.poll()

    def _watch_config(self) -> None:
        last = text_format.MessageToString(self.config)
        while not self._stopped.wait(self.config_poll_seconds):
            try:
                config = load_model_server_config(self.config_file, self.base_path_rewrites)
            except Exception as err:
                log.error("Could not re-read %s: %s", self.config_file, err)
                continue
            text = text_format.MessageToString(config)
            if text != last:
                log.info("Model config file %s changed; reloading", self.config_file)
                self.reload_config(config)
                last = text

    def stop(self, grace: float = 1.0) -> None:
        self._stopped.set()
        if self._rest is not None:
            self._rest.stop()
            self._rest = None
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
            self._grpc = None
        if self.registry is not None:
            self.registry.stop()

    def wait(self) -> None:
        """Blocks until :meth:`stop` is called (e.g. by a signal handler)."""
        while not self._stopped.wait(0.5):
            pass


def _rewrite(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        raise argparse.ArgumentTypeError(f"expected OLD_PREFIX=NEW_PREFIX, got {text!r}")
    return old, new


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m serving.server",
        description="Serve SavedModels over TensorFlow Serving's gRPC and REST APIs.")
    p.add_argument("--port", type=int, default=8500, help="gRPC port (0: pick a free one)")
    p.add_argument("--rest_api_port", type=int, default=8501, help="REST port (0: no REST)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help="address both APIs bind to (default loopback; 0.0.0.0 exposes them on "
                        "every interface: then use --auth_token_file and TLS)")
    p.add_argument("--rest_api_timeout_in_ms", type=int, default=30000,
                   help="REST requests running longer are answered 504 and cancelled")
    p.add_argument("--rest_api_num_threads", type=int, default=8,
                   help="threads running REST requests")
    p.add_argument("--rest_max_queued", type=int, default=64,
                   help="REST requests waiting for a thread before the server answers 503")
    p.add_argument("--grpc_max_threads", type=int, default=8)
    p.add_argument("--grpc_max_queued", type=int, default=64,
                   help="gRPC calls waiting for a thread before RESOURCE_EXHAUSTED")
    p.add_argument("--max_connections", type=int, default=1024, help="open REST connections")
    p.add_argument("--listen_backlog", type=int, default=1024)
    p.add_argument("--rest_read_timeout_seconds", type=float, default=30.0,
                   help="a REST request must arrive completely within this (else 408)")
    p.add_argument("--rest_idle_timeout_seconds", type=float, default=60.0,
                   help="idle kept-alive REST connections are closed after this")
    defaults = Limits()
    p.add_argument("--max_request_bytes", type=int, default=defaults.max_request_bytes,
                   help="REST body / gRPC message size (413 / RESOURCE_EXHAUSTED)")
    p.add_argument("--max_tensor_elements", type=int, default=defaults.max_tensor_elements,
                   help="tensor elements per request (413 / RESOURCE_EXHAUSTED)")
    p.add_argument("--max_batch_size", type=int, default=defaults.max_batch_size,
                   help="rows per request (400 / INVALID_ARGUMENT)")
    p.add_argument("--max_list_length", type=int, default=defaults.max_list_length,
                   help="items per history / exclude row (400 / INVALID_ARGUMENT)")
    p.add_argument("--max_k", type=int, default=defaults.max_k,
                   help="largest k (400 / INVALID_ARGUMENT)")
    p.add_argument("--auth_token_file", help="file holding a shared token every request must "
                   "carry (Authorization: Bearer <token>; gRPC metadata 'authorization')")
    p.add_argument("--ssl_cert_file", help="PEM certificate: serve gRPC and REST over TLS")
    p.add_argument("--ssl_key_file", help="PEM private key of --ssl_cert_file")
    p.add_argument("--ssl_client_ca_file", help="PEM CA: require client certificates it signed")
    p.add_argument("--ssl_config_file", help="TF Serving's SSLConfig text proto (inline PEM); "
                   "applied to gRPC and REST")
    p.add_argument("--enable_reload_config", action="store_true",
                   help="allow ModelService/HandleReloadConfigRequest (off by default)")
    p.add_argument("--reload_config_allowed_path", action="append", default=[],
                   help="base paths a reload may load from (repeatable; default: the base "
                        "paths the server started with)")
    p.add_argument("--model_config_file", help="ModelServerConfig text proto")
    p.add_argument("--model_config_file_poll_wait_seconds", type=float, default=0,
                   help="re-read --model_config_file this often (0: never)")
    p.add_argument("--model_name", default="default")
    p.add_argument("--model_base_path", help="directory holding numeric version dirs")
    p.add_argument("--file_system_poll_wait_seconds", type=float, default=1,
                   help="re-scan base paths this often (0: load once)")
    p.add_argument("--base_path_rewrite", type=_rewrite, action="append", default=[],
                   metavar="OLD=NEW", help="map base_path prefixes of the config file, e.g. "
                   "/models=artifacts/serving (repeatable; not a TF Serving flag)")
    p.add_argument("--enable_batching", nargs="?", const="true", default="false",
                   help="batch concurrent requests (TF Serving's flag)")
    p.add_argument("--batching_parameters_file",
                   help="BatchingParameters text proto (TF Serving's format)")
    p.add_argument("--log_level", default="INFO")
    for flag in ("--allow_version_labels_for_unavailable_models",):
        p.add_argument(flag, nargs="?", const="true", help="accepted for compatibility; ignored")
    p.add_argument("--monitoring_config_file",
                   help="accepted for compatibility; metrics are always at "
                        "/monitoring/prometheus/metrics on the REST port")
    return p


def server_from_args(args: argparse.Namespace) -> ModelServer:
    if args.model_config_file:
        config = load_model_server_config(args.model_config_file, args.base_path_rewrite)
    elif args.model_base_path:
        config = model_server_config([(args.model_name, os.path.abspath(args.model_base_path))])
    else:
        raise SystemExit("error: give --model_config_file or --model_base_path")
    for flag in ("allow_version_labels_for_unavailable_models", "monitoring_config_file"):
        if getattr(args, flag):
            log.warning("--%s is accepted for compatibility with TF Serving and ignored", flag)
    try:
        limits = Limits(max_request_bytes=args.max_request_bytes,
                        max_tensor_elements=args.max_tensor_elements,
                        max_batch_size=args.max_batch_size, max_list_length=args.max_list_length,
                        max_k=args.max_k)
    except ValueError as err:
        raise ServerError(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from None
    tls = None
    if args.ssl_config_file:
        tls = TlsConfig.from_ssl_config_file(args.ssl_config_file)
    elif args.ssl_cert_file or args.ssl_key_file:
        if not (args.ssl_cert_file and args.ssl_key_file):
            raise ServerError(grpc.StatusCode.INVALID_ARGUMENT,
                              "--ssl_cert_file and --ssl_key_file go together")
        tls = TlsConfig.from_files(args.ssl_cert_file, args.ssl_key_file, args.ssl_client_ca_file)
    try:
        token = read_token(args.auth_token_file) if args.auth_token_file else None
    except ValueError as err:
        raise ServerError(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from None
    security = Security(token=token, tls=tls, enable_reload_config=args.enable_reload_config,
                        reload_allowed_roots=tuple(os.path.abspath(p)
                                                   for p in args.reload_config_allowed_path))
    batching = None
    if str(args.enable_batching).lower() in ("true", "1", "yes"):
        text = ""
        if args.batching_parameters_file:
            with open(args.batching_parameters_file, encoding="utf-8") as f:
                text = f.read()
        try:
            batching = parse_batching_parameters(text)
        except ValueError as err:
            raise ServerError(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from None
    elif args.batching_parameters_file:
        log.warning("--batching_parameters_file is ignored without --enable_batching")
    return ModelServer(
        config, grpc_port=args.port, rest_port=args.rest_api_port or None,
        poll_seconds=args.file_system_poll_wait_seconds, host=args.host,
        rest_timeout_ms=args.rest_api_timeout_in_ms, grpc_max_workers=args.grpc_max_threads,
        grpc_max_queued=args.grpc_max_queued, rest_threads=args.rest_api_num_threads,
        rest_max_queued=args.rest_max_queued, max_connections=args.max_connections,
        backlog=args.listen_backlog, read_timeout_s=args.rest_read_timeout_seconds,
        idle_timeout_s=args.rest_idle_timeout_seconds, limits=limits, security=security,
        batching=batching, config_file=args.model_config_file,
        config_poll_seconds=args.model_config_file_poll_wait_seconds,
        base_path_rewrites=args.base_path_rewrite)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname).1s %(name)s] %(message)s")
    try:
        server = server_from_args(args)
    except (OSError, ValueError, text_format.ParseError, ServerError) as err:
        log.error("Invalid model server configuration: %s", err)
        return 2
    try:
        server.start()
    except OSError as err:
        log.error("%s", err)
        return 1
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: server._stopped.set())
    try:
        server.wait()
    finally:
        log.info("Shutting down")
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
