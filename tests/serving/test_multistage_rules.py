"""The re-ranking policies, the feedback rule and the A/B arithmetic, each on hand-computed cases."""
import json
import math

import numpy as np
import pytest

from serving import rerank as R
from serving.experiments import EventLog, Experiment, ab_report, event, wilson
from serving.feedback import FeedbackRule, split_feedback


def cands(*pairs):
    return [R.Candidate(i, s) for i, s in pairs]


def ids(items):
    return [c.item_id for c in items]


def rules(items):
    return [c.rule for c in items]


CTX = R.RerankContext()


# ------------------------------------------------------------------ exclusion and suppression

def test_exclude_drops_bought_and_blocked_and_keeps_order():
    ctx = R.RerankContext(bought=frozenset({"b"}), blocked=frozenset({"d"}))
    items = cands(("a", 5), ("b", 4), ("c", 3), ("d", 2), ("e", 1))
    assert ids(R.Exclude().apply(items, 3, ctx)) == ["a", "c", "e"]
    assert ids(R.Exclude(bought=False).apply(items, 3, ctx)) == ["a", "b", "c", "e"]


def test_suppress_ignored_drops_items_at_the_threshold_only():
    ctx = R.RerankContext(ignored={"a": 3, "b": 2, "c": 7})
    assert ids(R.SuppressIgnored(max_ignored=3).apply(cands(("a", 3), ("b", 2), ("c", 1), ("d", 0)), 4, ctx)) == ["b", "d"]


# ------------------------------------------------------------------ diversity

def test_category_cap_defers_the_third_item_of_a_category_and_marks_what_moved_up():
    ctx = R.RerankContext(categories={"a": "x", "b": "x", "c": "x", "d": "y", "e": "x"})
    out = R.CategoryCap(max_per_category=2).apply(cands(("a", 5), ("b", 4), ("c", 3), ("d", 2), ("e", 1)), 3, ctx)
    assert ids(out) == ["a", "b", "d", "c", "e"]
    assert rules(out) == ["score", "score", "category_cap", "score", "score"]


def test_category_cap_never_caps_items_without_a_category():
    ctx = R.RerankContext(categories={"a": "x"})
    out = R.CategoryCap(max_per_category=1).apply(cands(("a", 3), ("b", 2), ("c", 1)), 3, ctx)
    assert ids(out) == ["a", "b", "c"] and rules(out) == ["score"] * 3


def test_mmr_picks_the_dissimilar_item_second():
    # rel: a 1, b 0.9, c 0 (scores 10, 9, 0); b is a's twin, c orthogonal
    emb = {"a": np.array([1.0, 0.0]), "b": np.array([1.0, 0.0]), "c": np.array([0.0, 1.0])}
    ctx = R.RerankContext(embeddings=emb)
    # lambda 0.5: second pick: b 0.5*0.9 - 0.5*1 = -0.05, c 0.5*0 - 0 = 0 -> c
    out = R.MMR(lambda_=0.5).apply(cands(("a", 10), ("b", 9), ("c", 0)), 3, ctx)
    assert ids(out) == ["a", "c", "b"] and rules(out) == ["score", "mmr", "score"]
    # lambda 0.9: b 0.81 - 0.1 = 0.71 > c 0 -> score order
    assert ids(R.MMR(lambda_=0.9).apply(cands(("a", 10), ("b", 9), ("c", 0)), 3, ctx)) == ["a", "b", "c"]
    # lambda 1: pure relevance whatever the embeddings
    assert ids(R.MMR(lambda_=1.0).apply(cands(("a", 10), ("b", 9), ("c", 0)), 2, ctx)) == ["a", "b", "c"]


def test_mmr_without_embeddings_keeps_score_order():
    out = R.MMR(lambda_=0.3).apply(cands(("a", 3), ("b", 2), ("c", 1)), 2, CTX)
    assert ids(out) == ["a", "b", "c"] and rules(out) == ["score"] * 3


# ------------------------------------------------------------------ novelty

