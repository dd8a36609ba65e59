"""Artifact I/O off this disk: the helpers, trainer artifacts, a ScaNN SavedModel and Beam components on ``ram://``.

``ram://`` is TensorFlow's in-memory filesystem: nothing of it is on the local disk, and a
path on it goes through exactly the calls a ``gs://`` path does (``tf.io.gfile``, TF's
SavedModel and checkpoint I/O, ``tf.data``). Beam has no ``ram://`` filesystem, so
``beam_ram_fs`` (beside this file) registers one that forwards to ``tf.io.gfile``: the
components' Beam reads and writes and their own ``tf.io.gfile`` calls then meet in the same
in-memory files (in-process DirectRunner). A component that still used ``open``/``os.path``
on an artifact would fail here (``ram://...`` is no local path).
"""
import importlib.util
import json
import os
import sys
import types
import uuid

import numpy as np
import pytest
import tensorflow as tf

from recsys import features as F
from transform import fileio
from tfx_pipeline.pipeline import DEFAULT_BEAM_ARGS, with_setup_file

if "_beam_ram_fs" not in sys.modules:  # one module object per session: Beam refuses two filesystems for a scheme
    _spec = importlib.util.spec_from_file_location("_beam_ram_fs", os.path.join(os.path.dirname(__file__),
                                                                                "beam_ram_fs.py"))
    sys.modules["_beam_ram_fs"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["_beam_ram_fs"])  # registers the Beam filesystem for ram://
beam_ram_fs = sys.modules["_beam_ram_fs"]

BEAM_ARGS = with_setup_file(DEFAULT_BEAM_ARGS)  # no TFX sdist per executor


@pytest.fixture
def ram_root():
    root = f"ram://recsys-test-{uuid.uuid4().hex[:8]}"
    yield root
    # frees the memory; TF's ram:// lists by name prefix (``assets`` also lists ``assets.extra``'s files as
    # ``.extra/...``), so rmtree and some listed names fail: remove what can be removed
    for directory, _, files in list(tf.io.gfile.walk(root)):
        for name in files:
            try:
                tf.io.gfile.remove(os.path.join(directory, name))
            except tf.errors.NotFoundError:
                pass


def _roots(ram_root, tmp_path):
    return [ram_root, str(tmp_path / "local")]


# --- the helpers -----------------------------------------------------------------------------------


def test_helpers_do_the_same_on_ram_and_on_disk(ram_root, tmp_path):
    obj = {"b": [1, 2.5, "x"], "a": {"nested": None}}
    arrays = {"ids": np.array(["i1", "i2"]), "vectors": np.arange(6, dtype=np.float32).reshape(2, 3)}
    for root in _roots(ram_root, tmp_path):
        assert not fileio.exists(root)
        fileio.makedirs(os.path.join(root, "a", "b"))
        assert fileio.isdir(os.path.join(root, "a")) and fileio.listdir(root) == ["a"]
        fileio.write_json(os.path.join(root, "a", "m.json"), {"a longer object": list(range(50))})
        fileio.write_json(os.path.join(root, "a", "m.json"), obj, indent=1, sort_keys=True)  # replaces it
        fileio.write_text(os.path.join(root, "a", "b", "t.txt"), "leave_one_out\n")
        fileio.save_npz(os.path.join(root, "a", "b", "v.npz"), **arrays)
        assert fileio.read_json(os.path.join(root, "a", "m.json")) == obj
        assert fileio.read_bytes(os.path.join(root, "a", "m.json")) == json.dumps(obj, indent=1, sort_keys=True).encode()
        assert fileio.read_text(os.path.join(root, "a", "b", "t.txt")) == "leave_one_out\n"
        got = fileio.load_npz(os.path.join(root, "a", "b", "v.npz"))
        assert sorted(got) == ["ids", "vectors"] and all(np.array_equal(got[k], arrays[k]) for k in arrays)
        assert fileio.glob(os.path.join(root, "a", "b", "*")) == [os.path.join(root, "a", "b", n) for n in ("t.txt", "v.npz")]
        assert fileio.glob(os.path.join(root, "missing", "*")) == []
        fileio.copytree(os.path.join(root, "a"), os.path.join(root, "copy"))
        fileio.copy(os.path.join(root, "a", "m.json"), os.path.join(root, "copy", "m2.json"))
        assert sorted(fileio.listdir(os.path.join(root, "copy"))) == ["b", "m.json", "m2.json"]
        assert fileio.read_bytes(os.path.join(root, "copy", "b", "v.npz")) == fileio.read_bytes(
            os.path.join(root, "a", "b", "v.npz"))
        assert fileio.is_local(root) == (root != ram_root)
    # the same bytes on both filesystems
    local, ram = str(tmp_path / "local"), ram_root
    for rel in ("a/m.json", "a/b/t.txt", "a/b/v.npz"):
        assert fileio.read_bytes(os.path.join(local, rel)) == fileio.read_bytes(os.path.join(ram, rel))


