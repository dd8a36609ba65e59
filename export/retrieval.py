"""Serving SavedModels for retrieval: raw item ids in, top-k item ids and scores out.

Two twins are exported from the same towers and catalogue:

* ``retrieval``: a ScaNN index inside the SavedModel (needs the ScaNN ops, i.e.
  a ScaNN-linked TF Serving build or our local server);
* ``retrieval_bruteforce``: exact dot-product top-k in plain TF ops, servable by
  stock TF Serving.

Signatures (the contract ``serving.client.RecommenderClient`` speaks):

* ``serving_default``: ``history`` string [B, L] ("" padding), ``k`` int32 [B],
  ``exclude`` string [B, E] ("" padding) → ``item_ids`` string [B, K],
  ``scores`` float32 [B, K], K = min(max(k), max_k, catalogue size).
* ``recommend_user``: ``user_id`` string [B], ``k``, ``exclude`` → same outputs,
  using each known user's latest history stored in the model.
* ``user_embedding``: ``history`` → ``embedding`` float32 [B, D].
* ``item_embedding``: ``item_id`` string [B] → ``embedding`` float32 [B, D].
* ``recommend_vector``: ``embedding`` float32 [B, D] (a query vector), ``k``, ``exclude`` → same
  outputs as ``recommend_user`` (the multi-stage client sends the feedback-updated user vector).
* ``user_vector``: ``user_id`` string [B] → ``embedding`` float32 [B, D], the query vector
  ``recommend_user`` uses.

Rows with fewer than K eligible items are padded with item id "" and score -inf.
Names are those of the contract module ``recsys.names``.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from recsys import names as N
from trainer.base import frozen_table

SCANN = "scann"
BRUTE_FORCE = "brute_force"
MIN_SCANN_ITEMS = 16


@dataclass(frozen=True)
class ScannParams:
    num_leaves: int
    num_leaves_to_search: int
    num_reordering_candidates: int


def string_table(keys, default: int) -> tf.lookup.StaticHashTable:
    """key → its position; unknown keys → ``default``."""
    keys = list(keys)
    values = list(range(len(keys)))
    if not keys:  # TF tables cannot be empty: one key no real id can take
        keys, values = ["\x00"], [default]
    keys = tf.constant(keys, dtype=tf.string)
    values = tf.constant(values, dtype=tf.int64)
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), default_value=default)


def excluded_positions(catalog_table: tf.lookup.StaticHashTable, exclude: tf.Tensor) -> tf.Tensor:
    """``[X, 2]`` int64 (row, catalogue position) of every known id in ``exclude`` [B, E] ("" and unknown ids skipped)."""
    pos = catalog_table.lookup(exclude)                                                    # [B, E]
    rows = tf.broadcast_to(tf.range(tf.shape(exclude, out_type=tf.int64)[0])[:, None], tf.shape(pos))
    hit = tf.where(pos >= 0)
    return tf.stack([tf.gather_nd(rows, hit), tf.gather_nd(pos, hit)], axis=1)


def mask_excluded(scores: tf.Tensor, catalog_table: tf.lookup.StaticHashTable, exclude: tf.Tensor,
                  value: float = -np.inf) -> tf.Tensor:
    """``scores`` [B, N] with ``value`` at the catalogue positions of ``exclude``'s ids (the one exclusion mask)."""
    idx = excluded_positions(catalog_table, exclude)
    return tf.tensor_scatter_nd_update(scores, idx, tf.fill([tf.shape(idx)[0]], tf.cast(value, scores.dtype)))


