"""The pipeline's spine with its root and serving directory on ``ram://``: nothing of it on the local disk.

SequenceExampleGen (MovieLens events read in Beam) → StatisticsGen → SchemaGen → ExampleValidator →
Transform (tf.Transform on Beam) → Trainer (two-tower) → IndexBuilder (ScaNN) → RetrievalEvaluator →
Pushers, on the first 40 MovieLens users, with TFX's LocalDagRunner; only ML Metadata's SQLite file
is local (the launcher's). The gate is opened (``min_lift=-1``: any NDCG above 0) so that the Pushers
copy both models to the ``ram://`` serving directory, and the pushed models answer their warm-up
requests from there.

Stand-ins for what a cloud filesystem does and TF's ``ram://`` does not, all in
``tests/tfx_pipeline/beam_ram_fs.py``: a Beam filesystem for ``ram://`` (Beam has none); directory
rename (``ram://`` renames only a directory's own entry; tf.Transform renames directories, as GCS
does); exact listings (``ram://`` lists by name prefix: ``assets`` also lists ``assets.extra``'s
files, which TFX's Pusher then fails to copy).
About 3 minutes on this 2-core machine.
"""
import importlib.util
import os
import sys
import uuid

import pytest
import tensorflow as tf

from tfx_pipeline.pipeline import DEFAULT_BEAM_ARGS, with_setup_file

pytestmark = pytest.mark.integration


def _ram_fs():
    """The test-only Beam filesystem for ram://, loaded once per session under the name the unit tests
    use too (Beam refuses two filesystems for one scheme)."""
    if "_beam_ram_fs" not in sys.modules:
        path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "tfx_pipeline", "beam_ram_fs.py")
        spec = importlib.util.spec_from_file_location("_beam_ram_fs", path)
        sys.modules["_beam_ram_fs"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["_beam_ram_fs"])  # registers Beam's ram:// filesystem
    return sys.modules["_beam_ram_fs"]


def test_the_pipeline_spine_runs_with_its_root_on_ram(tmp_path, monkeypatch):
    from tfx import v1 as tfx

    from recsys import names as N
    from tfx_pipeline.artifacts import latest_version_dir
    from tfx_pipeline.pipeline import create_pipeline
    from transform import fileio
    from trainer.warmup import read_warmup

    ram_fs = _ram_fs()
    ram_fs.fix_ram_trees(monkeypatch)
    root = f"ram://recsys-pipeline-{uuid.uuid4().hex[:8]}"
    serving = os.path.join(root, "serving")
    pipeline = create_pipeline(
        pipeline_name="off-disk", pipeline_root=os.path.join(root, "pipelines"),
        metadata_path=str(tmp_path / "metadata.sqlite"), serving_dir=serving, dataset="movielens-100k",
        max_users=40, two_tower={"epochs": 1, "batch_size": 256}, min_lift=-1.0, semantic_ids=False,
        dual_head=False, sequential=False, graph=False, ranking=False, enable_cache=False,
        beam_pipeline_args=with_setup_file(DEFAULT_BEAM_ARGS))
    tfx.orchestration.LocalDagRunner().run(pipeline)

    assert sorted(os.listdir(tmp_path)) == ["metadata.sqlite"]
    assert not os.path.exists(root)
    metrics = fileio.glob(os.path.join(root, "pipelines", "RetrievalEvaluator", "evaluation", "*", "metrics.json"))
    assert len(metrics) == 1 and "two_tower" in fileio.read_json(metrics[0])["test"]["models"]
    for name in (N.RETRIEVAL, N.RETRIEVAL_BRUTE_FORCE):
        version = latest_version_dir(os.path.join(serving, name))
        model = tf.saved_model.load(version)
        (model_name, signature, inputs), *_ = read_warmup(version)
        assert model_name == name
        out = model.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        assert out[N.ITEM_IDS].shape[-1] > 0
