"""``GraphModel``: user and item tables over the interaction graph, UltraGCN or LightGCN objective.

Item vector ``e_i = normalize(c_i) W + r_i`` with semantic initialisation (``W``
learned, ``r_i`` a free residual starting at zero; a new item is ``normalize(c) W``),
else a free table. Behaviour ``b`` scores ``s_b(u, i) = sum(e_u * rel_b * e_i)``;
``rel_purchase`` is fixed to ones, so the retrieval score is the plain dot product
``e_u . e_i`` (ScaNN's dot-product index) and only auxiliary behaviours learn a
relation. LightGCN propagates ``[users; items]`` over the normalised adjacency
before scoring (``final_vectors``).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from trainer.graph import losses
from trainer.graph.config import LIGHTGCN, ULTRAGCN, GraphConfig
from trainer.graph.data import GraphData


class GraphModel(tf.Module):
    def __init__(self, graph: GraphData, config: GraphConfig):
        super().__init__()
        self.config = config
        self.num_users, self.num_items = graph.num_users, graph.num_items
        d, rng = config.embedding_dim, np.random.default_rng(config.seed)
        self.semantic = config.semantic_init and graph.content is not None
        if config.semantic_init and graph.content is None:
            raise ValueError("semantic_init needs content embeddings")
        if self.semantic:
            content = graph.content / np.maximum(np.linalg.norm(graph.content, axis=1, keepdims=True), 1e-8)
            self.content = tf.constant(content.astype(np.float32, copy=False))
            w = rng.normal(0.0, config.init_std * np.sqrt(content.shape[1]), (content.shape[1], d))
            self.content_map = tf.Variable(w.astype(np.float32), name="content_map")
            self.item_residual = tf.Variable(tf.zeros([self.num_items, d]), name="item_residual")
            # [N, d] in row blocks: float32 content @ float64 w casts its operand, 4 GB at once for 1M x 512
            start = np.concatenate([content[s:s + 65536] @ w for s in range(0, len(content), 65536)]
                                   or [np.zeros((0, d))])
            users = np.zeros((self.num_users, d))
            for u, items in enumerate(graph.user_items()):
                if len(items):
                    users[u] = start[items].mean(axis=0)
            self.user_table = tf.Variable(users.astype(np.float32), name="user_table")
        else:
            self.item_residual = tf.Variable(rng.normal(0, config.init_std, (self.num_items, d)).astype(np.float32),
                                             name="item_residual")
            self.user_table = tf.Variable(rng.normal(0, config.init_std, (self.num_users, d)).astype(np.float32),
                                          name="user_table")
        nb = len(graph.behaviours)
        self.target = graph.target
        # the target's relation stays ones; without target alignment every behaviour's does
        self.relation = tf.Variable(tf.ones([nb, d]), name="relation", trainable=config.target_aligned)
        self.relation_mask = tf.constant(np.array([[1.0] if b != graph.target and config.target_aligned else [0.0]
                                                   for b in range(nb)], np.float32))
        # UltraGCN with semantic initialisation: build the whole item table each step only while that is cheaper.
        # Multiply-adds per step, forward and backward: the table 2 N Dc D; the per-batch path 6 B D Dc (two
        # [B, D] x [D, Dc] products) + 3 B K Dc (neighbours) + 3 M D Dc (negatives' vectors), so the table
        # wins while N <= 3 B + 1.5 B K / D + 1.5 M (about 3,500 items at the defaults; measured: 26 ms a step
        # for the table at 1,682 items, 52 ms for the per-batch path at 6,728, benchmarks/graph_epoch_cost.py)
        m = config.negatives if config.shared_negatives else config.batch_size * config.negatives
        b, k = config.batch_size, config.neighbours
        self.full_table = self.num_items <= 3 * b + 1.5 * b * k / config.embedding_dim + 1.5 * m
        if config.variant == LIGHTGCN:
            self.adjacency = losses.normalized_adjacency(graph.edge_user, graph.edge_item, self.num_users,
                                                         self.num_items)

    # -- vectors ------------------------------------------------------------------------------------
    def items(self, idx=None):
        """Layer-0 item vectors [N, D] (or of ``idx``)."""
        if idx is None:
            return (self.content @ self.content_map + self.item_residual) if self.semantic else self.item_residual
        res = tf.gather(self.item_residual, idx)
        return tf.gather(self.content, idx) @ self.content_map + res if self.semantic else res

    def rel(self, behaviour):
        r = tf.gather(self.relation, behaviour)
        m = tf.gather(self.relation_mask, behaviour)
        return m * r + (1.0 - m)

    def final_vectors(self):
        """(users [U, D], items [N, D]) as served: LightGCN propagates, UltraGCN uses the tables."""
        users, items = self.user_table, self.items()
        if self.config.variant == LIGHTGCN:
            out = losses.propagate(self.adjacency, tf.concat([users, items], 0), self.config.layers)
            return out[: self.num_users], out[self.num_users:]
        return users, items

    def content_vectors(self, content):
        """Cold-start item vectors from raw content [M, Dc] (as a never-seen catalogue item would get)."""
        if not self.semantic:
            raise ValueError("this model has no content map (trained without semantic initialisation)")
        scale = 1.0 / (self.config.layers + 1) if self.config.variant == LIGHTGCN else 1.0
        return scale * (tf.math.l2_normalize(content, axis=-1) @ self.content_map)

    def l2(self):
        """Half the squared norm of the tables and the content map (relations are not pulled toward zero)."""
        return 0.5 * tf.add_n([tf.reduce_sum(tf.square(v)) for v in self.trainable_variables
                               if v is not self.relation])

    # -- losses -------------------------------------------------------------------------------------
    def _table_dots(self, table):
        """``_dots`` over a built item table [N, D] (the content map applied to the whole catalogue once)."""
        def dots(q, _q_content, idx):
            eq = "bd,bd->b" if idx.shape.rank == 1 else "bd,bkd->bk"
            return tf.einsum(eq, q, tf.gather(table, idx))
        return dots

    def _dots(self, q, q_content, idx):
        """``q[b] . e_idx[b, ...]`` for idx [B] or [B, K] without building item vectors: with semantic
        initialisation ``e_i = c_i W + r_i``, so ``q . e_i = (q W^T) . c_i + q . r_i`` (``q_content = q W^T``)."""
        eq = "bd,bd->b" if idx.shape.rank == 1 else "bd,bkd->bk"
        out = tf.einsum(eq, q, tf.gather(self.item_residual, idx))
        if self.semantic:
            out += tf.einsum(eq, q_content, tf.gather(self.content, idx))
        return out

    def ultragcn_loss(self, batch: dict):
        """With semantic initialisation on a large catalogue (``self.full_table`` False) a step costs
        O(B D Dc + B K Dc + M D Dc) whatever the catalogue size: scores against positives and neighbours go
        through ``_dots`` and only the negatives' vectors are built. On a small catalogue building every
        item vector once per step (O(N D Dc)) is cheaper; both compute the same loss."""
        c = self.config
        u = tf.gather(self.user_table, batch["user"])                                 # [B, D]
        ur = u * self.rel(batch["behaviour"])                                         # [B, D]
        if self.full_table or not self.semantic:
            table = self.items()
            dots, to_content, vectors = self._table_dots(table), (lambda q: None), (lambda idx: tf.gather(table, idx))
        else:
            dots, vectors = self._dots, self.items
            to_content = lambda q: tf.matmul(q, self.content_map, transpose_b=True)  # noqa: E731
        ur_c = to_content(ur)                                                         # [B, Dc]
        pos = dots(ur, ur_c, batch["item"])                                           # [B]
        negatives = batch["negatives"]
        if negatives.shape.rank == 1:  # one negative set [M] shared by the batch: one matmul
            neg = tf.matmul(ur, vectors(negatives), transpose_b=True)                 # [B, M]
        else:                          # per-edge negatives [B, M]
            neg = dots(ur, ur_c, negatives)                                           # [B, M]
        edge = losses.ultragcn_edge_loss(pos, neg, batch["pos_beta"], batch["neg_beta"], w1=c.w1, w2=c.w2, w3=c.w3,
                                         w4=c.w4, negative_weight=c.negative_weight)
        if c.item_weight > 0:
            logits = dots(u, to_content(u), tf.maximum(batch["neighbours"], 0))       # [B, K]
            edge += c.item_weight * losses.item_constraint_logit_loss(logits, batch["omega"])
        return tf.reduce_sum(batch["weight"] * edge) + c.l2 * (self.l2() if c.l2_scope == "all" else
                                                                self.batch_l2(u, batch["item"], negatives))

    def batch_l2(self, users, items, negatives):
        """Half the squared norm of the rows a step touches (its users, positive and negative items' residuals,
        each as often as it occurs) and the content map: O(batch) per step, where ``l2`` is O(users + items)."""
        parts = [users, tf.gather(self.item_residual, items), tf.gather(self.item_residual, negatives)]
        if self.semantic:
            parts.append(self.content_map)
        return 0.5 * tf.add_n([tf.reduce_sum(tf.square(p)) for p in parts])

    def lightgcn_loss(self, batch: dict):
        c = self.config
        users, items = self.final_vectors()
        u = tf.gather(users, batch["user"])
        pos = tf.reduce_sum(u * tf.gather(items, batch["item"]), axis=1)
        neg = tf.reduce_sum(u * tf.gather(items, batch["negatives"][:, 0]), axis=1)
        reg = (tf.reduce_sum(tf.square(tf.gather(self.user_table, batch["user"])))
               + tf.reduce_sum(tf.square(self.items(batch["item"])))
               + tf.reduce_sum(tf.square(self.items(batch["negatives"][:, 0])))) / 2.0
        n = tf.cast(tf.shape(pos)[0], tf.float32)
        return tf.reduce_sum(batch["weight"] * losses.bpr_loss(pos, neg)) / n + c.l2 * reg / n

    def loss(self, batch: dict):
        return self.ultragcn_loss(batch) if self.config.variant == ULTRAGCN else self.lightgcn_loss(batch)
