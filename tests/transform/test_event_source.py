"""Events read (or generated) inside Beam (``transform/event_source.py``) equal ``load_dataset``'s, per user and
in order.

A MovieLens-format directory written here holds what the canonical order and the load report
must get right: timestamps tied and timestamps float32 cannot tell apart (file order decides),
an exact duplicate row, an event of an unknown item, ratings on both sides of the purchase
threshold. The Beam reader's users, their event order and the load report are compared with
``load_dataset``; the example generator's records with the launcher-side path's. The synthetic
generator's shards, generated in Beam, are compared the same way.
"""
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf

from recsys.data import event_lines, load_dataset
from recsys.data.movielens import INTER_FILE, ITEM_FILE
from transform import event_source
from tfx_pipeline.pipeline import DEFAULT_BEAM_ARGS, with_setup_file

BEAM_ARGS = with_setup_file(DEFAULT_BEAM_ARGS)  # no TFX sdist per executor

BASE = 880_000_000
RATINGS = [  # user, item, rating, timestamp (file order)
    ("1", "10", 4, BASE + 100), ("1", "11", 3, BASE + 100),   # a tie: file order
    ("1", "12", 5, BASE + 50), ("1", "13", 2, BASE + 400),
    ("1", "12", 5, BASE + 50),                                  # exact duplicate of an earlier row: dropped
    ("2", "10", 1, BASE + 10), ("2", "99", 4, BASE + 20),      # item 99 is not in the items table: dropped
    ("2", "11", 4, BASE + 30), ("2", "14", 4, BASE + 29),
    ("3", "13", 3, 893_000_001), ("3", "10", 5, 893_000_000),  # float32 of the scaled time cannot tell these apart
    ("3", "14", 4, 800_000_000), ("3", "11", 4, 893_286_000), ("3", "12", 1, BASE + 7),
    ("10", "10", 4, BASE + 1), ("10", "11", 4, BASE + 2), ("10", "12", 4, BASE + 86_400 * 3),
]


def write_movielens(directory, ratings=RATINGS):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, INTER_FILE), "w", encoding="utf-8") as f:
        f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        f.writelines(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ratings)
    with open(os.path.join(directory, ITEM_FILE), "w", encoding="utf-8") as f:
        f.write("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n")
        f.writelines(f"{i}\tMovie {i}\t199{i[-1]}\tDrama Comedy\n" for i in ("10", "11", "12", "13", "14"))
    return str(directory)


def _dump(value, path):
    import pickle

    with open(path, "wb") as f:
        pickle.dump(value, f)


def _read(path, out_dir):
    """(user → [(item, event type, timestamp, order id), ...] in order, LoadReport) from the Beam reader."""
    import pickle

    source = event_lines("movielens-100k", path)
    users_file, report_file = os.path.join(out_dir, "users.pkl"), os.path.join(out_dir, "report.pkl")
    with beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(BEAM_ARGS)) as p:
        read = p | event_source.ReadUserEvents(source, event_source.read_header(source.events_file))
        users = read["users"] | beam.Map(lambda e: (e[0], [(r[1], r[2], r[3], r[4]) for r in e[1]]))
        _ = users | beam.combiners.ToList() | beam.Map(lambda rows: _dump(dict(rows), users_file))
        _ = read["report"] | beam.Map(lambda r: _dump(r, report_file))
    with open(users_file, "rb") as f, open(report_file, "rb") as g:
        return pickle.load(f), pickle.load(g)