def test_a_local_json_is_what_json_dump_wrote(tmp_path):
    obj = {"x": 1.5, "y": ["é", 2]}
    with open(tmp_path / "old.json", "w") as f:
        json.dump(obj, f, indent=1)
    fileio.write_json(str(tmp_path / "new.json"), obj, indent=1)
    assert (tmp_path / "old.json").read_bytes() == (tmp_path / "new.json").read_bytes()


# --- trainer artifacts -----------------------------------------------------------------------------


def test_trainer_artifacts_round_trip_on_ram(ram_root):
    from trainer import graph as G
    from trainer.semantic_id_trainer import content_space_paths, save_content
    from trainer.semantic_ids import SemanticIdTable
    from transform.examples_io import ContentRows

    model_dir = os.path.join(ram_root, "model")
    table = SemanticIdTable(["a", "b", "c"], np.array([[0, 1], [1, 0], [1, 1]]))
    table.save(os.path.join(model_dir, "Format-Serving", "assets.extra", "semantic_ids.tsv"))
    rows = ContentRows(np.array(["a", "b", "c"], dtype=object), np.array(["", "x", "y"], dtype=object),
                       np.eye(3, dtype=np.float32))
    save_content(rows, os.path.join(model_dir, "content_embeddings.npz"))
    tsv, npz = content_space_paths(os.path.join(model_dir, "Format-Serving"))
    assert SemanticIdTable.load(tsv).id_of("c") == table.id_of("c")
    assert np.array_equal(fileio.load_npz(npz)["vectors"], rows.vectors)

    config = G.GraphConfig()
    result = types.SimpleNamespace(
        model=types.SimpleNamespace(semantic=False), users=np.ones((2, config.embedding_dim)),
        items=np.zeros((3, config.embedding_dim)), best_epoch=1, best_val={"NDCG@10": 0.1}, log=[],
        seconds_per_epoch=0.5, wall_s=1.0, session_weight=0.3, session_val=None,
        query_items=np.full((3, config.embedding_dim), 0.5), query_self_weight=0.5)
    graph = types.SimpleNamespace(user_ids=np.array(["u1", "u2"], dtype=object), item_ids=np.array(["a", "b", "c"], dtype=object))
    trained = G.save_trained(result, graph, config, os.path.join(ram_root, "graph", "Format-Serving"))
    assert trained.user_ids.tolist() == ["u1", "u2"] and trained.item_vectors.shape == (3, config.embedding_dim)
    assert trained.session_weight == 0.3 and trained.info["query_self_weight"] == 0.5
    assert np.array_equal(trained.query_vectors, np.full((3, config.embedding_dim), 0.5, np.float32))


def test_a_scann_savedmodel_saves_loads_and_warms_up_on_ram(ram_root):
    import scann  # noqa: F401  (registers the ScaNN ops)

    from export.retrieval import ScannParams, scann_layer
    from export.twins import save
    from trainer.warmup import read_warmup, write_warmup

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(64, 8)).astype(np.float32)
    ids = np.array([f"i{i}" for i in range(64)], dtype=object)
    layer = scann_layer(emb, ids, 5, ScannParams(4, 4, 64))

    class Module(tf.Module):
        def __init__(self):
            super().__init__()
            self.scann = layer

        @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32)])
        def search(self, query):
            scores, found = self.scann(query)
            return {"scores": scores, "ids": found}

        def signatures(self):
            return {"serving_default": self.search}

    module = Module()
    query = tf.constant(rng.normal(size=(3, 8)).astype(np.float32))
    want = module.search(query)
    export_dir = os.path.join(ram_root, "scann", "Format-Serving")
    save(module, export_dir)
    write_warmup(export_dir, "retrieval", [("serving_default", {"query": query.numpy()})])
    assert not os.path.exists(export_dir)  # nothing on the local disk
    loaded = tf.saved_model.load(export_dir).signatures["serving_default"]
    got = loaded(query=query)
    assert got["ids"].numpy().tolist() == want["ids"].numpy().tolist()
    np.testing.assert_allclose(got["scores"].numpy(), want["scores"].numpy(), rtol=1e-6)
    assert [(m, s) for m, s, _ in read_warmup(export_dir)] == [("retrieval", "serving_default")]