def test_novelty_share_promotes_the_best_cold_items_into_the_last_slots():
    inter = {"a": 100, "b": 90, "c": 80, "d": 70, "e": 2, "f": 60, "g": 1}
    ctx = R.RerankContext(interactions=inter)
    items = cands(("a", 7), ("b", 6), ("c", 5), ("d", 4), ("f", 3), ("e", 2), ("g", 1))
    # k 5, share 0.4 -> 2 cold needed, none in the top 5: e and g replace d and f
    out = R.NoveltyShare(share=0.4, max_interactions=5).apply(items, 5, ctx)
    assert ids(out)[:5] == ["a", "b", "c", "e", "g"] and rules(out)[:5] == ["score"] * 3 + ["novelty"] * 2
    assert ids(out)[5:] == ["d", "f"]


def test_novelty_share_counts_cold_items_already_there_and_unknown_items_as_cold():
    ctx = R.RerankContext(interactions={"a": 100, "b": 100, "c": 100})
    items = cands(("a", 4), ("new", 3), ("b", 2), ("c", 1))
    assert ids(R.NoveltyShare(share=0.34, max_interactions=5).apply(items, 3, ctx)) == ["a", "new", "b", "c"]


# ------------------------------------------------------------------ ads

def test_ad_slots_place_sponsored_candidates_at_their_positions_above_the_floor():
    items = cands(("a", 9), ("b", 8), ("s1", 7), ("c", 6), ("s_low", 0.5), ("d", 5), ("s2", 4), ("e", 3))
    policy = R.AdSlots(sponsored=("s_low", "s2", "s1", "absent"), positions=(1, 4), min_score=1.0)
    out = policy.apply(items, 6, CTX)
    # s_low is under the floor, "absent" is no candidate: s2 at 1, s1 at 4; organic order otherwise
    assert ids(out) == ["a", "s2", "b", "c", "s1", "s_low", "d", "e"]
    assert [i for i, c in enumerate(out) if c.rule == "ad_slot"] == [1, 4]


def test_ad_slots_leave_a_position_organic_when_no_sponsored_item_is_eligible():
    out = R.AdSlots(sponsored=("x",), positions=(0, 2)).apply(cands(("a", 2), ("b", 1)), 2, CTX)
    assert ids(out) == ["a", "b"] and rules(out) == ["score", "score"]


@pytest.mark.parametrize("positions", [(1, 2), (3, 3), (-1,)])
def test_ad_slots_refuse_adjacent_duplicate_or_negative_positions(positions):
    with pytest.raises(ValueError, match="position"):
        R.AdSlots(sponsored=("x",), positions=positions)


def test_pipeline_applies_policies_in_order_and_cuts_to_k():
    ctx = R.RerankContext(bought=frozenset({"a"}), categories={"b": "x", "c": "x", "d": "y"})
    pipe = R.RerankPipeline((R.Exclude(), R.CategoryCap(max_per_category=1)))
    out = pipe.apply(cands(("a", 4), ("b", 3), ("c", 2), ("d", 1)), 2, ctx)
    assert ids(out) == ["b", "d"] and pipe.names == ["exclude", "category_cap"]


# ------------------------------------------------------------------ the feedback rule

def test_feedback_step_toward_clicks_and_away_from_ignored_impressions():
    rule = FeedbackRule(toward=0.5, away=0.25, max_shift=10.0)
    u = np.array([2.0, 0.0])
    # |u| = 2; unit click (0, 1); unit ignored (1, 0): step = 2 * (0.5 (0,1) - 0.25 (1,0)) = (-0.5, 1)
    delta = rule.update(u, None, [np.array([0.0, 3.0])], [np.array([5.0, 0.0])])
    np.testing.assert_allclose(delta, [-0.5, 1.0])
    # a second round adds to the stored offset
    np.testing.assert_allclose(rule.update(u, delta, [np.array([0.0, 3.0])], []), [-0.5, 2.0])


def test_feedback_offset_is_clipped_to_max_shift_times_the_user_norm():
    rule = FeedbackRule(toward=1.0, away=0.0, max_shift=0.5)
    delta = rule.update(np.array([3.0, 4.0]), None, [np.array([1.0, 0.0])], [])  # step (5, 0), bound 2.5
    np.testing.assert_allclose(delta, [2.5, 0.0])


