"""The graph losses against values computed by hand."""
import math

import numpy as np
import tensorflow as tf

from trainer.graph import losses


def sp(x):  # softplus
    return math.log1p(math.exp(x))


def test_constraint_beta():
    beta = losses.constraint_beta(tf.constant([2.0, 0.0]), tf.constant([3.0, 1.0])).numpy()
    assert np.allclose(beta, [1 / 2 * math.sqrt(3 / 4), 0.0])  # a user without edges weighs nothing


def test_ultragcn_edge_loss_by_hand():
    got = losses.ultragcn_edge_loss(tf.constant([0.5]), tf.constant([[1.0, -2.0]]), tf.constant([0.25]),
                                    tf.constant([[0.5, 1.0]]), w1=1.0, w2=2.0, w3=0.1, w4=1.0,
                                    negative_weight=3.0).numpy()
    pos = (1.0 + 2.0 * 0.25) * sp(-0.5)
    neg = ((0.1 + 0.5) * sp(1.0) + (0.1 + 1.0) * sp(-2.0)) / 2
    assert np.allclose(got, [pos + 3.0 * neg])


def test_item_constraint_by_hand():
    user = tf.constant([[1.0, 0.0]])
    nbrs = tf.constant([[[2.0, 5.0], [-1.0, 0.0]]])
    got = losses.item_constraint_loss(user, nbrs, tf.constant([[0.5, 0.0]])).numpy()  # 2nd neighbour padded
    assert np.allclose(got, [0.5 * sp(-2.0)])


def test_bpr_by_hand():
    assert np.allclose(losses.bpr_loss(tf.constant([2.0]), tf.constant([0.5])).numpy(), [sp(-1.5)])


def test_lightgcn_adjacency_and_propagation_by_hand():
    # users 0,1; items 0,1 (nodes 2,3); edges u0-i0, u0-i1, u1-i1 (a duplicate edge counts once)
    a = losses.normalized_adjacency([0, 0, 1, 1], [0, 1, 1, 1], 2, 2)
    dense = tf.sparse.to_dense(a).numpy()
    deg = np.array([2, 1, 1, 2], float)
    expected = np.zeros((4, 4))
    for u, i in ((0, 2), (0, 3), (1, 3)):
        expected[u, i] = expected[i, u] = 1 / math.sqrt(deg[u] * deg[i])
    assert np.allclose(dense, expected)
    e = np.eye(4, dtype=np.float32)
    out = losses.propagate(a, tf.constant(e), layers=2).numpy()
    assert np.allclose(out, (e + expected @ e + expected @ expected @ e) / 3, atol=1e-6)
