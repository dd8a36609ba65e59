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
