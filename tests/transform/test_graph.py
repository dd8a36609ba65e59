"""Exact tests of the interaction graph: events, edges, recency, item neighbours (UltraGCN omega), stats, Beam."""
import math

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from recsys import features as F
from recsys.names import LEAVE_LAST_ORDER_OUT, LEAVE_ONE_OUT
from transform import graph as G
from transform.sequences import Event, build_user_rows, to_example


def _rows(user, events, protocol):
    return [r for s, r in build_user_rows(user, events, {}, protocol) if s == F.TRAIN]


def _ev(t, item, kind, order=""):
    return Event(t, item, kind, order, t)


# u1: orders o1 {a click, b purchase}, o2 {a purchase}, o3 {c purchase}, o4 {d click} (eval), o5 {a} (test)
U1 = [_ev(1, "a", "click", "o1"), _ev(2, "b", "purchase", "o1"), _ev(3, "a", "purchase", "o2"),
      _ev(4, "c", "purchase", "o3"), _ev(5, "d", "click", "o4"), _ev(6, "a", "purchase", "o5")]


def test_training_events_are_first_unit_plus_training_targets_never_eval_or_test():
    rows = _rows("u1", U1, LEAVE_LAST_ORDER_OUT)
    events = G.user_training_events(reversed(rows))  # any row order
    assert events == [G.TrainingEvent("a", "click", 0), G.TrainingEvent("b", "purchase", 0),
                      G.TrainingEvent("a", "purchase", 1), G.TrainingEvent("c", "purchase", 2)]


def test_training_events_fold_per_user_in_any_partition():
    """The Beam combine's accumulators, merged in any grouping, give the events of the whole user."""
    rows = _rows("u1", U1, LEAVE_LAST_ORDER_OUT)
    whole = G.user_training_events(rows)
    fn = G._training_events_fn()
    for cut in range(len(rows) + 1):
        parts = [fn.create_accumulator(), fn.create_accumulator()]
        for k, r in enumerate(reversed(rows)):
            fn.add_input(parts[k < cut], (*G._row_targets(r)[:3], to_example(r, F.SEQUENCE_FEATURES)
                                          .SerializeToString()))
        assert fn.extract_output(fn.merge_accumulators(parts)) == whole, cut
    assert fn.extract_output(fn.create_accumulator()) == []


def test_edges_per_behaviour_with_counts_and_recency():
    events = [G.TrainingEvent("a", "click", 0), G.TrainingEvent("a", "click", 2), G.TrainingEvent("a", "purchase", 2),
              G.TrainingEvent("b", "purchase", 1)]
    edges = G.user_edges("u", events, half_life=2.0)
    # age = last order (2) - order of the event; recency = 2^(-age / 2)
    assert edges == [G.Edge("u", "a", "click", 2, 0.5 + 1.0), G.Edge("u", "a", "purchase", 1, 1.0),
                     G.Edge("u", "b", "purchase", 1, 2 ** -0.5)]
    with pytest.raises(ValueError, match="not an interaction"):
        G.user_edges("u", [G.TrainingEvent("a", "impression", 0)])


def test_groups_are_baskets_on_basket_data_and_the_user_otherwise():
    events = [G.TrainingEvent("b", "purchase", 0), G.TrainingEvent("a", "click", 0), G.TrainingEvent("a", "purchase", 1)]
    assert G.interaction_groups(events, LEAVE_LAST_ORDER_OUT) == [["a", "b"], ["a"]]
    assert G.interaction_groups(events, LEAVE_ONE_OUT) == [["a", "b"]]


