"""Our Beam transforms on Beam 2.74's Dask runner, against the in-memory runner, on real MovieLens-100K users.

One local ``dask.distributed`` cluster per module (2 worker processes, 1 thread each), the pipelines
given ``--runner=apache_beam.runners.dask.dask_runner.DaskRunner --dask_client_address=<scheduler>``
(Beam 2.74 knows no ``DaskRunner`` short name). Each transform runs on the first ``USERS`` MovieLens
users (the ``recbole`` wheel's files, built into events as ``SequenceExampleGen`` does) once on
``DEFAULT_BEAM_ARGS`` and once on the cluster, and every output is compared exactly (tf.Examples as
deterministic re-serialisations, in no order: the transforms define none).

Beam 2.74's Dask runner translates four primitives (``Create``, ``ParDo``, ``GroupByKey``, ``Flatten``)
and gets several others wrong; the tests below pin what it does to our transforms, so that each fails
when Beam changes it (see docs/scale.md, "Beam's Dask runner"):

* a multi-output ``ParDo`` (``with_outputs``) hands **every** output all elements of all outputs
  (the runner keys its Dask bags by producing transform, not by output tag);
* outputs a ``DoFn`` emits in ``finish_bundle`` are dropped (the bundle's results are taken before
  ``finish_bundle`` runs): ``BatchElements`` loses each partition's last batch, ``Top`` returns
  nothing, and every file sink (``WriteToTFRecord``: its writers report their files in ``finish_bundle``)
  writes one empty shard and leaves the records in ``beam-temp-*`` directories, without an error;
* ``Read`` (every file source: ours, ``ReadFromText``, ``ReadFromTFRecord``) is translated to nothing and
  the pipeline fails when it is built; stateful ``DoFn`` s fail (no state context);
* only the pipeline's **last** leaf is computed: other sinks silently never run. Every pipeline here
  therefore ends in one sink that all outputs flow into.
"""
from __future__ import annotations

import os
import pickle

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions

from recsys import features as F
from benchmarks import dask_runner as bench
from tfx_pipeline.pipeline import DEFAULT_BEAM_ARGS
from transform import graph as G
from transform import ranking_window as RW
from transform import sequences

DASK_RUNNER = bench.DASK_RUNNER
USERS = 50  # the first MovieLens users by id: 4,707 events, 50 interaction groups (< one BatchElements batch)


@pytest.fixture(scope="module")
def dask_args():
    """The Beam arguments for a local cluster of 2 single-threaded worker processes (closed after the module)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        # --dask_npartitions: Beam's default of 128 elements per partition makes thousands of Dask tasks of a
        # GroupByKey's shuffle (30 s instead of 5 s for BuildSequenceRows here); one partition per worker
        yield [f"--runner={DASK_RUNNER}", f"--dask_client_address={cluster.scheduler_address}",
               "--dask_npartitions=2"]
        _close_clients()


def _close_clients():
    """Closes the clients the runner opened and never closed (it opens one per pipeline, also when the
    pipeline then fails to build), so that none tries to reconnect to the closed cluster."""
    import distributed

    for _ in range(1000):
        try:
            client = distributed.default_client()
        except ValueError:  # no client left
            return
        client.close()


@pytest.fixture(scope="module")
def movielens():
    """(events as ``(user, Event)``, item → category, item ids, protocol) of the first ``USERS`` users."""
    return bench.movielens(USERS)


def run(build, args, path) -> dict[str, list]:
    """``benchmarks.dask_runner.run`` (every output into one last sink), outputs in the order written."""
    return bench.run(build, args, path, sort=False)


def canon(records) -> list[bytes]:
    """Serialized tf.Examples as sorted deterministic re-serialisations (a proto map has no fixed order)."""
    return sorted(tf.train.Example.FromString(r).SerializeToString(deterministic=True) for r in records)


def both(build, dask_args, tmp_path) -> tuple[dict, dict]:
    """(in-memory outputs, Dask outputs) of the same pipeline, each canonicalised."""
    mem = run(build, DEFAULT_BEAM_ARGS, tmp_path / "memory.pkl")
    dask = run(build, dask_args, tmp_path / "dask.pkl")
    return ({k: canon(v) for k, v in mem.items()}, {k: canon(v) for k, v in dask.items()})


@pytest.fixture(scope="module")
def train_rows(movielens, tmp_path_factory):
    """The slice's training rows (in-memory runner)."""
    records, category, _, protocol = movielens
    return run(lambda p: p | beam.Create(records, reshuffle=False)
               | sequences.BuildSequenceRows(category, protocol, 50),
               DEFAULT_BEAM_ARGS, tmp_path_factory.mktemp("rows") / "rows.pkl")


