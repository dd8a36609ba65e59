"""Item space and sequence inputs: order positions, the JSON form of the item space, the evaluation protocol."""
import json

import numpy as np
import pytest

from recsys import names
from trainer import dual_head as D

from .helpers import make_items


def test_relative_orders_count_orders_not_items():
    assert D.relative_orders(np.array([0, 0, 1, 3]), 4, 64).tolist() == [4, 4, 3, 1]
    assert D.relative_orders(np.array([0, 99]), 100, 8).tolist() == [7, 1]  # clipped to max_orders - 1


def test_item_space_config_round_trip_is_exact():
    items = make_items()
    back = D.ItemSpace.from_config(json.loads(json.dumps(items.to_config())))
    assert back.item_ids.tolist() == items.item_ids.tolist()
    for field in ("codes", "content", "category", "train_count"):
        got, want = getattr(back, field), getattr(items, field)
        assert got.dtype == want.dtype and np.array_equal(got, want), field


@pytest.mark.parametrize("protocol, masked", [(names.LEAVE_ONE_OUT, True), (names.LEAVE_LAST_ORDER_OUT, False)])
def test_history_is_masked_on_leave_one_out_data_only(tmp_path, protocol, masked):
    (tmp_path / names.PROTOCOL_FILE).write_text(protocol + "\n")
    assert D.exclude_history_for(str(tmp_path)) is masked


def test_most_frequent_event_counts_real_history_items_only():
    items = make_items()
    purchase, click = D.EVENT_TYPES.index("purchase"), D.EVENT_TYPES.index("click")
    history = np.array([[0, 1, items.oov, items.pad, items.pad]], np.int32)
    events = np.array([[purchase, purchase, click, click, click]], np.int32)  # OOV and padding: not counted
    data = D.SequenceData(history, np.ones_like(history), events, [np.array([2])], [np.array([0, 1])], ["u"])
    assert D.most_frequent_event(data, items) == "purchase"


def _write_split(root, split, rows):
    import os

    import tensorflow as tf

    from recsys import features as F
    from transform.sequences import to_example

    d = os.path.join(root, f"Split-{split}")
    os.makedirs(d)
    with tf.io.TFRecordWriter(os.path.join(d, "part-0.gz"), options="GZIP") as w:
        for user, hist, opos, evs, targets, tpos in rows:
            w.write(to_example({F.USER_ID.name: user, F.HISTORY_ITEM_ID.name: hist, F.HISTORY_ORDER_POS.name: opos,
                                F.HISTORY_EVENT_TYPE.name: evs, F.TARGET_ITEM_ID.name: targets,
                                F.TARGET_CATEGORY.name: ["c"] * len(targets), F.TARGET_EVENT_TYPE.name: ["purchase"] * len(targets),
                                F.TARGET_ORDER_POS.name: tpos, F.TARGET_TIMESTAMP.name: 1}, F.SEQUENCE_FEATURES).SerializeToString())


@pytest.mark.parametrize("order_positions", [True, False])
def test_sequences_keep_the_last_items_with_their_orders_behaviours_and_known_targets(tmp_path, order_positions):
    """Issue 14: the rows are read batch by batch on flat arrays; this is what one row at a time gave."""
    items = make_items()
    purchase, click = D.EVENT_TYPES.index("purchase"), D.EVENT_TYPES.index("click")
    _write_split(tmp_path, "train", [
        ("u1", ["i0", "zz", "i2", "i3"], [0, 1, 1, 2], ["click", "purchase", "??", "click"], ["i5", "i4", "i5", "yy"], 4),
        ("u2", [], [], [], ["i1"], 0),
        ("u3", ["i7"], [3], ["purchase"], [], 9)])
    config = D.DualHeadConfig(max_history=3, max_orders=4, order_positions=order_positions)
    data = D.load_sequences(str(tmp_path), "train", items, config, batch_size=2)  # two batches
    pad, oov = items.pad, items.oov
    assert data.history.tolist() == [[oov, 2, 3], [pad] * 3, [7, pad, pad]]  # the last 3; unknown id → OOV
    assert data.events.tolist() == [[purchase, 0, click], [0] * 3, [purchase, 0, 0]]  # unknown behaviour → 0
    want = [[3, 3, 2], [0] * 3, [3, 0, 0]] if order_positions else [[3, 2, 1], [0] * 3, [1, 0, 0]]
    assert data.order_rel.tolist() == want  # orders before the target, clipped to [1, max_orders - 1]
    assert [p.tolist() for p in data.positives] == [[4, 5], [1], []]  # distinct, sorted, unknown dropped
    assert [h.tolist() for h in data.full_history] == [[0, 2, 3], [], [7]]  # the whole known history
    assert data.users == ["u1", "u2", "u3"] and data.history.dtype == np.int32
