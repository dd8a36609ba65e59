"""Runs the pipeline locally: LocalDagRunner + Beam's local FnApiRunner (or any Beam runner's args)."""
from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Sequence

import absl.logging
from tfx import v1 as tfx

from tfx_pipeline.layout import Layout
from tfx_pipeline.pipeline import DEFAULT_BEAM_ARGS, create_pipeline, with_setup_file


class _ComponentProgress(logging.Filter):
    """Turns the runner's INFO lines about components into short progress lines, drops the rest."""

    _KEEP = ("Component %s is running.", "Component %s is finished.", "A cached execution %d is used.")

    def __init__(self) -> None:
        super().__init__()
        self._start = time.time()
        self._since: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        if record.msg not in self._KEEP:
            return False
        now = time.time()
        if record.msg.endswith("is running."):
            self._since[record.args[0]] = now
            print(f"[pipeline {now - self._start:6.0f}s] {record.args[0]} running", flush=True)
        elif record.msg.endswith("is finished."):
            took = now - self._since.get(record.args[0], now)
            print(f"[pipeline {now - self._start:6.0f}s] {record.args[0]} finished in {took:.0f}s", flush=True)
        else:
            print(f"[pipeline {now - self._start:6.0f}s]   cache hit: reusing execution {record.args[0]}", flush=True)
        return False


@contextlib.contextmanager
def component_progress():
    """Prints the runner's component lines (``_ComponentProgress``) while the block runs.

    The runner logs them at INFO through absl. Its verbosity is set through absl's flag, not on the
    logger: TensorFlow's SavedModel writer sets the flag to FATAL and back to the flag's value around
    every save, which put a logger-level INFO back to the flag's default (WARNING) at the first
    exported model, and every later component ran without a line.
    """
    absl_logger = logging.getLogger("absl")
    before = absl.logging.get_verbosity()
    absl.logging.set_verbosity(absl.logging.INFO)
    progress = _ComponentProgress()
    absl_logger.addFilter(progress)
    try:
        yield progress
    finally:
        absl_logger.removeFilter(progress)
        absl.logging.set_verbosity(before)


def run(layout: Layout, *, dataset: str, data_path: str = "", fingerprint: str = "",
        beam_pipeline_args: Sequence[str] = DEFAULT_BEAM_ARGS, **pipeline_kwargs) -> None:
    layout.makedirs()
    pipeline = create_pipeline(
        pipeline_name=layout.pipeline_name,
        pipeline_root=os.path.abspath(layout.pipeline_root),
        metadata_path=os.path.abspath(layout.metadata_path),
        serving_dir=os.path.abspath(layout.serving_dir),
        dataset=dataset, data_path=data_path, fingerprint=fingerprint,
        beam_pipeline_args=with_setup_file(beam_pipeline_args), **pipeline_kwargs)
    with component_progress():
        tfx.orchestration.LocalDagRunner().run(pipeline)