# --- our transforms ------------------------------------------------------------------------------------


def test_graph_edges_are_the_same_and_its_neighbours_are_lost(movielens, train_rows, dask_args, tmp_path):
    """BuildGraph: the edges (Map, GroupByKey, FlatMap) are the in-memory runner's, exactly. The item neighbours
    are not: ``BatchElements`` keeps the groups of each bundle that do not fill a batch (here all 50: fewer than
    ``group_batch=512``) for ``finish_bundle``, whose outputs the Dask runner drops, so no neighbour row is left.
    (No batch size helps: Beam 2.74's ``BatchElements`` always emits a bundle's last batch in ``finish_bundle``.)"""
    _, _, item_ids, protocol = movielens

    def build(p):
        out = p | beam.Create(train_rows[F.TRAIN], reshuffle=False) | G.BuildGraph(item_ids, protocol)
        return {F.EDGES: out[F.EDGES], F.ITEM_NEIGHBOURS: out[F.ITEM_NEIGHBOURS]}

    mem, dask = both(build, dask_args, tmp_path)
    assert len(mem[F.EDGES]) > 1000 and dask[F.EDGES] == mem[F.EDGES]
    assert len(mem[F.ITEM_NEIGHBOURS]) > 500
    assert dask[F.ITEM_NEIGHBOURS] == []


def test_sequence_rows_every_split_gets_every_split_s_rows(movielens, train_rows, dask_args, tmp_path):
    """BuildSequenceRows' split outputs (``with_outputs``): on Dask each holds the rows of all three splits."""
    records, category, _, protocol = movielens

    def build(p):
        return p | beam.Create(records, reshuffle=False) | sequences.BuildSequenceRows(category, protocol, 50)

    mem, dask = both(build, dask_args, tmp_path)
    assert [len(mem[s]) for s in F.SEQUENCE_SPLITS] == [4557, USERS, USERS]
    everything = sorted(r for s in F.SEQUENCE_SPLITS for r in mem[s])
    assert mem == {s: canon(train_rows[s]) for s in F.SEQUENCE_SPLITS}
    for split in F.SEQUENCE_SPLITS:
        assert dask[split] == everything, split


def test_ranking_window_prefix_and_window_each_get_both(train_rows, dask_args, tmp_path):
    """SplitRankingWindow's ``train``/``window`` outputs (``with_outputs``): on Dask each holds both."""
    def build(p):
        return p | beam.Create(train_rows[F.TRAIN], reshuffle=False) | RW.SplitRankingWindow(window=3)

    mem, dask = both(build, dask_args, tmp_path)
    assert len(mem[RW.WINDOW]) == 3 * USERS
    both_splits = sorted(mem[F.TRAIN] + mem[RW.WINDOW])
    assert both_splits == canon(train_rows[F.TRAIN])
    assert dask == {F.TRAIN: both_splits, RW.WINDOW: both_splits}


# --- what does not run ------------------------------------------------------------------------------------


