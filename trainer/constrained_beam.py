"""Beam search over Semantic IDs, constrained to IDs that exist (and to items a request allows).

The generative head writes an item's Semantic ID code by code. Left alone it can
write a tuple no item has; here every step may only extend a beam with a code
that leads to at least one allowed item. The prefix trie is kept implicitly:
each beam carries the set of items still consistent with its prefix (a [N]
mask), so "children of this trie node" is one segment-max over the catalogue
and per-request exclusions (already-seen items) prune the trie for free.

Shapes: ``B`` requests, ``W`` beams, ``N`` items, ``T`` code positions,
``K_t`` codes at position ``t``.

``PrefixTrie`` is the plain-Python twin used to check results and answer
"which codes may follow this prefix" outside a graph.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf


class PrefixTrie:
    """The set of Semantic IDs as a trie (python side). ids int [N, T], rows unique."""

    def __init__(self, ids: np.ndarray | Sequence[Sequence[int]]):
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"ids must be [N, T] with T >= 1, got shape {ids.shape}")
        if len({tuple(r) for r in ids.tolist()}) != len(ids):
            raise ValueError("Semantic IDs must be unique to be decoded back to items")
        self.ids = ids
        self._children: dict[tuple[int, ...], set[int]] = {}
        self._leaf: dict[tuple[int, ...], int] = {}
        for n, row in enumerate(ids.tolist()):
            for t in range(len(row)):
                self._children.setdefault(tuple(row[:t]), set()).add(row[t])
            self._leaf[tuple(row)] = n

    def allowed_next(self, prefix: Sequence[int]) -> list[int]:
        """Codes that may follow ``prefix`` (sorted); [] for a prefix no ID has."""
        return sorted(self._children.get(tuple(int(c) for c in prefix), ()))

    def item_of(self, semantic_id: Sequence[int]) -> int | None:
        """Row index of the item with this full ID, or None."""
        return self._leaf.get(tuple(int(c) for c in semantic_id))


def level_sizes(ids: np.ndarray) -> tuple[int, ...]:
    """Vocabulary size of each code position, read off the data (max code + 1)."""
    ids = np.asarray(ids)
    return tuple(int(ids[:, t].max()) + 1 if len(ids) else 1 for t in range(ids.shape[1]))


StepFn = Callable[[tf.Tensor, int], tf.Tensor]
"""``step(prefix int32 [B, W, t], t) -> log-probabilities float32 [B, W, K_t]`` of the next code."""


def constrained_beam_search(step: StepFn, codes: tf.Tensor, allowed: tf.Tensor, sizes: Sequence[int],
                            beam_width: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Top ``beam_width`` allowed items per request by beam search over their codes.

    Args:
      step: the decoder, see ``StepFn``.
      codes: int32 [N, T], the Semantic ID of each item (unique rows).
      allowed: bool [B, N], the items each request may return.
      sizes: K_t for t in 0..T-1 (static).
      beam_width: W (static).

    Returns:
      items int32 [B, W] (row indices into ``codes``, -1 where fewer than W
      allowed items were reachable) and their log-likelihoods float32 [B, W]
      (Σ_t log P(c_t | c_<t), -inf for -1), best first.
    """
    codes = tf.cast(codes, tf.int32)
    batch = tf.shape(allowed)[0]
    consistent = tf.cast(allowed, tf.float32)[:, None, :]                    # [B, 1, N]
    beam_lp = tf.zeros([batch, 1], tf.float32)                               # [B, 1]
    prefix = tf.zeros([batch, 1, 0], tf.int32)                               # [B, 1, 0]
    neg_inf = tf.constant(-np.inf, tf.float32)
    width = 1
    for t, k in enumerate(sizes):
        log_probs = step(prefix, t)                                           # [B, w, K]
        # children of each beam's trie node: codes at position t of its consistent items
        present = tf.math.unsorted_segment_max(
            tf.transpose(consistent, [2, 0, 1]), codes[:, t], num_segments=k)  # [K, B, w]
        present = tf.transpose(present, [1, 2, 0]) > 0.0                       # [B, w, K]
        total = beam_lp[:, :, None] + tf.where(present, log_probs, neg_inf)   # [B, w, K]
        new_width = min(beam_width, width * k)
        top = tf.math.top_k(tf.reshape(total, [batch, width * k]), new_width)
        parent = top.indices // k                                             # [B, W']
        code = top.indices % k
        beam_lp = top.values
        prefix = tf.concat([tf.gather(prefix, parent, batch_dims=1), code[:, :, None]], axis=2)
        consistent = tf.gather(consistent, parent, batch_dims=1) * tf.cast(
            tf.equal(codes[None, None, :, t], code[:, :, None]), tf.float32)  # [B, W', N]
        width = new_width
    found = tf.logical_and(tf.reduce_max(consistent, axis=2) > 0.0, tf.math.is_finite(beam_lp))
    items = tf.where(found, tf.cast(tf.argmax(consistent, axis=2), tf.int32), -1)
    scores = tf.where(found, beam_lp, neg_inf)
    if width < beam_width:  # fewer complete IDs than beams: pad
        pad = beam_width - width
        items = tf.concat([items, tf.fill([batch, pad], -1)], axis=1)
        scores = tf.concat([scores, tf.fill([batch, pad], neg_inf)], axis=1)
    return items, scores
