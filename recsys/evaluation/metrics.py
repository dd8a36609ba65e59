"""Full-ranking top-k selection and ranking metrics (pure numpy, no TensorFlow).

Conventions
-----------
* ``U`` users (rows), ``I`` items (columns); item ids are ints in ``[0, I)``.
* Per-user item sets (targets, exclusions, histories) are ``Sequence[np.ndarray]``
  of int arrays, one per row.
* Metrics are means over *evaluated* users, i.e. users with at least one target.
  Users with empty targets are skipped everywhere (also for coverage/entropy);
  use :func:`count_skipped_users` to report how many, and a ``logging`` warning
  is emitted when any are skipped.

Metric definitions (``hits[u, r] = 1`` iff the item at 1-based rank ``r`` of
user ``u`` is a target; targets are de-duplicated first)::

    HR@k        = mean_u [ sum_r hits[u, r] > 0 ]
    Recall@k    = mean_u  sum_r hits[u, r] / |T_u|
    NDCG@k      = mean_u  DCG_u / IDCG_u
                  DCG_u  = sum_{r=1..k} hits[u, r] / log2(r + 1)
                  IDCG_u = sum_{r=1..min(|T_u|, k)} 1 / log2(r + 1)     (RecBole)
    coverage@k  = |union_u topk[u]| / I
    entropy@k   = -sum_i p_i log2 p_i,  p_i = occurrences of i in all top-k lists / (U_eval * k)
"""
from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np

from recsys.evaluation.arrays import flatten_rows

logger = logging.getLogger(__name__)

#: Base of the logarithm used by ``entropy@k`` (bits).
ENTROPY_LOG_BASE: float = 2.0

#: two-sided 95% normal quantile, for the confidence half-widths of a user sample
Z95: float = 1.959963984540054

#: Metric name stems, in the canonical (report/table) order.
METRIC_BASES: tuple[str, ...] = ("HR", "Recall", "NDCG", "coverage", "entropy")

#: ``score_fn(user_batch [B] int, history_batch: list of B int arrays) -> [B, I] scores``.
ScoreFn = Callable[[np.ndarray, Sequence[np.ndarray]], np.ndarray]


def metric_names(k: int) -> list[str]:
    """Return the metric keys for cut-off ``k`` in canonical order, e.g. ``["HR@10", ...]``."""
    return [f"{base}@{k}" for base in METRIC_BASES]


