"""Runs the pipeline locally: LocalDagRunner + Beam's DirectRunner (or any Beam runner's args)."""
from __future__ import annotations

import logging
import os
from typing import Sequence

from tfx import v1 as tfx

from tfx_pipeline.layout import Layout
from tfx_pipeline.pipeline import DEFAULT_BEAM_ARGS, create_pipeline


def run(layout: Layout, *, dataset: str, data_path: str = "", fingerprint: str = "",
        beam_pipeline_args: Sequence[str] = DEFAULT_BEAM_ARGS, **pipeline_kwargs) -> None:
    layout.makedirs()
    logging.getLogger("absl").setLevel(logging.WARNING)
    pipeline = create_pipeline(
        pipeline_name=layout.pipeline_name,
        pipeline_root=os.path.abspath(layout.pipeline_root),
        metadata_path=os.path.abspath(layout.metadata_path),
        serving_dir=os.path.abspath(layout.serving_dir),
        dataset=dataset, data_path=data_path, fingerprint=fingerprint,
        beam_pipeline_args=beam_pipeline_args, **pipeline_kwargs)
    tfx.orchestration.LocalDagRunner().run(pipeline)