def test_the_beam_reader_gives_load_datasets_events_and_report(tmp_path):
    path = write_movielens(tmp_path / "ml")
    users, report = _read(path, str(tmp_path))
    ds = load_dataset("movielens-100k", path)
    want = {u: [(i, e, int(t), o) for i, e, t, o in zip(g["item_id"], g["event_type"], g["timestamp"], g["order_id"])]
            for u, g in ds.events.groupby("user_id", sort=False)}
    assert users == want
    assert users["1"][:3] == [("12", "purchase", BASE + 50, users["1"][0][3]), ("10", "purchase", BASE + 100,
                                                                              users["1"][1][3]),
                              ("11", "click", BASE + 100, users["1"][2][3])]  # the tie kept in file order
    assert [i for i, *_ in users["3"]] == ["14", "12", "13", "10", "11"]  # float32-equal times: file order (RecBole)
    # the report: the same counts; duplicate examples name a byte offset instead of a row
    assert report.n_duplicate_events == ds.report.n_duplicate_events == 1
    assert report.duplicate_examples[0].startswith("byte ")
    assert report.summary().replace(report.duplicate_examples[0], "") == ds.report.summary().replace(
        ds.report.duplicate_examples[0], "")
    assert report.n_events_unknown_item == 1 and report.unknown_item_examples == ("99",)


def test_the_line_source_reads_every_line_once_whatever_the_splits(tmp_path):
    path = tmp_path / "lines.txt"
    lines = ["header"] + [f"line {i} " + "x" * (i % 17) for i in range(500)]
    path.write_text("\n".join(lines) + "\n")
    offsets = np.cumsum([0] + [len(s) + 1 for s in lines])[:-1]
    want = list(zip(offsets[1:].tolist(), lines[1:]))
    source = event_source._OffsetLines(str(path))
    for bundle in (10, 97, 1000, 1 << 20):
        got = []
        for split in source.split(desired_bundle_size=bundle):
            got.extend(split.source.read(split.source.get_range_tracker(split.start_position, split.stop_position)))
        assert sorted(got) == want, bundle
        if bundle == 10:
            assert len(list(source.split(desired_bundle_size=bundle))) > 100


def test_strict_fails_on_an_unknown_item_naming_its_byte(tmp_path):
    from recsys.data import DataValidationError

    path = write_movielens(tmp_path / "ml")
    source = event_lines("movielens-100k", path, strict=True)
    with pytest.raises(Exception, match=r"item '99' \(the line at byte \d+\) is not in the ml-100k.item table"):
        with beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(BEAM_ARGS)) as p:
            _ = p | event_source.ReadUserEvents(source, event_source.read_header(source.events_file))
    assert DataValidationError  # the error raised inside Beam is this one, re-raised by the runner


def _records(uri, split):
    files = tf.io.gfile.glob(os.path.join(uri, f"Split-{split}", "*"))
    return sorted(tf.train.Example.FromString(r).SerializeToString(deterministic=True)
                  for r in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())


def run_example_gen(uri, data_path, max_users, launcher_side=False, monkeypatch=None, beam_args=BEAM_ARGS,
                    dataset="movielens-100k", options_json="{}"):
    """SequenceExampleGen's executor; ``launcher_side``: the adapter's events loaded whole (the old path)."""
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
    from tfx.types import standard_artifacts

    import recsys.data
    from tfx_pipeline.components.example_gen import SequenceExampleGen

    if launcher_side:
        monkeypatch.setattr(recsys.data, "event_lines", lambda *a, **k: None)
        monkeypatch.setattr(recsys.data, "event_shards", lambda *a, **k: None)
    examples = standard_artifacts.Examples()
    examples.uri = uri
    SequenceExampleGen.EXECUTOR_SPEC.executor_class(BaseBeamExecutor.Context(beam_pipeline_args=list(beam_args))).Do(
        {}, {"examples": [examples]}, {"dataset": dataset, "options_json": options_json, "max_history": 50,
                                       "max_users": max_users, "data_path": data_path, "fingerprint": "",
                                       "code_version": 1})
    if launcher_side:
        monkeypatch.undo()
    return examples


def assert_same_examples(a, b, compare_report=True):
    from recsys import features as F

    for split in F.ALL_SPLITS:
        assert _records(a.uri, split) == _records(b.uri, split), split
    names = ("load_report.txt", "protocol.txt") if compare_report else ("protocol.txt",)
    for name in names:
        assert tf.io.gfile.GFile(os.path.join(a.uri, name), "rb").read() == tf.io.gfile.GFile(
            os.path.join(b.uri, name), "rb").read(), name
    for key in ("dataset", "protocol"):
        assert a.get_string_custom_property(key) == b.get_string_custom_property(key)