def test_events_read_in_beam_fail_to_build_on_dask(dask_args, tmp_path):
    """ReadUserEvents (``beam.io.Read`` of our splittable line source): the Dask runner translates ``Read``
    to nothing, and the next ``ParDo`` is applied to no bag when the pipeline is built."""
    from recsys.data import event_lines
    from transform import event_source

    source = event_lines("movielens-100k")
    header = event_source.read_header(source.events_file)

    def build(p):
        read = p | event_source.ReadUserEvents(source, header)
        return {"users": read["users"] | beam.MapTuple(lambda u, rows: (u, len(rows))), "report": read["report"]}

    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'map'"):
        run(build, dask_args, tmp_path / "dask.pkl")


# --- the component executors ------------------------------------------------------------------------------


def _execute(component, inputs: dict, outputs: dict, exec_properties: dict, args):
    """A component's executor as TFX's launcher runs it (``--setup_file``: no TFX sdist per executor)."""
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor

    from tfx_pipeline.pipeline import with_setup_file

    context = BaseBeamExecutor.Context(beam_pipeline_args=with_setup_file(args))
    component.EXECUTOR_SPEC.executor_class(context).Do(inputs, outputs, exec_properties)


def _examples(uri):
    from tfx.types import standard_artifacts

    artifact = standard_artifacts.Examples()
    artifact.uri = str(uri)
    return artifact


EXAMPLE_GEN = {"options_json": "{}", "max_history": 50, "data_path": "", "fingerprint": "", "code_version": 1}
SYNTHETIC = {**EXAMPLE_GEN, "dataset": "synthetic", "max_users": 0,
             "options_json": '{"n_users": 40, "n_items": 60, "n_events": 1500}'}


def _tfrecords(pattern: str) -> list[bytes]:
    files = tf.io.gfile.glob(pattern)
    assert files, pattern
    return list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())


@pytest.fixture(scope="module")
def synthetic_examples(tmp_path_factory):
    """SequenceExampleGen's artifact of a small synthetic dataset (in-memory runner)."""
    from tfx_pipeline.components.example_gen import SequenceExampleGen

    examples = _examples(tmp_path_factory.mktemp("examples"))
    _execute(SequenceExampleGen, {}, {"examples": [examples]}, SYNTHETIC, DEFAULT_BEAM_ARGS)
    return examples


def test_example_gen_fails_on_dask(dask_args, tmp_path):
    """SequenceExampleGen: on MovieLens (events read in Beam) it fails to build (``Read``); on synthetic data
    (events generated in Beam from a ``Create`` of shards) only its last sink, the catalogue, runs (the
    train/eval/test writes and the load report's never do), writes an empty shard, and the executor then fails
    reading the load report the pipeline did not write."""
    from tfx_pipeline.components.example_gen import SequenceExampleGen

    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'map'"):
        _execute(SequenceExampleGen, {}, {"examples": [_examples(tmp_path / "ml")]},
                 {**EXAMPLE_GEN, "dataset": "movielens-100k", "max_users": USERS}, dask_args)
    with pytest.raises(tf.errors.NotFoundError, match="load_report.txt"):
        _execute(SequenceExampleGen, {}, {"examples": [_examples(tmp_path / "syn")]}, SYNTHETIC, dask_args)
    assert sorted(os.listdir(tmp_path / "syn")) == [f"Split-{F.CATALOG}"]
    assert _tfrecords(str(tmp_path / "syn" / f"Split-{F.CATALOG}" / "data_tfrecord-*.gz")) == []


def test_content_embedder_writes_no_embeddings_on_dask(synthetic_examples, dask_args, tmp_path):
    """ContentEmbedder with precomputed vectors (``Create`` → ``Map`` → ``WriteToTFRecord``, one sink): the
    executor succeeds on Dask and its artifact holds no embedding; the records stay in ``beam-temp-*``."""
    import numpy as np

    from tfx_pipeline.components.content_embedder import ContentEmbedder
    from transform import examples_io

    ids = examples_io.read_catalog(synthetic_examples.uri).item_ids.tolist()
    vectors = np.random.default_rng(0).normal(size=(len(ids), 8)).astype(np.float32)
    np.savez(tmp_path / "vectors.npz", item_id=np.array(ids), embedding=vectors)
    written = {}
    for name, args in (("memory", DEFAULT_BEAM_ARGS), ("dask", dask_args)):
        out = _examples(tmp_path / name)
        _execute(ContentEmbedder, {"examples": [synthetic_examples]}, {"embeddings": [out]},
                 {"precomputed_path": str(tmp_path / "vectors.npz")}, args)
        written[name] = _tfrecords(str(tmp_path / name / f"Split-{F.CATALOG}" / "data_tfrecord-*.gz"))
    assert len(written["memory"]) == len(ids) == 60
    assert written["dask"] == []
    assert tf.io.gfile.glob(str(tmp_path / "dask" / f"Split-{F.CATALOG}" / "beam-temp-*" / "*"))


