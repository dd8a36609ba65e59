"""The graph ablation's evaluation slices: cold targets and purchase targets, exactly."""
import numpy as np

from benchmarks.graph_ablation import _cold_slice, _purchase_slice
from trainer.graph import EvalRows


def _rows():
    return EvalRows(np.array([0, 1, 2]), [np.array([4]), np.array([1, 2]), np.array([3])],
                    [np.array([0]), np.array([3]), np.array([], np.int64)], ["u0", "u1", "u2"],
                    [np.array(["click"], dtype=object), np.array(["purchase", "click"], dtype=object),
                     np.array(["purchase"], dtype=object)])


def test_purchase_slice_keeps_rows_with_a_purchase_target_and_cuts_their_targets_to_purchases():
    got = _purchase_slice(_rows())
    assert got.users.tolist() == [1, 2] and got.user_ids == ["u1", "u2"]
    assert [t.tolist() for t in got.targets] == [[1], [3]]
    assert [h.tolist() for h in got.histories] == [[3], []]
    assert [b.tolist() for b in got.target_behaviours] == [["purchase"], ["purchase"]]


def test_purchase_slice_is_none_when_every_target_is_a_purchase():
    rows = _rows()
    every = EvalRows(rows.users, rows.targets, rows.histories, rows.user_ids,
                     [np.array(["purchase"] * len(t), dtype=object) for t in rows.targets])
    assert _purchase_slice(every) is None


def test_cold_slice_keeps_rows_with_a_rarely_seen_target():
    counts = np.array([10, 3, 6, 5, 100])        # training interactions per item; cold = at most 5
    keep, cold = _cold_slice(_rows(), counts)
    assert keep == [1, 2] and [t.tolist() for t in cold.targets] == [[1], [3]]
