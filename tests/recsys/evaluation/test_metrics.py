"""Hand-computed checks of top_k, ranking_metrics and evaluate_scorer."""
import logging
import math

import numpy as np
import pytest

from recsys.evaluation.metrics import (
    ENTROPY_LOG_BASE,
    count_skipped_users,
    evaluate_scorer,
    metric_names,
    ranking_metrics,
    top_k,
)


def a(*xs):
    return np.array(xs, dtype=np.int64)


# ----------------------------------------------------------------------------- top_k
def test_top_k_ties_broken_by_lower_index():
    scores = np.array([[0.5, 0.9, 0.9, 0.1, 0.9, 0.0]])
    assert top_k(scores, 2).tolist() == [[1, 2]]
    assert top_k(scores, 4).tolist() == [[1, 2, 4, 0]]
    assert top_k(np.zeros((2, 5)), 3).tolist() == [[0, 1, 2], [0, 1, 2]]


def test_top_k_exclusion():
    scores = np.array([[0.5, 0.9, 0.9, 0.1, 0.9, 0.0], [1, 2, 3, 4, 5, 6]], dtype=np.float32)
    out = top_k(scores, 2, [a(2), a(5, 4)])
    assert out.tolist() == [[1, 4], [3, 2]]
    assert scores[0, 2] == np.float32(0.9)  # input untouched


def test_top_k_excluded_items_come_last_when_needed():
    assert top_k(np.array([[5.0, 4.0, 3.0]]), 3, [a(0, 1)]).tolist() == [[2, 0, 1]]
    assert top_k(np.array([[5, 4, 3]]), 2, [np.array([])]).tolist() == [[0, 1]]  # int scores, empty row


def test_top_k_matches_lexsort_oracle_with_many_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(40, 30)).astype(np.float64)
    exclude = [rng.choice(30, size=rng.integers(0, 6), replace=False) for _ in range(40)]
    got = top_k(scores, 7, exclude)
    for u in range(40):
        s = scores[u].copy()
        s[exclude[u]] = -np.inf
        oracle = np.lexsort((np.arange(30), -s))[:7]
        assert got[u].tolist() == oracle.tolist()


def test_top_k_rejects_bad_input():
    with pytest.raises(ValueError):
        top_k(np.zeros((1, 3)), 4)
    with pytest.raises(ValueError):
        top_k(np.array([[0.0, np.nan]]), 1)
    with pytest.raises(ValueError):
        top_k(np.zeros((1, 3)), 1, [a(3)])
    with pytest.raises(ValueError):
        top_k(np.zeros((2, 3)), 1, [a(0)])


# ----------------------------------------------------------------------------- ranking_metrics
TOPK = np.array([[0, 1, 2], [3, 4, 1], [1, 0, 3], [5, 4, 3]])
TARGETS = [a(1), a(1, 0), a(2, 2), a()]  # user 3 has no targets -> skipped


