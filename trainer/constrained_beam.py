"""Beam search over Semantic IDs, constrained to IDs that exist (and to items a request allows).

The generative head writes an item's Semantic ID code by code. Left alone it can
write a tuple no item has; here every step may only extend a beam with a code
that leads to at least one allowed item.

The prefix trie is held as arrays over the IDs in lexicographic order
(``CodeTrie``): the items under a prefix are one contiguous range of sorted
positions, so a beam carries only its node's index, a child's range is two
binary searches, and "does this child still lead to an allowed item" is a
difference of one prefix sum per request over the allowed items in sorted
order. One call costs O(B·N) memory for those sums and O(B·W·K_t·log N) per
step, where the first version (``masked_beam_search``, kept as the reference
and for ``benchmarks/constrained_beam_scale.py``) kept a [B, W, N] mask, 20 GB
for 256 requests and 20 beams at 1M items (issue 14). Both return the same
items and scores.

Shapes: ``B`` requests, ``W`` beams, ``N`` items, ``T`` code positions,
``K_t`` codes at position ``t``.

``PrefixTrie`` is the plain-Python twin used to check results and answer
"which codes may follow this prefix" outside a graph.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np
import tensorflow as tf


class PrefixTrie:
    """The set of Semantic IDs as a trie (python side). ids int [N, T], rows unique."""

    def __init__(self, ids: np.ndarray | Sequence[Sequence[int]]):
        ids = _check_ids(ids)
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


def _check_ids(ids) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"ids must be [N, T] with T >= 1, got shape {ids.shape}")
    return ids


def level_sizes(ids: np.ndarray) -> tuple[int, ...]:
    """Vocabulary size of each code position, read off the data (max code + 1)."""
    ids = np.asarray(ids)
    return tuple(int(ids[:, t].max()) + 1 if len(ids) else 1 for t in range(ids.shape[1]))


class CodeTrie(NamedTuple):
    """The trie of N unique Semantic IDs as arrays over the IDs in lexicographic order (``code_trie``).

    A prefix of length t is a node ``node_t``, the distinct length-t prefixes numbered 0, 1, ... in sorted
    order; ``node_0 = 0`` is the root and ``node_T`` is the sorted position (the IDs are unique).

    order: int [N], the item at each sorted position.
    keys: int64 [T, N], ``keys[t, n] = node_t(n) * K_t + code_t(n)``, non-decreasing in n: the rows under
      child ``c`` of node ``p`` at position t are ``searchsorted(keys[t], p * K_t + c)``, left to right.
    children: int [T, N], ``node_{t+1}(n)``.
    sizes: K_t (static).
    """

    order: np.ndarray | tf.Tensor
    keys: np.ndarray | tf.Tensor
    children: np.ndarray | tf.Tensor
    sizes: tuple[int, ...]


def code_trie(ids: np.ndarray | Sequence[Sequence[int]], sizes: Sequence[int] | None = None) -> CodeTrie:
    """``CodeTrie`` (numpy arrays) of ids int [N, T]; ``sizes`` K_t (default ``level_sizes(ids)``)."""
    ids = _check_ids(ids)
    sizes = tuple(int(k) for k in (level_sizes(ids) if sizes is None else sizes))
    if len(sizes) != ids.shape[1] or (len(ids) and np.any(ids.max(axis=0) >= np.array(sizes))) or np.any(ids < 0):
        raise ValueError(f"codes must lie in 0..K_t - 1 for sizes {sizes}")
    order = np.lexsort(ids.T[::-1])                      # by code 0, then code 1, ...
    rows = ids[order]
    node = np.zeros(len(ids), np.int64)
    keys, children = [], []
    for t, k in enumerate(sizes):
        key = node * k + rows[:, t]
        node = np.concatenate([[0], np.cumsum(key[1:] != key[:-1])]).astype(np.int64) if len(ids) else node
        keys.append(key)
        children.append(node)
    if len(ids) and node[-1] != len(ids) - 1:
        shared = np.nonzero(key[1:] == key[:-1])[0]
        first = sorted(order[shared[0]:shared[0] + 2].tolist())
        raise ValueError(f"Semantic IDs must be unique to be decoded back to items: {len(ids) - 1 - int(node[-1]):,} "
                         f"of {len(ids):,} items repeat another's (items {first[0]} and {first[1]}: "
                         f"{rows[shared[0]].tolist()}); give them a disambiguating last code")
    return CodeTrie(order.astype(np.int32), np.stack(keys), np.stack(children).astype(np.int32), sizes)


StepFn = Callable[[tf.Tensor, int], tf.Tensor]
"""``step(prefix int32 [B, W, t], t) -> log-probabilities float32 [B, W, K_t]`` of the next code."""


def constrained_beam_search(step: StepFn, trie: CodeTrie, allowed: tf.Tensor,
                            beam_width: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Top ``beam_width`` allowed items per request by beam search over their codes.

    Args:
      step: the decoder, see ``StepFn``.
      trie: the catalogue's ``CodeTrie`` (numpy arrays or tensors).
      allowed: bool [B, N], the items each request may return.
      beam_width: W (static).

    Returns:
      items int32 [B, W] (row indices into the catalogue, -1 where fewer than W
      allowed items were reachable) and their log-likelihoods float32 [B, W]
      (Σ_t log P(c_t | c_<t), -inf for -1), best first.
    """
    order = tf.cast(trie.order, tf.int32)
    keys = tf.cast(trie.keys, tf.int64)
    children = tf.cast(trie.children, tf.int32)
    batch = tf.shape(allowed)[0]
    last = tf.shape(order)[0] - 1
    # allowed rows before each sorted position: a child's allowed items are below[hi] - below[lo]
    below = tf.pad(tf.cumsum(tf.cast(tf.gather(allowed, order, axis=1), tf.int32), axis=1), [[0, 0], [1, 0]])
    node = tf.zeros([batch, 1], tf.int64)                                    # [B, 1], the root
    beam_lp = tf.zeros([batch, 1], tf.float32)                               # [B, 1]
    prefix = tf.zeros([batch, 1, 0], tf.int32)                               # [B, 1, 0]
    neg_inf = tf.constant(-np.inf, tf.float32)
    width = 1
    for t, k in enumerate(trie.sizes):
        log_probs = step(prefix, t)                                           # [B, w, K]
        child = node[:, :, None] * k + tf.range(k, dtype=tf.int64)           # [B, w, K]
        query = tf.reshape(child, [1, -1])
        lo = tf.reshape(tf.searchsorted(keys[t][None], query, side="left"), [batch, width * k])
        hi = tf.reshape(tf.searchsorted(keys[t][None], query, side="right"), [batch, width * k])
        present = tf.gather(below, hi, batch_dims=1) > tf.gather(below, lo, batch_dims=1)
        total = beam_lp[:, :, None] + tf.where(tf.reshape(present, [batch, width, k]), log_probs, neg_inf)
        top, _, _, prefix = _best_children(total, prefix, width, k, beam_width)  # [B, W'], prefix [B, W', t+1]
        beam_lp, new_width = top.values, min(beam_width, width * k)
        # a chosen child's first row names its node; a child with no rows only carries -inf from here on
        first = tf.minimum(tf.gather(lo, top.indices, batch_dims=1), last)
        node = tf.cast(tf.gather(children[t], first), tf.int64)
        width = new_width
    found = tf.math.is_finite(beam_lp)
    items = tf.where(found, tf.gather(order, tf.cast(node, tf.int32)), -1)
    scores = tf.where(found, beam_lp, neg_inf)
    return _pad(items, scores, width, beam_width)


