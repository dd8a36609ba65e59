"""Compiles the pipeline for Kubeflow Pipelines / Vertex AI Pipelines: TFX's Kubeflow V2 runner.

The same ``create_pipeline`` as the local run, written as a KFP v2 pipeline spec (JSON) that
Kubeflow Pipelines or Vertex AI runs; no cluster is needed to compile it. Every component runs in
``image``, the container built from ``deploy/Dockerfile``. On a cluster the pipeline root, the
serving directory and the input data live on a shared filesystem (e.g. ``gs://``), and Beam
arguments select the runner the Beam components use (e.g. ``--runner=DataflowRunner ...``).

    python -m tfx_pipeline.kubeflow_v2_runner --image <registry>/recsys-pipeline:<tag> \\
        --pipeline-root gs://<bucket>/root --serving-dir gs://<bucket>/serving --output pipeline.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Sequence

import recsys  # noqa: F401  (legacy Keras before TensorFlow loads)

#: the image name the spec uses when none is given: build it with deploy/Dockerfile and push it
DEFAULT_IMAGE = "recsys-pipeline:latest"


def compile_pipeline(output_path: str, *, image: str = DEFAULT_IMAGE, pipeline_name: str = "recsys",
                     pipeline_root: str, serving_dir: str, dataset: str = "movielens-100k",
                     beam_pipeline_args: Sequence[str] = (), **pipeline_kwargs) -> dict:
    """Writes the KFP v2 pipeline spec of ``create_pipeline(...)`` to ``output_path``; returns it as a dict."""
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kubeflow_v2

    from tfx_pipeline.pipeline import DEFAULT_BEAM_ARGS, create_pipeline

    pipeline = create_pipeline(
        pipeline_name=pipeline_name, pipeline_root=pipeline_root, serving_dir=serving_dir, dataset=dataset,
        # ML Metadata is the orchestrator's on Kubeflow/Vertex: the runner ignores this local connection
        # (only its directory is created, so it must be local even when the root is gs://)
        metadata_path=os.path.join(tempfile.gettempdir(), "unused-metadata.sqlite"),
        beam_pipeline_args=list(beam_pipeline_args or DEFAULT_BEAM_ARGS), **pipeline_kwargs)
    runner = kubeflow_v2.KubeflowV2DagRunner(
        config=kubeflow_v2.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(os.path.abspath(output_path)), output_filename=os.path.basename(output_path))
    runner.run(pipeline, write_out=True)
    with open(output_path, encoding="utf-8") as f:
        return json.load(f)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", default=DEFAULT_IMAGE, help="the pipeline image (deploy/Dockerfile)")
    p.add_argument("--pipeline-root", required=True)
    p.add_argument("--serving-dir", required=True, help="where the Pushers push (TF Serving's model base paths)")
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--name", default="recsys")
    p.add_argument("--output", default="pipeline.json")
    args, beam_args = p.parse_known_args(argv)
    spec = compile_pipeline(args.output, image=args.image, pipeline_name=args.name, pipeline_root=args.pipeline_root,
                            serving_dir=args.serving_dir, dataset=args.dataset, beam_pipeline_args=beam_args)
    print(f"wrote {args.output}: {len(spec['pipelineSpec']['root']['dag']['tasks'])} components, image {args.image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
