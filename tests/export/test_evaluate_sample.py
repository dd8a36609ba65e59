"""export.evaluate's user sample (issue 14): every field of the split's rows restricted to the same users."""
import numpy as np

from export import evaluate
from transform.examples_io import SequenceRows


def test_select_rows_keeps_every_field_of_the_chosen_rows():
    rows = SequenceRows(user_ids=["a", "b", "c", "d"], histories=[["1"], ["2"], ["3"], ["4"]],
                        targets=[["t1"], ["t2"], ["t3"], ["t4"]], target_timestamps=np.array([10, 20, 30, 40]),
                        history_order_pos=[[0], [1], [2], [3]], target_order_pos=np.array([5, 6, 7, 8]),
                        target_event_types=[["click"], ["cart"], ["like"], ["purchase"]],
                        history_event_types=[["x"], ["y"], ["z"], ["w"]])
    got = evaluate._select_rows(rows, np.array([1, 3]))
    assert got.user_ids == ["b", "d"] and got.histories == [["2"], ["4"]] and got.targets == [["t2"], ["t4"]]
    assert got.target_timestamps.tolist() == [20, 40] and got.target_order_pos.tolist() == [6, 8]
    assert got.history_order_pos == [[1], [3]] and got.target_event_types == [["cart"], ["purchase"]]
    assert got.history_event_types == [["y"], ["w"]]
