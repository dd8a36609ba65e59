"""Serving-side input conversion of the dual-head models (raw request tensors → model inputs)."""
import numpy as np
import tensorflow as tf

from trainer import dual_head as D
from trainer.dual_head_export import HistoryInput


def _items(n=5):
    return D.ItemSpace(np.array([f"i{j}" for j in range(n)], dtype=object), np.zeros((n, 2), np.int32),
                       np.ones((n, 3), np.float32), np.zeros(n, np.int32), np.ones(n, np.float32))


def test_history_input_keeps_the_latest_items_and_counts_orders_back():
    items = _items()
    inputs = HistoryInput(items, max_history=2, max_orders=8, order_positions=True, default_event="purchase")
    history = tf.constant([["i1", "i2", "i3", ""], ["zzz", "i0", "", ""], ["", "", "", ""]])
    order_pos = tf.constant([[0, 0, 2, 0], [5, 7, 0, 0], [0, 0, 0, 0]], tf.int64)
    idx, rel, ev = inputs(history, order_pos)
    assert idx.numpy().tolist() == [[2, 3], [items.oov, 0], [items.pad, items.pad]]
    assert rel.numpy().tolist() == [[3, 1], [3, 1], [0, 0]]
    purchase = D.EVENT_TYPES.index("purchase")
    assert ev.numpy().tolist() == [[purchase] * 2, [purchase] * 2, [0, 0]]


def test_history_input_without_positions_makes_every_item_its_own_order():
    inputs = HistoryInput(_items(), max_history=4, max_orders=3, order_positions=True, default_event="")
    idx, rel, _ = inputs(tf.constant([["i1", "i2", "i3"]]))
    assert idx.numpy().tolist() == [[1, 2, 3, 6]]
    assert rel.numpy().tolist() == [[2, 2, 1, 0]]  # 3 orders back is clipped to max_orders - 1


def test_sasrec_exports_ignore_order_positions():
    inputs = HistoryInput(_items(), max_history=3, max_orders=8, order_positions=False, default_event="")
    _, rel, _ = inputs(tf.constant([["i1", "i2", "i3"]]), tf.constant([[0, 0, 0]], tf.int64))
    assert rel.numpy().tolist() == [[3, 2, 1]]
