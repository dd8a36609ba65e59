"""Reading artifacts back: the ContentEmbedder's rows as one [N, D] float32 block, sorted by item id."""
import os

import numpy as np
import pytest
import tensorflow as tf

from recsys import features as F
from transform import examples_io
from transform.sequences import to_example


def _write_content(root, rows, files=2):
    d = os.path.join(root, f"Split-{F.CATALOG}")
    os.makedirs(d)
    for f in range(files):
        with tf.io.TFRecordWriter(os.path.join(d, f"part-{f}.gz"), options="GZIP") as w:
            for item, cat, vec in rows[f::files]:
                row = {F.ITEM_ID.name: item, F.CATEGORY.name: cat, F.EMBEDDING.name: [float(x) for x in vec]}
                w.write(to_example(row, F.CONTENT_FEATURES).SerializeToString())


def test_content_rows_are_one_block_sorted_by_item(tmp_path):
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(9, 5)).astype(np.float32)
    ids = [f"i{k}" for k in (7, 2, 9, 0, 4, 1, 8, 3, 5)]
    _write_content(str(tmp_path), [(i, f"c{k % 3}", v) for k, (i, v) in enumerate(zip(ids, vecs))])
    out = examples_io.read_content(str(tmp_path))
    order = np.argsort(ids)
    assert out.item_ids.tolist() == sorted(ids)
    assert out.categories.tolist() == [f"c{k % 3}" for k in order]
    assert out.vectors.dtype == np.float32 and out.vectors.shape == (9, 5)
    np.testing.assert_array_equal(out.vectors, vecs[order])


def test_content_rows_of_different_lengths_are_refused(tmp_path):
    _write_content(str(tmp_path), [("a", "c", [1.0, 2.0]), ("b", "c", [1.0, 2.0, 3.0])], files=1)
    with pytest.raises(ValueError, match="different lengths"):
        examples_io.read_content(str(tmp_path))


def _write_rows(root, split, rows, files=2):
    d = os.path.join(root, f"Split-{split}")
    os.makedirs(d)
    for f in range(files):
        with tf.io.TFRecordWriter(os.path.join(d, f"part-{f}.gz"), options="GZIP") as w:
            for r in rows[f * len(rows) // files:(f + 1) * len(rows) // files]:  # files hold consecutive rows
                w.write(to_example(r, F.SEQUENCE_FEATURES).SerializeToString())


def _row(user, history, targets, ts, order=0):
    return {F.USER_ID.name: user, F.HISTORY_ITEM_ID.name: history, F.HISTORY_ORDER_POS.name: list(range(len(history))),
            F.HISTORY_EVENT_TYPE.name: ["view"] * len(history), F.TARGET_ITEM_ID.name: targets,
            F.TARGET_CATEGORY.name: ["c"] * len(targets), F.TARGET_EVENT_TYPE.name: ["buy"] * len(targets),
            F.TARGET_ORDER_POS.name: order, F.TARGET_TIMESTAMP.name: ts}


@pytest.fixture
def sequences(tmp_path):
    """Rows of three users over the three splits, with timestamp ties inside a split and across splits."""
    train = [_row("u2", ["a"], ["b"], 20), _row("u1", ["x"], ["y"], 10), _row("u1", ["x", "y"], ["z", "w"], 10),
             _row("u2", ["q"], ["r"], 5), _row("u3", [], ["s"], 7), _row("u1", ["x", "y", "z", "w"], ["v"], 30),
             _row("u2", ["a", "b"], ["c"], 40)]
    _write_rows(tmp_path, F.TRAIN, train, files=3)
    _write_rows(tmp_path, F.EVAL, [_row("u1", ["h1"], ["e1"], 30), _row("u2", ["h2"], ["e2"], 50)])
    _write_rows(tmp_path, F.TEST, [_row("u1", ["h3"], ["t1"], 30), _row("u3", ["h4"], ["t3"], 6, order=3)], files=1)
    return str(tmp_path)


def test_rows_at_positions_are_read_in_file_order_across_files(sequences):
    every = examples_io.read_rows(sequences, F.TRAIN)
    some = examples_io.read_rows(sequences, F.TRAIN, rows=np.array([1, 2, 6]))
    assert some.user_ids == ["u1", "u1", "u2"] and some.targets == [every.targets[i] for i in (1, 2, 6)]
    assert examples_io.read_rows(sequences, F.TRAIN, rows=np.zeros(0, np.int64)).user_ids == []
    assert examples_io.read_rows(sequences, F.TRAIN, rows=np.array([6, 40])).user_ids == ["u2"]  # past the end: none


def test_latest_history_is_the_latest_row_first_read_on_a_tie(sequences):
    got = examples_io.latest_histories(sequences)
    assert list(got) == ["u1", "u2", "u3"]
    # u1: train row at 30 (read first) beats eval and test at 30; u2: eval at 50; u3: train at 7 beats test at 6
    assert got["u1"] == examples_io.UserHistory(["x", "y", "z", "w", "v"], [0, 1, 2, 3, 0], ["view"] * 4 + ["buy"])
    assert got["u2"].items == ["h2", "e2"] and got["u3"].items == ["s"]
    assert examples_io.latest_histories(sequences, users=frozenset({"u2", "nobody"})) == {"u2": got["u2"]}
    assert examples_io.last_timestamp(sequences) == 50


def test_training_interactions_are_the_earliest_unit_then_every_target_in_time_order(sequences):
    got = examples_io.training_interactions(sequences)
    assert list(got) == ["u2", "u3", "u1"]  # in the order of each user's earliest row (5, 7, 10)
    assert got == {"u2": ["q", "r", "b", "c"], "u3": ["s"], "u1": ["x", "y", "z", "w", "v"]}
    assert examples_io.training_item_counts(sequences)["x"] == 1
