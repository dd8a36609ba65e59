"""The graph retriever's losses as pure functions (hand-checked in ``tests/trainer/graph/test_losses.py``).

Shapes: B edges in the batch, M negatives per edge, K item neighbours, D width.
``softplus(-x) = -log sigmoid(x)``: binary cross-entropy with label 1 on logit x.
"""
from __future__ import annotations

import tensorflow as tf


def constraint_beta(user_degree, item_degree):
    """UltraGCN's constraint weight ``beta(u, i) = 1/d_u * sqrt((d_u + 1) / (d_i + 1))`` (degrees in one graph)."""
    du = tf.cast(user_degree, tf.float32)
    di = tf.cast(item_degree, tf.float32)
    return tf.math.divide_no_nan(1.0, du) * tf.sqrt((du + 1.0) / (di + 1.0))


def ultragcn_edge_loss(pos_logit, neg_logit, pos_beta, neg_beta, *, w1, w2, w3, w4, negative_weight):
    """Per-edge UltraGCN loss [B]: ``(w1 + w2 beta) BCE(pos, 1) + negative_weight * mean_M (w3 + w4 beta) BCE(neg, 0)``.

    pos_logit, pos_beta [B]; neg_logit, neg_beta [B, M].
    """
    pos = (w1 + w2 * pos_beta) * tf.nn.softplus(-pos_logit)
    neg = tf.reduce_mean((w3 + w4 * neg_beta) * tf.nn.softplus(neg_logit), axis=1)
    return pos + negative_weight * neg


def item_constraint_loss(user, neighbours, omega):
    """Per-edge item–item constraint [B]: ``sum_K omega(i, j) BCE(u . e_j, 1)`` over i's neighbours j.

    user [B, D]; neighbours [B, K, D]; omega [B, K] (0 where i has fewer than K neighbours).
    """
    return item_constraint_logit_loss(tf.einsum("bd,bkd->bk", user, neighbours), omega)


def item_constraint_logit_loss(logits, omega):
    """The item–item constraint from the logits ``u . e_j`` [B, K]: ``sum_K omega BCE(logit, 1)``."""
    return tf.reduce_sum(omega * tf.nn.softplus(-logits), axis=1)


def bpr_loss(pos_logit, neg_logit):
    """Per-edge BPR loss [B]: ``-log sigmoid(pos - neg)``."""
    return tf.nn.softplus(-(pos_logit - neg_logit))


def normalized_adjacency(user_index, item_index, num_users: int, num_items: int) -> tf.sparse.SparseTensor:
    """LightGCN's ``D^-1/2 A D^-1/2`` of the bipartite graph over nodes [users; items] (binary, no self-loops)."""
    import numpy as np

    pairs = np.unique(np.stack([np.asarray(user_index, np.int64), np.asarray(item_index, np.int64)], 1), axis=0)
    u, i = pairs[:, 0], pairs[:, 1] + num_users
    rows, cols = np.concatenate([u, i]), np.concatenate([i, u])
    n = num_users + num_items
    deg = np.bincount(rows, minlength=n).astype(np.float64)
    vals = 1.0 / np.sqrt(deg[rows] * deg[cols])
    order = np.lexsort((cols, rows))
    return tf.sparse.SparseTensor(np.stack([rows[order], cols[order]], 1), vals[order].astype(np.float32), [n, n])


def propagate(adjacency: tf.sparse.SparseTensor, embeddings, layers: int):
    """LightGCN: mean of ``embeddings`` and its ``layers`` propagations ``A_hat^k E`` (alpha_k = 1/(K+1))."""
    out, x = [embeddings], embeddings
    for _ in range(layers):
        x = tf.sparse.sparse_dense_matmul(adjacency, x)
        out.append(x)
    return tf.add_n(out) / float(layers + 1)