def masked_beam_search(step: StepFn, codes: tf.Tensor, allowed: tf.Tensor, sizes: Sequence[int],
                       beam_width: int) -> tuple[tf.Tensor, tf.Tensor]:
    """``constrained_beam_search`` with the trie kept implicitly: each beam carries the [N] mask of the items
    still consistent with its prefix, and a node's children are a segment-max over the catalogue. The reference
    the trie arrays are checked and measured against; codes int32 [N, T] (unique rows)."""
    codes = tf.cast(codes, tf.int32)
    batch = tf.shape(allowed)[0]
    consistent = tf.cast(allowed, tf.float32)[:, None, :]                    # [B, 1, N]
    beam_lp = tf.zeros([batch, 1], tf.float32)                               # [B, 1]
    prefix = tf.zeros([batch, 1, 0], tf.int32)                               # [B, 1, 0]
    neg_inf = tf.constant(-np.inf, tf.float32)
    width = 1
    for t, k in enumerate(sizes):
        log_probs = step(prefix, t)                                           # [B, w, K]
        present = tf.math.unsorted_segment_max(
            tf.transpose(consistent, [2, 0, 1]), codes[:, t], num_segments=k)  # [K, B, w]
        present = tf.transpose(present, [1, 2, 0]) > 0.0                       # [B, w, K]
        total = beam_lp[:, :, None] + tf.where(present, log_probs, neg_inf)   # [B, w, K]
        top, parent, code, prefix = _best_children(total, prefix, width, k, beam_width)  # [B, W'], prefix [B, W', t+1]
        beam_lp, new_width = top.values, min(beam_width, width * k)
        consistent = tf.gather(consistent, parent, batch_dims=1) * tf.cast(
            tf.equal(codes[None, None, :, t], code[:, :, None]), tf.float32)  # [B, W', N]
        width = new_width
    found = tf.logical_and(tf.reduce_max(consistent, axis=2) > 0.0, tf.math.is_finite(beam_lp))
    items = tf.where(found, tf.cast(tf.argmax(consistent, axis=2), tf.int32), -1)
    scores = tf.where(found, beam_lp, neg_inf)
    return _pad(items, scores, width, beam_width)


def _best_children(total: tf.Tensor, prefix: tf.Tensor, width: int, k: int, beam_width: int):
    """The best ``min(beam_width, width * k)`` children in total [B, width, k]: ``top_k`` of the flattened scores,
    each kept child's parent beam and code [B, W'], and the prefixes extended [B, W', t + 1]."""
    top = tf.math.top_k(tf.reshape(total, [tf.shape(total)[0], width * k]), min(beam_width, width * k))
    parent, code = top.indices // k, top.indices % k
    return top, parent, code, tf.concat([tf.gather(prefix, parent, batch_dims=1), code[:, :, None]], axis=2)


def _pad(items, scores, width: int, beam_width: int):
    """Pads to ``beam_width`` columns when fewer complete IDs than beams exist."""
    if width >= beam_width:
        return items, scores
    batch = tf.shape(items)[0]
    pad = beam_width - width
    return (tf.concat([items, tf.fill([batch, pad], -1)], axis=1),
            tf.concat([scores, tf.fill([batch, pad], tf.constant(-np.inf, tf.float32))], axis=1))