def test_item_neighbours_are_ultragcn_omega_computed_by_hand():
    # groups {0,1,2}, {0,1}, {1,3}: G = BᵀB
    g = G.cooccurrence([[0, 1, 2], [0, 1], [1, 3], [1, 1]], 5)  # the repeated 1 counts once
    dense = g.toarray()
    expected = np.array([[2, 2, 1, 0, 0], [2, 4, 1, 1, 0], [1, 1, 1, 0, 0], [0, 1, 0, 1, 0], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(dense, expected)
    deg = expected.sum(1)  # g = [5, 8, 3, 2, 0]
    got = {i: (n.tolist(), w.tolist()) for i, n, w in G.item_neighbours(g, k=2)}
    assert set(got) == {0, 1, 2, 3}  # item 4 has no co-interactions
    # item 0: omega(0,1) = 2/(5-2) * sqrt(5/8), omega(0,2) = 1/3 * sqrt(5/3)
    w01, w02 = 2 / 3 * math.sqrt(5 / 8), 1 / 3 * math.sqrt(5 / 3)
    assert got[0][0] == [1, 2] and np.allclose(got[0][1], [w01, w02])
    # item 1: omega(1,0) = 2/4*sqrt(8/5), omega(1,2) = 1/4*sqrt(8/3), omega(1,3) = 1/4*sqrt(8/2); top 2
    w = {0: 2 / 4 * math.sqrt(8 / 5), 2: 1 / 4 * math.sqrt(8 / 3), 3: 1 / 4 * math.sqrt(8 / 2)}
    assert w[0] > w[3] > w[2]
    assert got[1][0] == [0, 3] and np.allclose(got[1][1], [w[0], w[3]])
    assert got[3][0] == [1] and np.allclose(got[3][1], [1 / 1 * math.sqrt(2 / 8)])
    assert deg.tolist() == [5, 8, 3, 2, 0]


def test_neighbour_ties_go_to_the_lower_item():
    g = G.cooccurrence([[0, 2], [0, 1]], 3)  # items 1 and 2 tie for item 0
    (i, n, _), *_ = G.item_neighbours(g, k=1)
    assert i == 0 and n.tolist() == [1]


def test_stats_count_edges_degrees_and_items_without_purchase():
    edges = [G.Edge("u1", "a", "click", 1, 1.0), G.Edge("u1", "a", "purchase", 1, 1.0),
             G.Edge("u2", "b", "click", 3, 1.0)]
    s = G.graph_stats(edges, num_catalog_items=4)
    assert s["edges"] == {"click": 2, "purchase": 1}
    assert s["users"] == 2 and s["items_with_edges"] == 2
    assert s["user_degree"]["click"] == {"n": 2, "mean": 1.0, "median": 1.0, "p90": 1.0, "max": 1, "min": 1}
    assert s["users_without_purchase_edge"] == 0.5
    assert s["catalog_items_without_purchase_edge"] == 0.75
    assert "without a purchase edge: 50.0% of users, 75.0% of catalogue items" in G.format_stats(s)


def test_beam_graph_equals_the_pure_functions():
    u2 = [_ev(1, "b", "purchase", "x1"), _ev(2, "c", "click", "x1"), _ev(3, "b", "purchase", "x2"),
          _ev(4, "a", "purchase", "x3"), _ev(5, "c", "purchase", "x4")]
    serialized = [to_example(r, F.SEQUENCE_FEATURES).SerializeToString()
                  for user, evs in (("u1", U1), ("u2", u2)) for r in _rows(user, evs, LEAVE_LAST_ORDER_OUT)]
    items = ["a", "b", "c", "d"]
    ev1 = G.user_training_events(_rows("u1", U1, LEAVE_LAST_ORDER_OUT))
    ev2 = G.user_training_events(_rows("u2", u2, LEAVE_LAST_ORDER_OUT))
    expected_edges = [G.edge_example(e) for e in G.user_edges("u1", ev1) + G.user_edges("u2", ev2)]
    pos = {i: n for n, i in enumerate(items)}
    groups = [[pos[i] for i in g] for ev in (ev1, ev2) for g in G.interaction_groups(ev, LEAVE_LAST_ORDER_OUT)]
    expected_nbrs = [G.neighbour_example(items[i], [items[j] for j in n], w)
                     for i, n, w in G.item_neighbours(G.cooccurrence(groups, 4), 10)]
    assert len(expected_nbrs) == 3  # a, b, c co-occur in baskets; d is only an eval target
    expected_stats = G.graph_stats(G.user_edges("u1", ev1) + G.user_edges("u2", ev2), 4)
    with test_pipeline.TestPipeline() as p:  # row_block=3: G's rows in two blocks, {a, b, c} and {d}
        out = p | beam.Create(serialized) | G.BuildGraph(items, LEAVE_LAST_ORDER_OUT, group_batch=2, row_block=3)
        assert_that(out[F.EDGES] | "e" >> beam.Map(_canon), equal_to([_canon(e) for e in expected_edges]),
                    label="edges")
        assert_that(out[F.ITEM_NEIGHBOURS] | "n" >> beam.Map(_canon), equal_to([_canon(n) for n in expected_nbrs]),
                    label="neighbours")
        assert_that(out["stats"], equal_to([expected_stats]), label="stats")


def test_neighbours_of_row_blocks_are_those_of_the_whole_matrix():
    rng = np.random.default_rng(0)
    groups = [sorted(set(rng.integers(0, 30, rng.integers(1, 8)).tolist())) for _ in range(60)]
    g = G.cooccurrence(groups, 30)
    whole = G.item_neighbours(g, k=4)
    deg = G.row_sums(g)
    counts = G.cooccurrence(groups, 30, np.int32)
    blocks = list(G.row_blocks(counts, 7))
    assert [b for b, _ in blocks] == [0, 1, 2, 3, 4] and blocks[-1][1].shape == (2, 30)
    got = [row for b, m in blocks for row in G.item_neighbours(m, k=4, deg=deg, row_offset=7 * b)]
    assert [i for i, _, _ in got] == [i for i, _, _ in whole]
    for (_, n1, w1), (_, n2, w2) in zip(got, whole):
        assert n1.tolist() == n2.tolist() and w1.tolist() == w2.tolist()  # the same float64 arithmetic
    with pytest.raises(ValueError, match="needs deg"):
        G.item_neighbours(blocks[0][1], k=4)
    assert list(G.row_blocks(G.cooccurrence([[0, 1]], 10), 4)) != [] and len(list(G.row_blocks(
        G.cooccurrence([[0, 1]], 10), 4))) == 1  # blocks without an entry are skipped


def test_sparse_sum_adds_in_rounds_and_equals_the_plain_sum():
    import scipy.sparse as sp

    rng = np.random.default_rng(1)
    mats = [(sp.random(1000, 1000, density=0.001, format="csr", random_state=s) > 0).astype(np.int32)
            + sp.eye(1000, dtype=np.int32, format="csr") for s in range(50)]  # the diagonal in every input
    plain = sum(m.toarray() for m in mats)
    np.testing.assert_array_equal(G.sum_sparse(mats).toarray(), plain)
    fn = G._SumSparse(min_round=30)
    rounds = 0
    acc = fn.create_accumulator()
    for m in mats:
        before = acc[0]
        acc = fn.add_input(acc, m)
        rounds += acc[0] is not before
    assert 3 <= rounds <= 8  # summed in rounds (each doubling the sum), not once per input
    half = fn.add_input(fn.create_accumulator(), mats[0])
    merged = fn.merge_accumulators([acc, half, fn.create_accumulator()])
    np.testing.assert_array_equal(fn.extract_output(merged).toarray(), plain + mats[0].toarray())
    order = rng.permutation(len(mats))
    acc2 = fn.create_accumulator()
    for i in order:
        acc2 = fn.add_input(acc2, mats[i])
    np.testing.assert_array_equal(fn.extract_output(acc2).toarray(), plain)


def test_degree_summary_of_a_histogram_equals_that_of_the_list():
    degrees = [1, 1, 2, 5, 5, 5, 9]
    assert G.degree_summary({1: 2, 2: 1, 5: 3, 9: 1}) == G.degree_summary(degrees)
    assert G.degree_summary({}) == {"n": 0}


def _canon(serialized: bytes):
    """A tf.Example as a comparable tuple (serialized map order is not canonical)."""
    import tensorflow as tf

    feats = tf.train.Example.FromString(serialized).features.feature
    return tuple(sorted((k, tuple(v.bytes_list.value) + tuple(v.int64_list.value)
                         + tuple(round(x, 5) for x in v.float_list.value)) for k, v in feats.items()))
