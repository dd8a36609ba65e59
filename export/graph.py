"""Serving SavedModels of the graph retriever: ``graph_retrieval`` (ScaNN) and its brute-force twin.

The ``export.RetrievalModule`` contract over the trained graph's vectors, plus:

* ``recommend_user``: ``user_id`` [B], ``k``, ``exclude`` → the user's graph vector
  (trained on their training edges) against the catalogue; an unknown user gets the
  mean user vector;
* ``recommend_session``: ``user_id`` [B], ``recent_items`` string [B, R] ("" padded),
  ``session_weight`` float32 [B], ``k``, ``exclude``: **session shift**, the query is
  ``(1 - w) u/|u| + w m/|m|`` with ``m`` the mean *query* vector of the recent items
  (``query_vectors``: an item's own vector, the mean of its training users', or a blend, chosen on
  validation; unknown ids ignored; no known recent item → ``u`` alone). A negative weight means
  the model's default, chosen on validation (``default_session_weight``);
* ``user_vector``: ``user_id`` → ``embedding``;
* ``recommend_vector`` (from ``export.RetrievalModule``): a query vector → items, the same ``_top_k``
  as ``recommend_user`` (the client's feedback-updated user vector, ``serving.feedback``);
* ``serving_default`` / ``user_embedding`` (anonymous ``history``): the mean query vector of
  the history's last ``max_history`` known items;
* ``embed_content``: content embedding [B, Dc] → item vector (a new item with no
  edges, from the learned content map alone).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from export import retrieval as export
from recsys import names as N
from trainer.base import frozen_table


class HistoryMean(tf.Module):
    """History item indices [B, L] (pad = N + 1, OOV = N) → mean item vector [B, D] (zero when none known)."""

    def __init__(self, item_vectors: np.ndarray):
        super().__init__()
        n, d = item_vectors.shape
        table = np.zeros((n + 2, d), np.float32)
        table[:n] = item_vectors
        self.table = frozen_table(table)
        self.num_items = n

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="history")])
    def query_embedding(self, history):
        known = tf.cast(history < self.num_items, tf.float32)                      # [B, L]
        total = tf.reduce_sum(tf.gather(self.table, history) * known[..., None], axis=1)
        return {"embedding": total / tf.maximum(tf.reduce_sum(known, axis=1, keepdims=True), 1.0)}


class GraphRetrievalModule(export.RetrievalModule):
    def __init__(self, user_ids, user_vectors: np.ndarray, item_ids, item_vectors: np.ndarray,
                 query_vectors: np.ndarray, content_map: np.ndarray, content_scale: float,
                 default_session_weight: float, **kwargs):
        item_ids = np.asarray(item_ids, dtype=object)
        if np.shape(query_vectors) != np.shape(item_vectors):
            raise ValueError(f"query_vectors {np.shape(query_vectors)} must match item_vectors {np.shape(item_vectors)}")
        super().__init__(HistoryMean(query_vectors), item_ids.tolist(), item_ids, item_vectors, [], [], **kwargs)
        users = np.asarray(user_vectors, np.float32)
        mean_user = users.mean(axis=0, keepdims=True) if len(users) else np.zeros((1, item_vectors.shape[1]), np.float32)
        self.graph_users = frozen_table(np.concatenate([users, mean_user]))         # last row: unknown user
        self.graph_user_table = export.string_table([str(u) for u in np.asarray(user_ids).tolist()],
                                                    default=len(users))
        self.query_vectors = frozen_table(np.asarray(query_vectors, np.float32))
        self.item_lookup = export.string_table(item_ids.tolist(), default=-1)
        self.content_map = frozen_table(np.asarray(content_map, np.float32))
        self.content_scale = float(content_scale)
        self.default_session_weight = tf.constant(float(default_session_weight), tf.float32)

    def _user(self, user_id):
        return tf.gather(self.graph_users, self.graph_user_table.lookup(user_id))

    def _session_query(self, user_id, recent_items, session_weight):
        u = tf.math.l2_normalize(self._user(user_id), axis=1)
        pos = self.item_lookup.lookup(recent_items)                                 # [B, R]
        known = tf.cast(pos >= 0, tf.float32)
        m = tf.reduce_sum(tf.gather(self.query_vectors, tf.maximum(pos, 0)) * known[..., None], axis=1)
        has = tf.reduce_sum(known, axis=1, keepdims=True) > 0
        w = tf.where(session_weight < 0, self.default_session_weight, session_weight)[:, None]
        shifted = (1.0 - w) * u + w * tf.math.l2_normalize(m, axis=1)
        return tf.where(has, shifted, u)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=N.USER_ID),
                                  tf.TensorSpec([None], tf.int32, name=N.K),
                                  tf.TensorSpec([None, None], tf.string, name=N.EXCLUDE)])
    def recommend_user(self, user_id, k, exclude):
        return self._top_k(self._user(user_id), k, exclude)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=N.USER_ID),
                                  tf.TensorSpec([None, None], tf.string, name=N.RECENT_ITEMS),
                                  tf.TensorSpec([None], tf.float32, name=N.SESSION_WEIGHT),
                                  tf.TensorSpec([None], tf.int32, name=N.K),
                                  tf.TensorSpec([None, None], tf.string, name=N.EXCLUDE)])
    def recommend_session(self, user_id, recent_items, session_weight, k, exclude):
        return self._top_k(self._session_query(user_id, recent_items, session_weight), k, exclude)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=N.USER_ID)])
    def user_vector(self, user_id):
        return {N.EMBEDDING: self._user(user_id)}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name=N.CONTENT)])
    def embed_content(self, content):
        return {N.EMBEDDING: self.content_scale * (tf.math.l2_normalize(content, axis=-1) @ self.content_map)}

    def signatures(self) -> dict:
        sigs = super().signatures()
        sigs.update({N.RECOMMEND_USER: self.recommend_user, N.RECOMMEND_SESSION: self.recommend_session,
                     N.USER_VECTOR: self.user_vector})
        if self.content_map.shape[0]:
            sigs[N.EMBED_CONTENT] = self.embed_content
        return sigs