def top_k(scores: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Return the ``k`` best items per row, best first.

    Args:
      scores: ``[U, I]`` float scores (higher is better). Not modified. NaN is rejected.
      k: cut-off, ``1 <= k <= I``.
      exclude: optional ``U`` int arrays; those items get ``-inf`` before ranking
        (they can still appear, last, if a row has fewer than ``k`` other items).

    Returns:
      ``[U, k]`` int64 item ids sorted by score descending; ties are broken by the
      lower item id, so the result is deterministic.

    The ``k``-th largest value per row comes from ``np.partition`` (O(I)); items strictly
    above it are kept and the remaining slots are filled with the lowest-id items tied
    at that value, then only the ``[U, k]`` selection is sorted.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D [U, I]; got shape {scores.shape}")
    n_users, n_items = scores.shape
    if not 1 <= k <= n_items:
        raise ValueError(f"k must be in [1, {n_items}]; got {k}")
    if np.issubdtype(scores.dtype, np.floating) and np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    s = scores.astype(np.float32 if scores.dtype == np.float32 else np.float64, copy=True)
    if exclude is not None:
        if len(exclude) != n_users:
            raise ValueError(f"exclude has {len(exclude)} rows, scores has {n_users}")
        rows, cols = flatten_rows(exclude, n_items, "exclude")
        s[rows, cols] = -np.inf
    if n_users == 0:
        return np.zeros((0, k), dtype=np.int64)

    kth = np.partition(s, n_items - k, axis=1)[:, n_items - k]  # [U] k-th largest value
    above = s > kth[:, None]  # [U, I]; at most k - 1 per row
    tied = s == kth[:, None]
    need = k - above.sum(axis=1)  # [U] >= 1 slots for tied items
    keep = above | (tied & (np.cumsum(tied, axis=1, dtype=np.int32) <= need[:, None]))
    cand = np.nonzero(keep)[1].reshape(n_users, k)  # ascending item id within each row
    cand_scores = np.take_along_axis(s, cand, axis=1)
    order = np.argsort(-cand_scores, axis=1, kind="stable")  # stable => lower id first on ties
    return np.take_along_axis(cand, order, axis=1)


def count_skipped_users(targets: Sequence[np.ndarray]) -> int:
    """Number of users with an empty target array (they are skipped by the metrics)."""
    return int(sum(1 for t in targets if len(t) == 0))


class RankingAccumulator:
    """Accumulates per-user metric values and global item counts across batches.

    ``update`` can be called batch by batch; ``result`` gives exactly the same numbers
    as a single :func:`ranking_metrics` call on the concatenated batches.
    """

    def __init__(self, num_items: int, k: int = 10) -> None:
        if num_items <= 0 or k <= 0:
            raise ValueError(f"num_items and k must be positive; got {num_items}, {k}")
        self.num_items = num_items
        self.k = k
        self.num_skipped = 0
        self._item_counts = np.zeros(num_items, dtype=np.int64)  # [I] occurrences in top-k lists
        self._hr: list[np.ndarray] = []
        self._recall: list[np.ndarray] = []
        self._ndcg: list[np.ndarray] = []
        self._discounts = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))  # [k]
        self._idcg = np.cumsum(self._discounts)  # [k]; idcg[n-1] for n relevant

    def update(self, topk: np.ndarray, targets: Sequence[np.ndarray]) -> None:
        """Add a batch: ``topk`` ``[B, >=k]`` item ids, ``targets`` ``B`` int arrays."""
        topk = np.asarray(topk)
        if topk.ndim != 2 or topk.shape[1] < self.k:
            raise ValueError(f"topk must be [B, >={self.k}]; got shape {topk.shape}")
        if len(targets) != topk.shape[0]:
            raise ValueError(f"{len(targets)} target rows for {topk.shape[0]} top-k rows")
        keep = np.fromiter((len(t) > 0 for t in targets), dtype=bool, count=len(targets))
        self.num_skipped += int((~keep).sum())
        topk = topk[keep, : self.k].astype(np.int64, copy=False)
        targets = [t for t, kp in zip(targets, keep) if kp]
        n = topk.shape[0]
        if n == 0:
            return
        if topk.min() < -1 or topk.max() >= self.num_items:
            raise ValueError(f"topk item ids must lie in [0, {self.num_items}) (-1: an empty slot)")
        empty = topk < 0  # a list shorter than k: its empty slots neither hit nor count for coverage
        rows, items = flatten_rows(targets, self.num_items, "target")
        target_keys = np.unique(rows * self.num_items + items)  # de-duplicated (user, item)
        n_targets = np.bincount(target_keys // self.num_items, minlength=n)  # [B] |T_u| >= 1
        topk_keys = np.arange(n, dtype=np.int64)[:, None] * self.num_items + topk
        hits = np.isin(topk_keys, target_keys, assume_unique=False) & ~empty  # [B, k] bool
        n_hits = hits.sum(axis=1)
        self._hr.append((n_hits > 0).astype(np.float64))
        self._recall.append(n_hits / n_targets)
        dcg = hits @ self._discounts
        self._ndcg.append(dcg / self._idcg[np.minimum(n_targets, self.k) - 1])
        self._item_counts += np.bincount(topk[~empty], minlength=self.num_items)

    @property
    def num_evaluated(self) -> int:
        """Users with non-empty targets seen so far."""
        return int(sum(len(a) for a in self._hr))

    def confidence(self, population: int) -> dict[str, float]:
        """95% confidence half-widths of the per-user means (HR, Recall, NDCG) when the users seen are a uniform
        sample, without replacement, of ``population`` users: ``1.96 * s / sqrt(n) * sqrt((N - n) / (N - 1))``
        (``s`` the sample standard deviation, ``n`` the users evaluated, ``N = population``; normal approximation
        with the finite-population correction). Keys ``"<metric> ci95"``; coverage and entropy have none (they are
        not means over users, and a sample's coverage is lower than the population's)."""
        n = self.num_evaluated
        if n < 2 or population < n:
            raise ValueError(f"a confidence interval needs 2 <= users evaluated ({n}) <= population ({population})")
        fpc = np.sqrt((population - n) / (population - 1)) if population > 1 else 0.0
        out = {}
        for base, parts in zip(METRIC_BASES, (self._hr, self._recall, self._ndcg)):
            sd = float(np.std(np.concatenate(parts), ddof=1))
            out[f"{base}@{self.k} ci95"] = float(Z95 * sd / np.sqrt(n) * fpc)
        return out

    def result(self) -> dict[str, float]:
        """Return ``{HR@k, Recall@k, NDCG@k, coverage@k, entropy@k}`` (see module docstring)."""
        if self.num_evaluated == 0:
            raise ValueError("no user with a non-empty target set was evaluated")
        if self.num_skipped:
            logger.warning("skipped %d users with empty targets", self.num_skipped)
        counts = self._item_counts
        p = counts[counts > 0] / counts.sum()
        entropy = float(-(p * np.log(p)).sum() / np.log(ENTROPY_LOG_BASE)) + 0.0
        values = (
            float(np.mean(np.concatenate(self._hr))),
            float(np.mean(np.concatenate(self._recall))),
            float(np.mean(np.concatenate(self._ndcg))),
            float(np.count_nonzero(counts) / self.num_items),
            entropy,
        )
        return dict(zip(metric_names(self.k), values))


def ranking_metrics(
    topk: np.ndarray, targets: Sequence[np.ndarray], num_items: int, k: int = 10, population: int = 0
) -> dict[str, float]:
    """Compute HR/Recall/NDCG/coverage/entropy at ``k`` for ``[U, >=k]`` top-k lists.

    Args:
      topk: ``[U, k']`` item ids, ``k' >= k``, best first (only the first ``k`` are used).
      targets: ``U`` int arrays of held-out items; duplicates count once; users with an
        empty array are skipped (a warning is logged; see :func:`count_skipped_users`).
      num_items: ``I``, the catalogue size (denominator of coverage).
      k: cut-off.
      population: > 0 when these users are a uniform sample of ``population`` users (:func:`sample_rows`):
        the result also holds the 95% confidence half-widths (:meth:`RankingAccumulator.confidence`).

    Returns:
      ``{"HR@k", "Recall@k", "NDCG@k", "coverage@k", "entropy@k"}`` as floats; entropy in bits.
    """
    acc = RankingAccumulator(num_items, k)
    acc.update(topk, targets)
    return {**acc.result(), **(acc.confidence(population) if population else {})}


def evaluate_scorer(
    score_fn: ScoreFn,
    users: np.ndarray,
    histories: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    num_items: int,
    k: int = 10,
    *,
    exclude_history: bool,
    batch_size: int = 0,
    population: int = 0,
) -> dict[str, float]:
    """Score users in batches, rank all items and return :func:`ranking_metrics`.

    Args:
      score_fn: ``score_fn(users[b:b+B] [B] int, histories[b:b+B]) -> [B, I]`` scores.
      users: ``[U]`` int user ids, aligned with ``histories`` and ``targets``.
      histories: ``U`` int arrays, passed to ``score_fn`` (and excluded if asked).
      targets: ``U`` int arrays; users with empty targets are skipped *before* scoring.
      num_items: ``I``.
      k: cut-off.
      exclude_history: if True, a user's history items are removed from their ranking.
      batch_size: users per ``score_fn`` call; peak memory is a few times ``batch_size * I`` floats (the
        scores, their copy and the selection masks). 0: :func:`score_batch_size` (1,024 up to 65,536 items).
      population: as in :func:`ranking_metrics` (these users a sample of ``population``).

    Only one ``[B, I]`` score block lives at a time; coverage/entropy use global item
    counts, so the result equals the single-batch result.
    """
    users = np.asarray(users)
    if users.ndim != 1 or not (len(users) == len(histories) == len(targets)):
        raise ValueError(
            f"users [U], histories and targets must align; got {users.shape}, {len(histories)}, {len(targets)}"
        )
    if batch_size < 0:
        raise ValueError(f"batch_size must be positive (0: score_batch_size); got {batch_size}")
    batch_size = batch_size or score_batch_size(num_items)
    acc = RankingAccumulator(num_items, k)
    keep = np.flatnonzero([len(t) > 0 for t in targets])
    acc.num_skipped = len(users) - len(keep)
    for start in range(0, len(keep), batch_size):
        idx = keep[start : start + batch_size]
        batch_hist = [histories[i] for i in idx]
        scores = np.asarray(score_fn(users[idx], batch_hist))
        if scores.shape != (len(idx), num_items):
            raise ValueError(f"score_fn returned shape {scores.shape}; expected {(len(idx), num_items)}")
        ranked = top_k(scores, k, batch_hist if exclude_history else None)
        acc.update(ranked, [targets[i] for i in idx])
    return {**acc.result(), **(acc.confidence(population) if population else {})}


#: scores of one ``evaluate_scorer`` block, at most (256 MiB of float32) when the batch size is not given
SCORE_BLOCK: int = 2 ** 26


def score_batch_size(num_items: int, most: int = 1024) -> int:
    """Users per scored block: ``most``, fewer when ``most * num_items`` scores would pass ``SCORE_BLOCK``
    (MovieLens-100K and Instacart: 1,024; 100,000 items: 671; 1M items: 67). A block's arrays (item-CF's float64
    product, the float32 scores, :func:`top_k`'s copy, partition, int32 cumsum and masks) take roughly 25-30
    bytes a score, estimated from the code: 1,024 users × 1M items would be about 28 GB, 67 users about 1.8 GB."""
    return int(max(1, min(most, SCORE_BLOCK // max(num_items, 1))))


def sample_rows(user_ids: Sequence[str], size: int, seed: int = 0) -> np.ndarray:
    """Sorted row indices of ``size`` users drawn uniformly without replacement (all rows when ``size`` is 0 or
    at least the number of rows).

    The draw depends on the user ids and ``seed`` only, not on the rows' order or on which other users are
    present: the ``size`` ids with the smallest ``blake2b(seed:id)`` digests (a seeded random permutation). So
    every evaluator asked for the same ``size`` and ``seed`` on the same split measures the same users, and its
    rows stay comparable (paired) with the others'.
    """
    import hashlib

    n = len(user_ids)
    if size < 0:
        raise ValueError(f"sample size must be >= 0 (0 = every user); got {size}")
    if size == 0 or size >= n:
        return np.arange(n)
    keys = [hashlib.blake2b(f"{seed}:{u}".encode(), digest_size=8).digest() for u in user_ids]
    return np.sort(np.array(sorted(range(n), key=keys.__getitem__)[:size], dtype=np.int64))


def long_tail_items(train_counts: np.ndarray, head_fraction: float = 0.2) -> np.ndarray:
    """Bool [I]: items outside the ``head_fraction`` most popular (by training count; ties to the lower id)."""
    counts = np.asarray(train_counts)
    order = np.lexsort((np.arange(len(counts)), -counts))
    tail = np.ones(len(counts), bool)
    tail[order[: int(round(head_fraction * len(counts)))]] = False
    return tail


def long_tail_share(topk: np.ndarray, tail: np.ndarray, k: int = 10) -> float:
    """Share of recommended slots (first ``k`` of each row, -1 ignored) holding a long-tail item."""
    top = np.asarray(topk)[:, :k].ravel()
    top = top[top >= 0]
    return float(np.mean(tail[top])) if len(top) else float("nan")