class RetrievalModule(tf.Module):
    """Item-id lookup → query tower → top-k over the catalogue (brute force or ScaNN)."""

    def __init__(self, towers, item_vocab: list[str], catalog_ids: np.ndarray, catalog_embeddings: np.ndarray,
                 user_ids: list[str], user_histories: list[list[str]], *, index: str, max_k: int = 100,
                 max_exclude: int = 200, max_history: int = 50, scann_params: ScannParams | None = None):
        super().__init__()
        if index not in (SCANN, BRUTE_FORCE):
            raise ValueError(f"index must be {SCANN!r} or {BRUTE_FORCE!r}, got {index!r}")
        if index == SCANN and len(catalog_ids) < MIN_SCANN_ITEMS:
            raise ValueError(f"ScaNN's asymmetric hashing needs at least {MIN_SCANN_ITEMS} catalogue items, got "
                             f"{len(catalog_ids)}; export this catalogue with index={BRUTE_FORCE!r}.")
        if len(catalog_ids) != len(catalog_embeddings):
            raise ValueError(f"{len(catalog_ids)} catalogue ids but {len(catalog_embeddings)} embeddings")
        self.towers = towers
        self.index_kind = index
        self.max_k = min(max_k, len(catalog_ids))
        self.max_exclude = max_exclude
        self.max_history = max_history
        self.pad = len(item_vocab) + 1
        self.item_table = string_table(item_vocab, default=len(item_vocab))
        self.catalog_table = string_table(catalog_ids, default=-1)
        self.catalog_ids = frozen_table(catalog_ids.astype(object).astype(bytes))
        self.catalog_embeddings = tf.Variable(catalog_embeddings.astype(np.float32), trainable=False)
        self.user_table = string_table(user_ids, default=len(user_ids))
        width = max([len(h) for h in user_histories] + [1])
        hist = np.full((len(user_ids) + 1, min(width, max_history)), b"", dtype=object)
        for i, h in enumerate(user_histories):
            tail = [x.encode() for x in h[-max_history:]]
            hist[i, : len(tail)] = tail
        self.user_histories = frozen_table(hist.astype(bytes))
        if index == SCANN:
            p = scann_params or default_scann_params(len(catalog_ids), self.max_k + max_exclude)
            self.scann = scann_layer(catalog_embeddings, catalog_ids, min(self.max_k + max_exclude, len(catalog_ids)), p)

    # -- building blocks ---------------------------------------------------------
    def _history_indices(self, history: tf.Tensor) -> tf.Tensor:
        """[B, L] strings → [B, max_history] item indices of the last items, right-padded."""
        rt = tf.RaggedTensor.from_tensor(history, padding="")
        idx = tf.ragged.map_flat_values(
            lambda v: tf.where(tf.equal(v, ""), tf.constant(self.pad, tf.int64), self.item_table.lookup(v)), rt)
        lengths = idx.row_lengths()
        start = tf.maximum(lengths - self.max_history, 0)
        tail = tf.RaggedTensor.from_row_lengths(
            tf.gather(idx.flat_values, tf.ragged.range(idx.row_starts() + start, idx.row_limits()).flat_values),
            lengths - start)
        return tf.cast(tail.to_tensor(default_value=self.pad, shape=[None, self.max_history]), tf.int32)

    def _query(self, history: tf.Tensor) -> tf.Tensor:
        return self.towers.query_embedding(history=self._history_indices(history))["embedding"]

    def _top_k(self, query: tf.Tensor, k: tf.Tensor, exclude: tf.Tensor) -> dict:
        kk = tf.clip_by_value(tf.reduce_max(k), 1, self.max_k)
        if self.index_kind == BRUTE_FORCE:
            scores = tf.matmul(query, self.catalog_embeddings, transpose_b=True)             # [B, N]
            scores = mask_excluded(scores, self.catalog_table, exclude)
            top = tf.math.top_k(scores, kk)
            ids = tf.gather(self.catalog_ids, top.indices)
            values = top.values
        else:
            cand_scores, cand_ids = self.scann(query)                                          # [B, K']
            excluded = tf.reduce_any(tf.equal(cand_ids[:, :, None], exclude[:, None, :]), axis=2)
            cand_scores = tf.where(excluded, tf.constant(-np.inf, tf.float32), cand_scores)
            top = tf.math.top_k(cand_scores, tf.minimum(kk, tf.shape(cand_scores)[1]))
            ids = tf.gather(cand_ids, top.indices, batch_dims=1)
            values = top.values
        ids = tf.where(tf.math.is_inf(values), tf.constant(b""), ids)
        return {N.ITEM_IDS: ids, N.SCORES: values}

    # -- signatures ----------------------------------------------------------------
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name=N.HISTORY),
                                  tf.TensorSpec([None], tf.int32, name=N.K),
                                  tf.TensorSpec([None, None], tf.string, name=N.EXCLUDE)])
    def recommend_history(self, history, k, exclude):
        return self._top_k(self._query(history), k, exclude)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=N.USER_ID),
                                  tf.TensorSpec([None], tf.int32, name=N.K),
                                  tf.TensorSpec([None, None], tf.string, name=N.EXCLUDE)])
    def recommend_user(self, user_id, k, exclude):
        history = tf.gather(self.user_histories, self.user_table.lookup(user_id))
        return self._top_k(self._query(history), k, exclude)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name=N.EMBEDDING),
                                  tf.TensorSpec([None], tf.int32, name=N.K),
                                  tf.TensorSpec([None, None], tf.string, name=N.EXCLUDE)])
    def recommend_vector(self, embedding, k, exclude):
        """Top-k for a query vector given by the caller (the client's feedback-updated user vector)."""
        return self._top_k(embedding, k, exclude)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=N.USER_ID)])
    def user_vector(self, user_id):
        """The query vector ``recommend_user`` uses for each user (unknown user: empty history's vector)."""
        return {N.EMBEDDING: self._query(tf.gather(self.user_histories, self.user_table.lookup(user_id)))}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name=N.HISTORY)])
    def user_embedding(self, history):
        return {N.EMBEDDING: self._query(history)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=N.ITEM_ID)])
    def item_embedding(self, item_id):
        pos = self.catalog_table.lookup(item_id)
        return {N.EMBEDDING: tf.gather(self.catalog_embeddings, tf.maximum(pos, 0))
                * tf.cast(pos >= 0, tf.float32)[:, None]}

    def signatures(self) -> dict:
        return {
            N.SERVING_DEFAULT: self.recommend_history,
            N.RECOMMEND_USER: self.recommend_user,
            N.RECOMMEND_VECTOR: self.recommend_vector,
            N.USER_VECTOR: self.user_vector,
            N.USER_EMBEDDING: self.user_embedding,
            N.ITEM_EMBEDDING: self.item_embedding,
        }