def test_feedback_purchases_weigh_more_and_zero_vectors_count_as_nothing():
    rule = FeedbackRule(toward=1.0, away=0.0, max_shift=10.0, purchase_weight=3.0)
    pos, w, ignored = split_feedback(["a", "b", "c"], clicks=["a"], purchases=["b"], purchase_weight=3.0)
    assert pos == ["a", "b"] and w == [1.0, 3.0] and ignored == ["c"]
    delta = rule.update(np.array([1.0, 0.0]), None, [np.array([1.0, 0.0]), np.array([0.0, 2.0])], [], w)
    np.testing.assert_allclose(delta, [0.25, 0.75])
    np.testing.assert_allclose(rule.update(np.array([1.0, 0.0]), None, [np.zeros(2)], []), [0.0, 0.0])


@pytest.mark.parametrize("bad", [dict(toward=-1), dict(away=float("nan")), dict(max_shift=float("inf")),
                                 dict(purchase_weight="2")])
def test_feedback_rule_refuses_bad_config(bad):
    with pytest.raises(ValueError):
        FeedbackRule(**bad)


def test_feedback_refuses_nan_vectors_and_mismatched_dimensions():
    rule = FeedbackRule()
    with pytest.raises(ValueError, match="NaN"):
        rule.update(np.array([np.nan, 1.0]), None, [], [])
    with pytest.raises(ValueError, match="NaN"):
        rule.update(np.array([1.0, 1.0]), None, [np.array([np.nan, 0.0])], [])
    with pytest.raises(ValueError, match="dimension"):
        rule.update(np.array([1.0, 1.0]), np.array([1.0, 1.0, 1.0]), [], [])


# ------------------------------------------------------------------ experiments

def test_arm_assignment_is_deterministic_and_follows_the_splits():
    exp = Experiment("e", "salt-1", {"control": 0.5, "treatment": 0.5})
    users = [f"u{i}" for i in range(4000)]
    arms = [exp.assign(u) for u in users]
    assert arms == [exp.assign(u) for u in users]
    share = arms.count("control") / len(arms)
    assert abs(share - 0.5) < 0.03  # binomial sd 0.008: 3.8 sd
    # the bucket is the documented hash: first 8 bytes of SHA-256("salt-1:u0")
    import hashlib
    assert exp.bucket("u0") == int.from_bytes(hashlib.sha256(b"salt-1:u0").digest()[:8], "big") / 2**64
    other = Experiment("e", "salt-2", {"control": 0.5, "treatment": 0.5})
    assert [other.assign(u) for u in users] != arms


@pytest.mark.parametrize("splits", [{}, {"a": 0.5}, {"a": 0.7, "b": 0.7}, {"a": 0.0, "b": 1.0}, {"": 1.0}])
def test_experiment_refuses_bad_splits(splits):
    with pytest.raises(ValueError):
        Experiment("e", "s", splits)


def test_wilson_interval_matches_the_formula():
    low, high = wilson(10, 100)
    z = 1.959963984540054
    p, n = 0.1, 100
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert wilson(0, 0) == (0.0, 1.0)


def test_ab_report_joins_clicks_to_exposures_across_rotated_files(tmp_path):
    path = str(tmp_path / "events.jsonl")
    log = EventLog(path, max_bytes=1024, backups=50)
    rows = []
    for r in range(20):
        arm = "A" if r % 2 == 0 else "B"
        rows += [event("exposure", request_id=f"r{r}", user_id="u", item_id=f"i{j}", experiment="e", arm=arm,
                       position=j) for j in range(3)]
        if arm == "A" or r % 4 == 1:
            rows.append(event("click", request_id=f"r{r}", user_id="u", item_id="i0", experiment="e", arm=arm))
    rows.append(event("click", request_id="r0", user_id="u", item_id="never-shown", experiment="e", arm="A"))
    log.append(rows)
    log.close()
    assert len(list(tmp_path.glob("events.jsonl.*"))) >= 2  # rotated
    a, b = ab_report(path, experiment="e")
    # A: 10 requests x 3 exposures, 10 clicks; B: 10 x 3, clicks on r1, r5, r9, r13, r17 = 5
    assert (a.arm, a.exposures, a.clicks) == ("A", 30, 10) and (b.arm, b.exposures, b.clicks) == ("B", 30, 5)
    assert b.diff == pytest.approx(5 / 30 - 10 / 30)
    assert b.diff_low < b.diff < b.diff_high


def test_ab_report_names_the_bad_line(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"type": "exposure", "request_id": "r", "item_id": "i", "arm": "A"}) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"events.jsonl:2"):
        ab_report(str(path))