def test_ranking_metrics_hand_computed():
    m = ranking_metrics(TOPK, TARGETS, num_items=6, k=3)
    assert list(m) == ["HR@3", "Recall@3", "NDCG@3", "coverage@3", "entropy@3"]
    # u0: hit at rank 2 of 1 target; u1: hit at rank 3 of 2 targets; u2: {2}, no hit.
    ndcg_u0 = 1 / math.log2(3)
    ndcg_u1 = (1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert m["HR@3"] == pytest.approx(2 / 3)
    assert m["Recall@3"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert m["NDCG@3"] == pytest.approx((ndcg_u0 + ndcg_u1 + 0) / 3)
    # lists of evaluated users: item counts 0:2, 1:3, 2:1, 3:2, 4:1 (9 slots), item 5 unused.
    assert m["coverage@3"] == pytest.approx(5 / 6)
    p = np.array([2, 3, 1, 2, 1]) / 9
    assert m["entropy@3"] == pytest.approx(-(p * np.log2(p)).sum())


def test_skipped_users_are_counted_and_logged(caplog):
    assert count_skipped_users(TARGETS) == 1
    with caplog.at_level(logging.WARNING, logger="recsys.evaluation.metrics"):
        ranking_metrics(TOPK, TARGETS, num_items=6, k=3)
    assert "skipped 1 users" in caplog.text
    with pytest.raises(ValueError):
        ranking_metrics(TOPK[3:], TARGETS[3:], num_items=6, k=3)


def test_idcg_is_capped_at_k_and_wider_topk_is_cut():
    m = ranking_metrics(np.array([[0, 1, 2, 5]]), [a(0, 1, 2, 3)], num_items=6, k=3)
    assert m["NDCG@3"] == pytest.approx(1.0)
    assert m["Recall@3"] == pytest.approx(3 / 4)
    assert m["coverage@3"] == pytest.approx(3 / 6)  # item 5 (rank 4) is beyond k
    m1 = ranking_metrics(np.array([[4, 0]]), [a(0)], num_items=6, k=2)
    assert m1["NDCG@2"] == pytest.approx(1 / math.log2(3))
    with pytest.raises(ValueError):
        ranking_metrics(np.array([[0, 1]]), [a(0)], num_items=6, k=3)


def test_coverage_and_entropy():
    assert ENTROPY_LOG_BASE == 2.0
    m = ranking_metrics(np.array([[0, 1], [2, 3]]), [a(0), a(0)], num_items=8, k=2)
    assert m["entropy@2"] == pytest.approx(2.0)  # uniform over 4 items = 2 bits
    assert m["coverage@2"] == pytest.approx(4 / 8)
    m = ranking_metrics(np.array([[0], [0]]), [a(0), a(1)], num_items=8, k=1)
    assert m["entropy@1"] == 0.0
    assert m["coverage@1"] == pytest.approx(1 / 8)


def test_metric_names():
    assert metric_names(10) == ["HR@10", "Recall@10", "NDCG@10", "coverage@10", "entropy@10"]


# ----------------------------------------------------------------------------- evaluate_scorer
def _setup(n_users=53, n_items=40, seed=1):
    rng = np.random.default_rng(seed)
    table = rng.random((n_users, n_items)).astype(np.float32)
    histories = [rng.choice(n_items, size=rng.integers(0, 6), replace=False) for _ in range(n_users)]
    targets = [rng.choice(n_items, size=rng.integers(0, 3)) for _ in range(n_users)]
    return table, histories, targets


def test_evaluate_scorer_batched_equals_single_batch():
    table, histories, targets = _setup()
    users = np.arange(len(table))
    seen_sizes = []

    def score_fn(u, h):
        assert len(u) == len(h)
        seen_sizes.append(len(u))
        return table[u]

    for exclude in (True, False):
        seen_sizes.clear()
        batched = evaluate_scorer(score_fn, users, histories, targets, 40, k=5, exclude_history=exclude, batch_size=7)
        assert max(seen_sizes) <= 7
        single = evaluate_scorer(score_fn, users, histories, targets, 40, k=5, exclude_history=exclude, batch_size=10_000)
        assert batched == single
        keep = [i for i, t in enumerate(targets) if len(t)]
        ref = ranking_metrics(
            top_k(table[keep], 5, [histories[i] for i in keep] if exclude else None), [targets[i] for i in keep], 40, 5
        )
        assert single == pytest.approx(ref, rel=1e-12)


def test_evaluate_scorer_excludes_history_and_skips_empty_targets():
    histories = [a(0), a(1), a(2)]
    targets = [a(1), a(), a(0)]
    scored_users = []

    def score_fn(u, h):  # history items score highest
        scored_users.extend(u.tolist())
        s = np.zeros((len(u), 4))
        for r, items in enumerate(h):
            s[r, items] = 1.0
        return s

    users = np.array([10, 11, 12])
    on = evaluate_scorer(score_fn, users, histories, targets, 4, k=1, exclude_history=True)
    assert scored_users == [10, 12]
    # With exclusion: u10 ranks item 1 (hit), u12 ranks item 0 (hit).
    assert on["HR@1"] == 1.0
    off = evaluate_scorer(score_fn, users, histories, targets, 4, k=1, exclude_history=False)
    assert off["HR@1"] == 0.0


def test_evaluate_scorer_validates_shapes():
    with pytest.raises(ValueError):
        evaluate_scorer(lambda u, h: np.zeros((len(u), 3)), np.arange(2), [a(), a()], [a(0), a(1)], 4, k=1,
                        exclude_history=False)
    with pytest.raises(ValueError):
        evaluate_scorer(lambda u, h: np.zeros((len(u), 4)), np.arange(3), [a(), a()], [a(0), a(1)], 4, k=1,
                        exclude_history=False)


def test_long_tail_items_and_share():
    from recsys.evaluation.metrics import long_tail_items, long_tail_share

    counts = np.array([5, 9, 1, 9, 0, 2, 3, 0, 0, 4])  # top 20% = 2 items: 1 and 3 (tie at 9, both in)
    tail = long_tail_items(counts)
    assert tail.tolist() == [True, False, True, False, True, True, True, True, True, True]
    assert long_tail_items(np.array([1, 1, 1, 1, 1]), 0.2).tolist() == [False, True, True, True, True]  # ties: lower id
    top = np.array([[1, 0, -1], [3, 2, 4]])
    assert long_tail_share(top, tail, k=3) == 3 / 5  # -1 (no item) is not a slot


def test_short_lists_leave_empty_slots_that_neither_hit_nor_count():
    from recsys.evaluation.metrics import ranking_metrics

    # user 0's list has two items (target 1 at rank 2), user 1's is empty (target 2 missed)
    got = ranking_metrics(np.array([[0, 1, -1], [-1, -1, -1]]), [np.array([1]), np.array([2])], num_items=4, k=3)
    assert got["HR@3"] == 0.5
    assert got["NDCG@3"] == pytest.approx(0.5 / np.log2(3))
    assert got["coverage@3"] == 2 / 4  # items 0 and 1; the empty slots are no item
    with pytest.raises(ValueError, match="must lie in"):
        ranking_metrics(np.array([[0, -2, 1]]), [np.array([1])], num_items=4, k=3)


# ----------------------------------------------------------------------------- user samples (issue 14)
def test_sample_rows_is_all_rows_unless_asked_for_fewer():
    from recsys.evaluation.metrics import sample_rows

    ids = [f"u{i}" for i in range(7)]
    assert sample_rows(ids, 0).tolist() == list(range(7))
    assert sample_rows(ids, 7).tolist() == list(range(7))
    assert sample_rows(ids, 50).tolist() == list(range(7))
    with pytest.raises(ValueError, match=">= 0"):
        sample_rows(ids, -1)


def test_sample_rows_draws_the_same_users_whatever_their_order():
    from recsys.evaluation.metrics import sample_rows

    ids = [f"u{i}" for i in range(1000)]
    pick = sample_rows(ids, 100, seed=3)
    assert len(pick) == 100 and len(set(pick.tolist())) == 100 and pick.tolist() == sorted(pick.tolist())
    chosen = {ids[i] for i in pick}
    shuffled = list(np.random.default_rng(0).permutation(ids))
    assert {shuffled[i] for i in sample_rows(shuffled, 100, seed=3)} == chosen  # order does not matter
    assert {ids[i] for i in sample_rows(ids, 100, seed=4)} != chosen  # the seed does
    # uniform: the 100 of 1,000 come from everywhere (the draw is not a prefix of the ids)
    assert pick.min() < 100 and pick.max() > 900


def test_confidence_half_widths_by_hand():
    """HR per user [1, 0, 1, 0] of a population of 8: s = sqrt(1/3), n = 4, fpc = sqrt(4/7)."""
    from recsys.evaluation.metrics import Z95, RankingAccumulator

    topk = np.array([[0, 1], [2, 3], [0, 1], [3, 2]])  # user 2 hits at rank 2
    targets = [a(0), a(4), a(1), a(5)]
    acc = RankingAccumulator(6, k=2)
    acc.update(topk, targets)
    ci = acc.confidence(8)
    assert set(ci) == {"HR@2 ci95", "Recall@2 ci95", "NDCG@2 ci95"}
    assert ci["HR@2 ci95"] == pytest.approx(Z95 * math.sqrt(1 / 3) / 2 * math.sqrt(4 / 7), rel=1e-12)
    assert ci["Recall@2 ci95"] == pytest.approx(ci["HR@2 ci95"], rel=1e-12)
    # NDCG per user [1, 0, 1/log2(3), 0]
    vals = np.array([1.0, 0.0, 1 / math.log2(3), 0.0])
    assert ci["NDCG@2 ci95"] == pytest.approx(Z95 * vals.std(ddof=1) / 2 * math.sqrt(4 / 7), rel=1e-12)
    assert acc.confidence(4)["HR@2 ci95"] == 0.0  # the whole population: no sampling error
    with pytest.raises(ValueError, match="population"):
        acc.confidence(3)
    assert ranking_metrics(topk, targets, 6, k=2, population=8)["HR@2 ci95"] == ci["HR@2 ci95"]
    assert "HR@2 ci95" not in ranking_metrics(topk, targets, 6, k=2)


def test_score_batch_size_keeps_a_block_within_its_budget():
    from recsys.evaluation.metrics import SCORE_BLOCK, score_batch_size

    assert score_batch_size(1_682) == score_batch_size(14_190) == 1024  # MovieLens, Instacart: as before
    assert score_batch_size(100_000) == 671 and score_batch_size(1_000_000) == 67
    assert score_batch_size(10 ** 9) == 1
    assert all(score_batch_size(n) * n <= SCORE_BLOCK for n in (65_537, 100_000, 1_000_000))
