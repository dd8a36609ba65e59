"""Model registry of the local model server: versions on disk -> loaded SavedModels.

Mirrors what TF Serving's ServerCore does for a ``ModelServerConfig``: every model has
a ``base_path`` whose numeric sub-directories are versions; the version policy
(``latest {num_versions}`` (default 1), ``all``, ``specific {versions}``) picks the
versions to serve; ``version_labels`` name versions; a poll re-scans the file system,
loads new versions (replaying ``assets.extra/tf_serving_warmup_requests``) and unloads
versions the policy no longer wants, after a wanted version is available. Version
states follow ``ModelVersionStatus.State`` (LOADING, AVAILABLE, UNLOADING, END).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Iterable

import grpc
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving import status as st
from serving.limits import Limits
from serving.servable import Servable, import_custom_ops  # noqa: F401 - re-exported

log = logging.getLogger("serving.models")

State = get_model_status_pb2.ModelVersionStatus.State


@dataclass
class VersionState:
    state: int
    error_code: grpc.StatusCode = grpc.StatusCode.OK
    error_message: str = ""


class _Model:
    def __init__(self, config: model_server_config_pb2.ModelConfig):
        self.servables: dict[int, Servable] = {}
        self.states: dict[int, VersionState] = {}
        self.failed: dict[int, object] = {}  # version -> fingerprint of the dir that failed
        self.waiting: set[int] = set()  # versions without saved_model.pb yet (logged once)
        self.warned: set[str] = set()  # once-only warnings
        self.update(config)

    def update(self, config: model_server_config_pb2.ModelConfig) -> None:
        self.config = config
        self.name = config.name
        self.base_path = config.base_path
        self.labels = dict(config.version_labels)

    def aspired(self, on_disk: Iterable[int]) -> set[int]:
        versions = sorted(on_disk, reverse=True)
        policy = self.config.model_version_policy
        choice = policy.WhichOneof("policy_choice")
        if choice == "all":
            return set(versions)
        if choice == "specific":
            return set(versions) & set(policy.specific.versions)
        keep = policy.latest.num_versions if choice == "latest" else 0
        return set(versions[: max(1, keep)])


def validate_config(config: model_server_config_pb2.ModelServerConfig) -> None:
    if config.WhichOneof("config") != "model_config_list":
        raise st.invalid_argument("ModelServerConfig must have a model_config_list")
    seen = set()
    for model in config.model_config_list.config:
        if not model.name:
            raise st.invalid_argument("Every model config needs a name")
        if model.name in seen:
            raise st.invalid_argument(f"Illegal to list model {model.name} multiple times")
        seen.add(model.name)
        if not model.base_path:
            raise st.invalid_argument(f"Model {model.name} has no base_path")
        if model.model_platform not in ("", "tensorflow"):
            raise st.invalid_argument(
                f"Model {model.name}: unsupported model_platform {model.model_platform!r} "
                "(this server loads TensorFlow SavedModels only)")


class ModelRegistry:
    """Thread-safe set of models; requests resolve servables, a poller syncs with disk."""

    def __init__(self, config: model_server_config_pb2.ModelServerConfig | None = None,
                 limits: Limits | None = None, batching=None):
        import_custom_ops()
        self.limits = limits or Limits()
        self.batching = batching  # serving.batching.BatchingParameters, or None
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self._models: dict[str, _Model] = {}
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        if config is not None:
            self.configure(config)

    # ---------------------------------------------------------------- configuration

    def configure(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """Applies a (new) config: adds models, drops removed ones, updates labels/policy.

        Call :meth:`poll` afterwards to load/unload versions accordingly.
        """
        validate_config(config)
        with self._lock:
            wanted = {c.name: c for c in config.model_config_list.config}
            for name in list(self._models):
                if name not in wanted:
                    log.info("Removing model %s (not in the new config)", name)
                    self._stop_batchers(self._models.pop(name))
            for name, model_config in wanted.items():
                if name in self._models:
                    self._models[name].update(model_config)
                else:
                    self._models[name] = _Model(model_config)

    def model_names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    # -------------------------------------------------------------------- polling

    def poll(self) -> None:
        """One file-system scan of every model: load new versions, unload unwanted ones."""
        with self._sync_lock:
            with self._lock:
                models = list(self._models.values())
            for model in models:
                try:
                    self._sync(model)
                except Exception:  # never let one model's trouble stop the poller
                    log.exception("Error while polling model %s", model.name)

    def start_polling(self, interval_seconds: float) -> None:
        if interval_seconds <= 0 or self._poller is not None:
            return

        def run() -> None:
            while not self._stop.wait(interval_seconds):
                self.poll()

        self._poller = threading.Thread(target=run, name="model-poller", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=30)
            self._poller = None
        with self._lock:
            for model in self._models.values():
                self._stop_batchers(model)

    @staticmethod
    def _stop_batchers(model: _Model) -> None:
        for servable in model.servables.values():
            if servable.batcher is not None:
                servable.batcher.stop()

    def _scan(self, model: _Model) -> dict[int, str] | None:
        base = model.base_path
        if not tf.io.gfile.isdir(base):
            self._warn_once(model, "missing", "File system path %s of model %s does not exist "
                            "(yet); will keep polling", base, model.name)
            return None
        model.warned.discard("missing")
        versions = {}
        for entry in tf.io.gfile.listdir(base):
            entry = entry.rstrip("/")
            if entry.isdigit():
                versions[int(entry)] = os.path.join(base, entry)
        return versions

    @staticmethod
    def _fingerprint(path: str) -> object:
        """(relative path, size, mtime) of every file of a version directory.

        A version that failed to load is retried when this changes: a version written
        non-atomically (saved_model.pb first, variables later) fails while it is half
        written and loads on the first poll after its last file lands.
        """
        entries = []
        try:
            for root, _, files in tf.io.gfile.walk(path):
                for name in files:
                    full = os.path.join(root, name)
                    stat = tf.io.gfile.stat(full)
                    entries.append((os.path.relpath(full, path), stat.length, stat.mtime_nsec))
        except tf.errors.OpError:
            return None
        return tuple(sorted(entries))

    def _sync(self, model: _Model) -> None:
        on_disk = self._scan(model)
        if on_disk is None:
            return
        ready = {}
        for version, path in on_disk.items():
            if any(tf.io.gfile.exists(os.path.join(path, f))
                   for f in ("saved_model.pb", "saved_model.pbtxt")):
                ready[version] = path
                model.waiting.discard(version)
            elif version not in model.waiting:
                model.waiting.add(version)
                log.info("Version %d of model %s has no saved_model.pb yet; waiting", version,
                         model.name)
        if not ready:
            if not model.servables:
                self._warn_once(model, "empty", "No versions of servable %s found under base "
                                "path %s", model.name, model.base_path)
            return
        model.warned.discard("empty")
        aspired = model.aspired(ready)
        for version in sorted(aspired - set(model.servables), reverse=True):
            fingerprint = self._fingerprint(ready[version])
            if model.failed.get(version, object()) == fingerprint:
                continue  # failed before and unchanged since: don't retry every poll
            if version in model.failed:
                log.info("Files of version %d of model %s changed since it failed to load; "
                         "retrying", version, model.name)
            self._load(model, version, ready[version], fingerprint)
        with self._lock:
            available = aspired & set(model.servables)
            stale = sorted(set(model.servables) - aspired) if available else []
            for version in stale:
                model.states[version] = VersionState(State.UNLOADING)
                unloaded = model.servables.pop(version)
                if unloaded.batcher is not None:
                    unloaded.batcher.stop()
                model.states[version] = VersionState(State.END)
                log.info("Successfully unloaded servable version {name: %s version: %d}",
                         model.name, version)
        if not available and set(model.servables) - aspired:
            self._warn_once(model, f"keep{sorted(aspired)}", "Keeping versions %s of model %s: "
                            "no version wanted by the policy (%s) is available",
                            sorted(model.servables), model.name, sorted(aspired))

    @staticmethod
    def _warn_once(model: _Model, key: str, message: str, *args) -> None:
        if key not in model.warned:
            model.warned.add(key)
            log.warning(message, *args)

    def _load(self, model: _Model, version: int, path: str, fingerprint: object) -> None:
        with self._lock:
            model.states[version] = VersionState(State.LOADING)
        log.info("Loading servable version {name: %s version: %d} from %s", model.name,
                 version, path)
        start = time.monotonic()
        try:
            servable = Servable(model.name, version, path, self.limits).load()
        except Exception as err:
            error = st.from_exception(err)
            log.error("Loading servable version {name: %s version: %d} failed: %s (retried "
                      "when its files change)", model.name, version, error)
            with self._lock:
                model.failed[version] = fingerprint
                model.states[version] = VersionState(
                    State.END, error.code,
                    f"{error.message} (load failed; retried when the files of version "
                    f"{version} change)")
            return
        if self.batching is not None:
            from serving.batching import BatchScheduler

            servable.batcher = BatchScheduler(self.batching, f"{model.name}/{version}")
        with self._lock:
            model.failed.pop(version, None)
            model.servables[version] = servable
            model.states[version] = VersionState(State.AVAILABLE)
        log.info("Successfully loaded servable version {name: %s version: %d} in %.2fs "
                 "(signatures: %s; warmup records: %d)", model.name, version,
                 time.monotonic() - start, ", ".join(sorted(servable.functions)),
                 servable.warmup_records)

    # ------------------------------------------------------------------- lookups

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request names (TF Serving's GetServableHandle semantics)."""
        with self._lock:
            model = self._models.get(name)
            if label:
                if model is None or label not in model.labels:
                    raise st.invalid_argument(f"Unrecognized servable version label: {label}")
                version = model.labels[label]
            servables = model.servables if model is not None else {}
            if version is None:
                if servables:
                    return servables[max(servables)]
                raise st.not_found(f"Servable not found for request: Latest({name})")
            if version in servables:
                return servables[version]
            raise st.not_found(f"Servable not found for request: Specific({name}, {version})")

    def servable(self, name: str, version: int | None = None) -> Servable:
        return self.resolve(name, version)

    def status(self, name: str, version: int | None = None) -> list[tuple[int, VersionState]]:
        """[(version, state)] newest first, like GetModelStatus (labels are not consulted)."""
        with self._lock:
            model = self._models.get(name)
            states = dict(model.states) if model is not None else {}
        if version is not None:
            if version not in states:
                raise st.not_found(f"Could not find version {version} of model {name}")
            return [(version, states[version])]
        if not states:
            raise st.not_found(f"Could not find any versions of model {name}")
        return sorted(states.items(), reverse=True)