# --- Beam components -------------------------------------------------------------------------------


def _execute(component, inputs: dict, outputs: dict, exec_properties: dict):
    """Runs a component's executor the way TFX's launcher does (``Do`` with artifacts and properties)."""
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor

    context = BaseBeamExecutor.Context(beam_pipeline_args=BEAM_ARGS)
    component.EXECUTOR_SPEC.executor_class(context).Do(inputs, outputs, exec_properties)


def _examples(uri: str):
    from tfx.types import standard_artifacts

    artifact = standard_artifacts.Examples()
    artifact.uri = uri
    return artifact


def _records(uri: str, split: str) -> list[bytes]:
    files = fileio.glob(os.path.join(uri, f"Split-{split}", "*"))
    assert files, f"no files in {uri} split {split}"
    # tf.Example's features are a proto map, serialized in no fixed order: compare deterministic re-serializations
    return sorted(tf.train.Example.FromString(r).SerializeToString(deterministic=True)
                  for r in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())


SYNTHETIC = {"dataset": "synthetic", "options_json": json.dumps({"n_users": 40, "n_items": 60, "n_events": 1500}),
             "max_history": 50, "max_users": 0, "data_path": "", "fingerprint": "", "code_version": 1}


def test_beam_components_read_and_write_their_artifacts_on_ram(ram_root, tmp_path):
    """SequenceExampleGen → RankingWindow → GraphBuilder with every artifact on ram://, against the same on disk."""
    from tfx_pipeline.components.example_gen import SequenceExampleGen
    from tfx_pipeline.components.graph_builder import GraphBuilder
    from tfx_pipeline.components.ranking_window import RankingWindow
    from transform import examples_io
    from transform import graph as TG
    from transform import ranking_window as RW

    runs = {}
    for root in _roots(ram_root, tmp_path):
        examples, window, graph = (_examples(os.path.join(root, name)) for name in ("examples", "window", "graph"))
        _execute(SequenceExampleGen, {}, {"examples": [examples]}, SYNTHETIC)
        examples.set_string_custom_property("protocol", examples.get_string_custom_property("protocol"))
        _execute(RankingWindow, {"examples": [examples]}, {"window_examples": [window]},
                 {"window": 2, "code_version": 1})
        _execute(GraphBuilder, {"examples": [examples]}, {"graph": [graph]}, {"neighbours": 5, "half_life": 10.0})
        runs[root] = (examples.uri, window.uri, graph.uri)
    (ram_ex, ram_win, ram_graph), (disk_ex, disk_win, disk_graph) = runs[ram_root], runs[str(tmp_path / "local")]
    assert not os.path.exists(ram_ex)
    for split in F.ALL_SPLITS:
        assert _records(ram_ex, split) == _records(disk_ex, split)
    for split in (F.TRAIN, RW.WINDOW) + tuple(s for s in F.ALL_SPLITS if s != F.TRAIN):
        assert _records(ram_win, split) == _records(disk_win, split)
    for split in F.GRAPH_SPLITS:
        assert _records(ram_graph, split) == _records(disk_graph, split)
    for rel in ("examples/load_report.txt", "examples/protocol.txt", "window/protocol.txt"):
        assert fileio.read_bytes(os.path.join(ram_root, rel)) == fileio.read_bytes(str(tmp_path / "local" / rel))
    ram_stats = fileio.read_json(os.path.join(ram_graph, TG.STATS_FILE))
    disk_stats = fileio.read_json(os.path.join(disk_graph, TG.STATS_FILE))
    assert {k: v for k, v in ram_stats.items() if k != "elapsed_s"} == {
        k: v for k, v in disk_stats.items() if k != "elapsed_s"}
    # the numpy-side readers every trainer uses
    def rows(uri):
        r = examples_io.read_rows(uri, F.EVAL)
        return sorted(zip(r.user_ids, map(tuple, r.histories), map(tuple, r.targets), r.target_timestamps.tolist()))

    assert rows(ram_ex) == rows(disk_ex) and len(rows(ram_ex)) > 0
    assert examples_io.latest_histories(ram_win) == examples_io.latest_histories(disk_win)
