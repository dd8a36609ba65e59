"""The TFX pipeline end to end on a real MovieLens-100K slice (first 40 users)."""
import glob
import json
import os

import pytest

from recsys import features as F

pytestmark = pytest.mark.integration



def test_example_gen_writes_every_split_and_the_protocol(ml_slice, latest):
    layout, _ = ml_slice
    examples = latest(os.path.join(layout.pipeline_root, "SequenceExampleGen", "examples", "*"))
    for split in F.ALL_SPLITS:
        assert glob.glob(os.path.join(examples, f"Split-{split}", "*.gz")), split
    assert open(os.path.join(examples, "protocol.txt")).read().strip() == "leave_one_out"

    from transform import examples_io

    test_rows = examples_io.read_rows(examples, F.TEST)
    eval_rows = examples_io.read_rows(examples, F.EVAL)
    # every MovieLens user has >= 20 ratings, so each of the 40 users has one eval and one test row
    assert len(test_rows.user_ids) == len(eval_rows.user_ids) == 40
    assert len(examples_io.read_catalog(examples).item_ids) == 1682
    for u, h, t in zip(test_rows.user_ids, test_rows.histories, test_rows.targets):
        i = eval_rows.user_ids.index(u)
        assert h == eval_rows.histories[i] + eval_rows.targets[i]  # test history = eval history + eval target


def test_transform_vocabularies_and_schema(ml_slice, latest):
    layout, _ = ml_slice
    from trainer import base

    vocab = base.load_vocabularies(latest(os.path.join(layout.pipeline_root, "Transform", "transform_graph", "*")))
    assert 0 < vocab.num_items <= 1682
    assert len(vocab.users) == 40
    # popularity = number of times an item is a training target, counted from the raw rows
    from collections import Counter

    from transform import examples_io

    examples = latest(os.path.join(layout.pipeline_root, "SequenceExampleGen", "examples", "*"))
    expected = Counter(t for ts in examples_io.read_rows(examples, F.TRAIN).targets for t in ts)
    assert vocab.item_counts == dict(expected)
    schema = latest(os.path.join(layout.pipeline_root, "SchemaGen", "schema", "*", "schema.pbtxt"))
    text = open(schema).read()
    for feature in F.SEQUENCE_FEATURES:
        assert f'name: "{feature.name}"' in text


def test_evaluator_table_and_gate(ml_slice, latest):
    layout, _ = ml_slice
    ev = latest(os.path.join(layout.pipeline_root, "RetrievalEvaluator", "evaluation", "*"))
    metrics = json.load(open(os.path.join(ev, "metrics.json")))
    for split in ("validation", "test"):
        models = metrics[split]["models"]
        assert set(models) == {"popularity", "item_cf", "two_tower", "two_tower_scann"}
        for m in models.values():
            assert set(m) == {"HR@10", "Recall@10", "NDCG@10", "coverage@10", "entropy@10"}
            assert 0.0 <= m["HR@10"] <= 1.0 and 0.0 < m["coverage@10"] <= 1.0
    blessing = latest(os.path.join(layout.pipeline_root, "RetrievalEvaluator", "blessing", "*"))
    assert os.path.exists(os.path.join(blessing, "BLESSED"))


def test_scann_index_reaches_target_recall(ml_slice, latest):
    layout, _ = ml_slice
    report = json.load(open(latest(os.path.join(layout.pipeline_root, "IndexBuilder", "scann_model", "*",
                                              "index_report.json"))))
    assert report["scann"]["recall@10_vs_brute_force"] >= 0.95
    assert report["catalog_items"] == 1682


def test_both_models_pushed_with_warmup(ml_slice):
    layout, _ = ml_slice
    for name in ("retrieval", "retrieval_bruteforce"):
        versions = [d for d in os.listdir(os.path.join(layout.serving_dir, name)) if d.isdigit()]
        assert len(versions) == 1
        v = os.path.join(layout.serving_dir, name, versions[0])
        assert os.path.exists(os.path.join(v, "saved_model.pb"))
        assert os.path.getsize(os.path.join(v, "assets.extra", "tf_serving_warmup_requests")) > 0


def test_rerun_with_unchanged_inputs_is_served_from_cache(ml_slice):
    layout, kwargs = ml_slice
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from tfx_pipeline import local_runner

    def executions():
        cfg = metadata_store_pb2.ConnectionConfig()
        cfg.sqlite.filename_uri = layout.metadata_path
        return metadata_store.MetadataStore(cfg).get_executions()

    before = {e.id for e in executions()}
    local_runner.run(layout, **kwargs)
    new = [e for e in executions() if e.id not in before]
    assert new, "the second run recorded no executions"
    states = {e.last_known_state for e in new}
    assert states == {metadata_store_pb2.Execution.CACHED}, states