@pytest.mark.parametrize("max_users", [0, 2])
def test_the_example_gen_writes_the_same_records_reading_in_beam(tmp_path, monkeypatch, max_users):
    path = write_movielens(tmp_path / "ml", RATINGS[:4] + RATINGS[5:])  # no duplicate: the reports match byte for byte
    beam_side = run_example_gen(str(tmp_path / "beam"), path, max_users)
    launcher_side = run_example_gen(str(tmp_path / "launcher"), path, max_users, True, monkeypatch)
    assert _records(beam_side.uri, "train")
    assert_same_examples(beam_side, launcher_side)


SYNTHETIC = {"n_users": 60, "n_items": 120, "n_events": 3_000, "seed": 4}


@pytest.fixture
def small_shards(monkeypatch):
    """Shards of about 400 events (set where the shards are planned, in this process): 3,000 events in 8."""
    from recsys.data import synthetic

    monkeypatch.setattr(synthetic, "SHARD_EVENTS", 400)


def test_the_generated_shards_give_load_datasets_events_and_report(tmp_path, small_shards):
    import pickle

    from recsys.data import event_shards

    source = event_shards("synthetic", **SYNTHETIC)
    assert len(source.shards) == 8
    users_file, report_file = str(tmp_path / "users.pkl"), str(tmp_path / "report.pkl")
    with beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(BEAM_ARGS)) as p:
        generated = p | event_source.GenerateUserEvents(source)
        users = generated["users"] | beam.Map(lambda e: (e[0], [r[1:] for r in e[1]]))
        _ = users | beam.combiners.ToList() | beam.Map(lambda rows: _dump(rows, users_file))
        _ = generated["report"] | beam.Map(lambda r: _dump(r, report_file))
    with open(users_file, "rb") as f, open(report_file, "rb") as g:
        users, report = pickle.load(f), pickle.load(g)
    ds = load_dataset("synthetic", **SYNTHETIC)
    want = {u: [(i, e, int(t), o, s, float(d)) for i, e, t, o, s, d in zip(
        g["item_id"], g["event_type"], g["timestamp"], g["order_id"], g["session_id"], g["dwell_ms"])]
        for u, g in ds.events.groupby("user_id", sort=False)}
    assert len(users) == len(want) == 60  # one element per user: a shard holds whole users
    got = dict(users)
    assert got.keys() == want.keys()
    for u in want:  # NaN dwell times: compare their text
        assert repr(got[u]) == repr(want[u]), u
    assert report == ds.report and report.summary() == ds.report.summary()


@pytest.mark.parametrize("max_users", [0, 13])
def test_the_example_gen_writes_the_same_records_generating_in_beam(tmp_path, monkeypatch, small_shards, max_users):
    """The synthetic shards generated in Beam against the same (v2) data loaded by the launcher and
    ``beam.Create``d: the same records in every split, the same load report and protocol."""
    import json

    from recsys.data.contract import split_sizes

    events = load_dataset("synthetic", **SYNTHETIC).events
    if max_users:
        events = events[events["user_id"].isin(sorted(events["user_id"].unique())[:max_users])]
    options = json.dumps(SYNTHETIC)
    beam_side = run_example_gen(str(tmp_path / "beam"), "", max_users, dataset="synthetic", options_json=options)
    launcher_side = run_example_gen(str(tmp_path / "launcher"), "", max_users, True, monkeypatch,
                                    dataset="synthetic", options_json=options)  # (undoes small_shards after it)
    assert (len(_records(beam_side.uri, "train")), len(_records(beam_side.uri, "test"))) == split_sizes(
        events, "leave_one_out")
    assert_same_examples(beam_side, launcher_side)
