"""The cost benchmark's graphs have MovieLens-100K's shape, scaled, with no duplicate edge."""
import numpy as np

from benchmarks.graph_epoch_cost import synthetic_graph


def test_synthetic_graph_has_movielens_shape_and_distinct_edges():
    g = synthetic_graph(1)
    assert (g.num_users, g.num_items) == (943, 1682)
    assert 80_000 <= len(g.edge_user) <= 110_000                     # ML-100K: 100,000 ratings
    assert np.bincount(g.edge_user).min() >= 20                      # every ML-100K user rated at least 20
    pairs = g.edge_user * g.num_items + g.edge_item
    assert len(np.unique(pairs)) == len(pairs)
    assert set(np.unique(g.edge_behaviour).tolist()) == {0, 1} and g.content.shape == (1682, 384)
    assert synthetic_graph(2).num_items == 2 * 1682