def test_graph_builder_and_statistics_gen_fail_to_build_on_dask(synthetic_examples, dask_args, tmp_path):
    """GraphBuilder reads its input with ``ReadFromTFRecord``, TFX's StatisticsGen (TFDV) through TFXIO's
    Beam source: both are ``Read`` s, translated to nothing, and the pipeline fails when it is built."""
    from tfx.components.statistics_gen.executor import Executor as StatisticsGenExecutor
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
    from tfx.types import standard_artifacts

    from tfx_pipeline.components.graph_builder import GraphBuilder
    from tfx_pipeline.pipeline import with_setup_file

    examples = synthetic_examples
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'map'"):
        _execute(GraphBuilder, {"examples": [examples]}, {"graph": [_examples(tmp_path / "graph")]},
                 {"neighbours": 5, "half_life": 10.0}, dask_args)
    stats = standard_artifacts.ExampleStatistics()
    stats.uri = str(tmp_path / "stats")
    executor = StatisticsGenExecutor(BaseBeamExecutor.Context(beam_pipeline_args=with_setup_file(dask_args)))
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute '__dask_keys__'"):
        executor.Do({"examples": [examples]}, {"statistics": [stats]}, {"exclude_splits": "[]"})


# --- Beam primitives ----------------------------------------------------------------------------------------


class _RunningSum(beam.DoFn):
    """A stateful DoFn: the running sum per key."""

    from apache_beam.transforms.userstate import CombiningValueStateSpec

    TOTAL = CombiningValueStateSpec("total", sum)

    def process(self, kv, total=beam.DoFn.StateParam(TOTAL)):
        total.add(kv[1])
        yield kv[0], total.read()


def _primitives():
    pairs = [(i % 3, i) for i in range(300)]

    def side(p):
        ten = p | "Ten" >> beam.Create([10])
        return p | beam.Create(range(5)) | beam.Map(lambda x, k: x + k, beam.pvalue.AsSingleton(ten))

    # name: (pipeline, in-memory output, Dask output)
    return {
        "GroupByKey": (lambda p: p | beam.Create(pairs) | beam.GroupByKey()
                       | beam.MapTuple(lambda k, v: (k, sorted(v))),
                       [(k, list(range(k, 300, 3))) for k in range(3)], None),
        "CombinePerKey": (lambda p: p | beam.Create(pairs) | beam.CombinePerKey(sum),
                          [(0, 14850), (1, 14950), (2, 15050)], None),
        "CombineGlobally": (lambda p: p | beam.Create(range(300)) | beam.CombineGlobally(sum), [44850], None),
        "Distinct": (lambda p: p | beam.Create([i % 7 for i in range(300)]) | beam.Distinct(), list(range(7)), None),
        "Reshuffle": (lambda p: p | beam.Create(range(5)) | beam.Reshuffle(), list(range(5)), None),
        "AsSingleton side input": (side, [10, 11, 12, 13, 14], None),
        # outputs of finish_bundle are dropped: the 100 elements (2 partitions of 50) never fill a batch of 64
        "BatchElements": (lambda p: p | beam.Create(range(100)) | beam.BatchElements(min_batch_size=64,
                                                                                     max_batch_size=64)
                          | beam.Map(len), [36, 64], []),
        # Top emits each bundle's best in finish_bundle: SequenceExampleGen's --max-users slice uses it
        "Top.Smallest": (lambda p: p | beam.Create(range(300, 0, -1)) | beam.combiners.Top.Smallest(3),
                         [[1, 2, 3]], [[]]),
    }


