"""The pipeline compiled for Kubeflow Pipelines / Vertex (TFX's Kubeflow V2 runner): no cluster, a spec we check."""
from __future__ import annotations

import ast
import importlib
import json
import os
import re

import pytest
from google.protobuf import json_format

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE = "registry.example.com/recsys-pipeline:test"
LAUNCHER = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, slice_kwargs):
    """(pipeline object, spec dict) of the same create_pipeline(...) the integration slice runs."""
    from tfx_pipeline.kubeflow_v2_runner import compile_pipeline
    from tfx_pipeline.pipeline import create_pipeline

    out = tmp_path_factory.mktemp("kfp") / "pipeline.json"
    kwargs = dict(pipeline_root="gs://bucket/recsys/root", serving_dir="gs://bucket/recsys/serving", **slice_kwargs)
    spec = compile_pipeline(str(out), image=IMAGE, pipeline_name="recsys-slice", **kwargs)
    pipeline = create_pipeline(pipeline_name="recsys-slice", metadata_path="unused.sqlite", **kwargs)
    return pipeline, spec


def test_the_spec_is_a_valid_kfp_pipeline_spec_with_every_component(compiled):
    from kfp.pipeline_spec import pipeline_spec_pb2

    pipeline, spec = compiled
    parsed = json_format.ParseDict(spec["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())  # unknown fields fail
    assert parsed.pipeline_info.name == "recsys-slice"
    assert spec["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/recsys/root"
    ids = {c.id for c in pipeline.components}
    assert len(ids) == len(pipeline.components) > 30  # the whole pipeline: all four spaces and the ranker
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    assert set(tasks) == ids
    assert set(spec["pipelineSpec"]["deploymentSpec"]["executors"]) == {f"{i}_executor" for i in ids}
    for c in pipeline.components:  # the same graph: every task waits for exactly its upstream components
        assert set(tasks[c.id].get("dependentTasks", [])) == {u.id for u in c.upstream_nodes}, c.id


def test_every_component_runs_in_the_image_with_tfx_launcher_and_resolvable_code(compiled):
    pipeline, spec = compiled
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == IMAGE and container["command"] == LAUNCHER, name
        args = container["args"]
        path = args[args.index("--executor_class_path") + 1]
        module, cls = path.rsplit(".", 1)
        assert hasattr(importlib.import_module(module), cls), path  # the image's code defines it
    # user code the executors load by name: the Trainers' run_fn and Transform's preprocessing_fn
    params = json.dumps(spec["pipelineSpec"]["root"]["dag"]["tasks"])
    for fn in set(re.findall(r'\\"((?:trainer|transform)\.[\w.]+_fn)\\"', params)):
        module, attr = fn.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), attr)), fn
    assert "trainer.two_tower.run_fn" in params


def test_the_trainer_keeps_its_custom_config_and_beam_components_their_arguments(compiled, slice_kwargs):
    _, spec = compiled
    trainer = spec["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]
    config = json.loads(trainer["inputs"]["parameters"]["custom_config"]["runtimeValue"]["constantValue"]["stringValue"])
    assert config["two_tower"]["epochs"] == slice_kwargs["two_tower"]["epochs"]
    transform = spec["pipelineSpec"]["deploymentSpec"]["executors"]["Transform_executor"]["container"]["args"]
    assert "--direct_running_mode=in_memory" in transform  # the pipeline's Beam arguments reach its Beam components


def test_the_image_is_defined_in_the_repository_with_the_pinned_set_and_every_package():
    with open(os.path.join(ROOT, "deploy", "Dockerfile"), encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    assert lines[0].startswith("FROM python:3.10")  # setup.py: python_requires >=3.10,<3.11
    text = "\n".join(lines)
    assert "pip install -r requirements.txt -c constraints.txt" in text
    copied = {part for line in lines if line.startswith("COPY ") for part in line.split()[1:-1]}
    for needed in ("requirements.txt", "constraints.txt", "requirements-data.txt", "setup.py"):
        assert needed in copied and os.path.exists(os.path.join(ROOT, needed))
    with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    (packages,) = [ast.literal_eval(n.value) for n in tree.body
                   if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PACKAGES"]
    assert set(packages) <= copied  # every package setup.py installs is in the image
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as f:
        assert re.search(r"^kfp-pipeline-spec==", f.read(), re.M)  # the launcher in the image imports it
