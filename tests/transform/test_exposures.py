"""Exposure rows on tiny exact examples: timeline, candidate sources, merge order, features, labels."""
import math

import numpy as np
import pytest

from recsys import features as F
from transform import exposures as X


def _row(pos, hist, targets, types=None):
    return {F.USER_ID.name: "u", F.HISTORY_ITEM_ID.name: [i for i, _ in hist],
            F.HISTORY_ORDER_POS.name: [p for _, p in hist], F.HISTORY_EVENT_TYPE.name: ["click"] * len(hist),
            F.TARGET_ITEM_ID.name: targets, F.TARGET_EVENT_TYPE.name: types or ["purchase"] * len(targets),
            F.TARGET_ORDER_POS.name: pos, F.TARGET_TIMESTAMP.name: 100 + pos}


def test_timeline_is_the_last_rows_history_and_targets():
    rows = [_row(2, [("b", 1)], ["c"]), _row(3, [("a", 0), ("b", 1), ("c", 2)], ["d"]), _row(1, [("a", 0)], ["b"])]
    got = X.user_timeline(rows)
    assert [(a.order_pos, a.item_id, a.behaviour) for a in got] == [
        (0, "a", "click"), (1, "b", "click"), (2, "c", "click"), (3, "d", "purchase")]


def test_units_of_user_rank_window_eval_and_test_rows_with_the_full_history():
    from transform.ranking_window import WINDOW

    full = [("a", 0), ("b", 1), ("c", 2), ("d", 3)]
    rows = [(F.TRAIN, _row(1, full[:1], ["b"])), (WINDOW, _row(2, full[1:2], ["c"])),  # history cut to 1 item
            (F.EVAL, _row(3, full[:3], ["d"])), (F.TEST, _row(4, full, ["e"]))]
    units = X.units_of_user(rows)
    assert [(u.split, u.order_pos) for u in units] == [(F.TRAIN, 2), (F.EVAL, 3), (F.TEST, 4)]
    assert [a.item_id for a in units[0].history] == ["a", "b"]  # not only the cut history ["b"]
    assert [a.item_id for a in units[2].history] == ["a", "b", "c", "d"]
    assert X.units_of_user(rows[:2]) == []  # no validation/test row: no complete timeline


def test_unit_start_with_events_sharing_an_order_position():
    # MovieLens: one order per day, each interaction its own unit
    from transform.ranking_window import WINDOW

    rows = [(WINDOW, _row(0, [("a", 0)], ["b"])), (F.TEST, _row(0, [("a", 0), ("b", 0)], ["c"]))]
    units = X.units_of_user(rows)
    assert [[a.item_id for a in u.history] for u in units] == [["a"], ["a", "b"]]
    with pytest.raises(ValueError, match="not in the user's timeline"):
        X.unit_start(X.user_timeline([rows[1][1]]), _row(0, [("z", 0)], ["b"]))


def test_repeat_candidates_by_count_then_recency():
    hist = [X.Action(0, "a", "purchase"), X.Action(1, "b", "purchase"), X.Action(2, "a", "purchase"),
            X.Action(3, "c", "purchase")]
    ids, scores = X.repeat_candidates(hist, 2)
    assert ids == ["a", "c"]  # a twice; then c (more recent than b)
    assert scores == [math.log1p(2), math.log1p(1)]


def test_popularity_candidates_skip_excluded():
    counts = {"x": 5, "y": 3, "z": 1}
    assert X.popularity_candidates(counts, ["x", "y", "z"], {"x"}, 2) == (["y", "z"], [math.log1p(3), math.log1p(1)])


def test_merge_orders_by_best_rank_then_source_priority():
    cands = {"two_tower": (["b", "a"], [0.9, 0.8]), "graph": (["a", "c"], [0.5, 0.4]), "popularity": (["d"], [1.0])}
    # rank 0: a (graph) before b (two_tower) before d (popularity); rank 1: c
    assert X.merge(cands) == ["a", "b", "d", "c"]


def test_exposure_row_features_and_labels():
    hist = [X.Action(0, "a", "purchase"), X.Action(1, "b", "click"), X.Action(1, "a", "purchase")]
    unit = X.Unit("u", F.EVAL, hist, targets=["a", "z"], target_behaviour=["purchase", "click"], order_pos=3,
                  timestamp=7, candidates={"graph": (["z", "a"], [0.5, 0.25]), "repeat": (["a"], [math.log1p(2)])},
                  user_vector=np.array([1.0, 2.0], np.float32))
    counts = {"a": 4, "z": 0}
    category = {"a": "c1", "b": "c1", "z": "c2"}
    row, stats = X.exposure_row(unit, counts, category)
    assert row[X.CANDIDATE_ITEM_ID.name] == ["z", "a"]
    assert row[X.LABEL_CLICK.name] == [1, 1]
    assert row[X.LABEL_CONVERSION.name] == [0, 1]  # z was clicked, not bought
    f = np.array(row[X.CANDIDATE_FEATURES.name]).reshape(2, -1)
    col = {n: i for i, n in enumerate(X.FEATURE_NAMES)}
    assert f[1, col["graph_in"]] == 1 and f[1, col["graph_score"]] == 0.25 and f[1, col["graph_rrank"]] == 0.5
    assert f[1, col["repeat_rrank"]] == 1.0 and f[0, col["repeat_in"]] == 0
    assert f[1, col["repeat_count_log"]] == pytest.approx(math.log1p(2))
    assert f[1, col["repeat_recency"]] == pytest.approx(1 / 2)  # last bought at order 1, unit at 3
    assert f[1, col["repeat_share"]] == pytest.approx(2 / 2)    # in both of the 2 orders
    assert f[1, col["popularity_log"]] == pytest.approx(math.log1p(4))
    assert f[1, col["category_affinity"]] == pytest.approx(3 / 3) and f[0, col["category_affinity"]] == 0
    assert row[X.ACTION_GAP.name] == [3, 2, 2]
    assert stats == {"split": F.EVAL, "candidates": 2, "targets": 2, "positives": 2, "any_positive": 1}


def test_summarise():
    s = X.summarise([{"split": "eval", "candidates": 4, "targets": 2, "positives": 1, "any_positive": 1},
                     {"split": "eval", "candidates": 2, "targets": 1, "positives": 0, "any_positive": 0}])
    assert s["eval"]["units"] == 2 and s["eval"]["candidates_per_unit"] == 3.0
    assert s["eval"]["units_with_positive"] == 0.5 and s["eval"]["target_recall"] == pytest.approx(1 / 3)


def test_the_student_source_is_on_for_both_sets_or_neither():
    prefix = X.RetrieverSet("tt", "g", {}, student_dir="prefix_student")
    served = X.RetrieverSet("tt", "g", {})
    with pytest.raises(ValueError, match="both a prefix student"):
        X.CandidateFn(prefix, served, {}, exclude_history=True)
    X.CandidateFn(prefix, X.RetrieverSet("tt", "g", {}, student_dir="student"), {}, exclude_history=True)
    assert "student" in X.SOURCES and X.DEFAULT_TOP_N["student"] == 100