@pytest.mark.parametrize("name", list(_primitives()))
def test_beam_primitives(name, dask_args, tmp_path):
    build, in_memory, on_dask = _primitives()[name]
    mem = run(lambda p: {"out": build(p)}, DEFAULT_BEAM_ARGS, tmp_path / "memory.pkl")["out"]
    dask = run(lambda p: {"out": build(p)}, dask_args, tmp_path / "dask.pkl")["out"]
    assert sorted(mem) == in_memory
    assert sorted(dask) == (in_memory if on_dask is None else on_dask)


def test_a_stateful_dofn_fails_on_dask(dask_args, tmp_path):
    """The runner gives a DoFn no state context: ``assert self.user_state_context is not None`` fails."""
    def build(p):
        return {"out": p | beam.Create([("a", 1), ("a", 2), ("b", 3)]) | beam.ParDo(_RunningSum())}

    assert sorted(run(build, DEFAULT_BEAM_ARGS, tmp_path / "memory.pkl")["out"]) == [("a", 1), ("a", 3), ("b", 3)]
    with pytest.raises(AssertionError) as failure:
        run(build, dask_args, tmp_path / "dask.pkl")
    assert "_invoke_process_per_window" in "".join(str(entry) for entry in failure.traceback)


def test_only_the_last_sink_runs_on_dask(dask_args, tmp_path):
    """The runner computes the Dask bag of the pipeline's last transform only: an earlier sink never runs."""
    for args, name in ((DEFAULT_BEAM_ARGS, "memory"), (dask_args, "dask")):
        first, last = tmp_path / f"{name}-first.pkl", tmp_path / f"{name}-last.pkl"
        p = beam.Pipeline(options=PipelineOptions(list(args)))
        numbers = p | beam.Create(range(10))
        _ = numbers | "First" >> beam.combiners.Count.Globally() | "DumpFirst" >> beam.Map(bench._dump, str(first))
        _ = numbers | "Last" >> beam.CombineGlobally(sum) | "DumpLast" >> beam.Map(bench._dump, str(last))
        result = p.run()
        result.wait_until_finish()
        if name == "dask":
            result.client.close()
        assert pickle.loads(last.read_bytes()) == 45
        assert first.exists() == (name == "memory")


def test_write_to_tfrecord_writes_an_empty_shard_on_dask(dask_args, tmp_path):
    """The writers report their temporary files in ``finish_bundle``, whose outputs the runner drops: the
    finalisation renames nothing into place and writes one empty shard; the records stay in ``beam-temp-*``."""
    for args, name in ((DEFAULT_BEAM_ARGS, "memory"), (dask_args, "dask")):
        p = beam.Pipeline(options=PipelineOptions(list(args)))
        _ = (p | beam.Create([b"a", b"b", b"c"])
             | beam.io.WriteToTFRecord(str(tmp_path / name / "records"), file_name_suffix=".gz"))
        result = p.run()
        result.wait_until_finish()
        if name == "dask":
            result.client.close()
    assert sorted(_tfrecords(str(tmp_path / "memory" / "records-*.gz"))) == [b"a", b"b", b"c"]
    assert _tfrecords(str(tmp_path / "dask" / "records-*.gz")) == []
    temporary = tf.io.gfile.glob(str(tmp_path / "dask" / "beam-temp-records-*" / "*"))
    # (each more than once: the writes run again in every task that reads their results as a side input)
    assert sorted(set(r for f in temporary for r in _tfrecords(f))) == [b"a", b"b", b"c"]


def test_read_from_text_fails_to_build_on_dask(dask_args, tmp_path):
    (tmp_path / "lines.txt").write_text("1\n2\n")
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'map'"):
        run(lambda p: {"out": p | beam.io.ReadFromText(str(tmp_path / "lines.txt"))}, dask_args, tmp_path / "d.pkl")