def scann_searcher(candidates, k: int, params: ScannParams, name: str = "scann"):
    """The raw ScaNN searcher (``scann_ops``) :func:`scann_layer` serves, built the same way: ``params.num_leaves``
    leaves trained from k-means++ (``random_init=False``, so every build of the same vectors is identical),
    asymmetric hashing, ``params.num_reordering_candidates`` re-scored exactly, ``k`` returned.

    ``num_leaves_to_search`` and the re-scored count are search-time defaults: ``search_batched`` overrides them
    per call (``leaves_to_search``, ``pre_reorder_num_neighbors``) on the same index, which is how
    ``export.twins.tune_scann`` tries a whole sweep on one build. TF never frees a built searcher (issue 14).
    """
    from scann.scann_ops.py import scann_ops

    n = int(candidates.shape[0])
    builder = scann_ops.builder(db=candidates, num_neighbors=k, distance_measure="dot_product")
    builder = builder.tree(num_leaves=params.num_leaves, num_leaves_to_search=params.num_leaves_to_search,
                           training_iterations=12, random_init=False)
    builder = builder.score_ah(dimensions_per_block=2).reorder(min(params.num_reordering_candidates, n))
    return builder.build(shared_name=f"{name}/{uuid.uuid4()}")


def scann_layer(embeddings: np.ndarray, ids: np.ndarray, k: int, params: ScannParams):
    """A TFRS ScaNN layer indexing ``embeddings`` (dot product), built **deterministically**.

    TFRS's layer trains its partitioning tree from a random k-means initialisation, so two
    builds with the same parameters differ, and the index the pipeline tuned would not be the
    index it exports. ScaNN's ``random_init=False`` (k-means++ from a fixed start) makes every
    build of the same vectors and parameters identical, across processes and thread counts,
    so the exported index is the tuned one. TFRS 0.7.7 does not expose that flag: the layer's
    searcher builder (``_build_searcher``) is replaced by one that sets it, everything else as TFRS.
    """
    import tensorflow_recommenders as tfrs

    n = len(ids)
    layer = tfrs.layers.factorized_top_k.ScaNN(
        k=k, distance_measure="dot_product", num_leaves=params.num_leaves,
        num_leaves_to_search=params.num_leaves_to_search,
        num_reordering_candidates=min(params.num_reordering_candidates, n))
    if not hasattr(layer, "_build_searcher"):
        raise RuntimeError("this tensorflow-recommenders has no ScaNN._build_searcher; pin 0.7.7")
    layer._build_searcher = lambda candidates: scann_searcher(candidates, k, params, name=layer.name)
    layer.index(tf.constant(embeddings, tf.float32), tf.constant(np.asarray(ids).astype(object).astype(bytes)))
    return layer


#: points a query's searched leaves hold at least (``default_scann_params``): with about sqrt(N) points per
#: leaf, 50,000 points are 5% of a million-item catalogue, half of 100,000 items, everything below 50,000
SCANN_MIN_POINTS_SEARCHED = 50_000
SCANN_MAX_LEAVES = 2000


def default_scann_params(num_items: int, k: int) -> ScannParams:
    """ScaNN settings for ``num_items`` catalogue vectors returning ``k`` candidates, when none are tuned.

    About sqrt(N) leaves (at most ``SCANN_MAX_LEAVES``); as many leaves searched as hold
    ``SCANN_MIN_POINTS_SEARCHED`` points on average (all of them for small catalogues, where a partial
    search loses neighbours for nothing); every returned candidate re-scored exactly (reorder >= k).
    ``benchmarks/scann_scale.py`` measures what this picks at 1.7k, 14k, 100k and 1M items: recall@10
    against brute force >= 0.95 on clustered 64-d vectors (README, "ScaNN at a million items").
    """
    leaves = int(np.clip(round(np.sqrt(num_items)), 1, SCANN_MAX_LEAVES))
    search = int(np.clip(int(np.ceil(SCANN_MIN_POINTS_SEARCHED * leaves / max(num_items, 1))), 1, leaves))
    return ScannParams(leaves, search, max(k, 200))


