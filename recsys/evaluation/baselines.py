"""Classic non-learned baselines: Popularity, ItemCF (co-occurrence cosine), UserMostFrequent.

Every baseline has ``fit(...) -> self`` and
``score(users [B] int, histories: B int arrays) -> [B, I] float32`` (higher is better), so
``model.score`` can be passed straight to :func:`recsys.evaluation.metrics.evaluate_scorer`.
All are deterministic; ranking ties are resolved by ``top_k`` (lower item id first).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

from recsys.evaluation.arrays import flatten_rows

#: Upper bound of the popularity fallback of :class:`UserMostFrequent` (``pop / max_pop * this``).
FALLBACK_SCALE: float = 1e-6


def _check_batch(users: np.ndarray, histories: Sequence[np.ndarray]) -> None:
    if len(np.asarray(users)) != len(histories):
        raise ValueError(f"{len(np.asarray(users))} users but {len(histories)} histories")


def _item_counts(histories: Sequence[np.ndarray], num_items: int) -> np.ndarray:
    """``[I]`` int64 number of occurrences of each item over all ``histories``."""
    _, items = flatten_rows(histories, num_items, "training")
    return np.bincount(items, minlength=num_items)


class Popularity:
    """``score[b, i] = count_i``: occurrences of item ``i`` in the training interactions."""

    def __init__(self) -> None:
        self.num_items = 0
        self.counts = np.zeros(0, dtype=np.float32)  # [I]

    def fit(self, train_histories: Sequence[np.ndarray], num_items: int) -> "Popularity":
        """Count item occurrences (repeats within a history count each time)."""
        self.num_items = num_items
        self.counts = _item_counts(train_histories, num_items).astype(np.float32)
        return self

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Return ``[B, I]`` float32, the same popularity row for every user."""
        _check_batch(users, histories)
        return np.tile(self.counts, (len(histories), 1))


class ItemCF:
    """Item-item collaborative filtering on basket co-occurrence ("also bought").

    With the binary basket matrix ``B`` ``[N_baskets, I]``::

        C       = Bᵀ B  with the diagonal zeroed       (co-occurring baskets of i and j)
        n_i     = number of baskets containing i
        sim_ij  = C_ij / sqrt(n_i n_j)                  (normalize="cosine")
                = C_ij                                  (normalize=None)
        score_u = Σ_p w_p sim[h_p, :],  w_p = decay^(len-1-p) (or 1 without decay)

    where ``h_p`` is the item at position ``p`` of the history (repeated items add up).
    ``sim`` stays a scipy CSR matrix; a batch is scored as sparse ``H [B, I] @ sim``.
    """

    def __init__(self, recency_decay: float | None = None) -> None:
        if recency_decay is not None and not 0.0 < recency_decay <= 1.0:
            raise ValueError(f"recency_decay must be in (0, 1]; got {recency_decay}")
        self.recency_decay = recency_decay
        self.num_items = 0
        self.sim: sp.csr_matrix = sp.csr_matrix((0, 0), dtype=np.float32)  # [I, I] symmetric

    def fit(
        self, train_baskets: Sequence[np.ndarray], num_items: int, normalize: str | None = "cosine"
    ) -> "ItemCF":
        """Build the sparse ``[I, I]`` similarity from baskets (items de-duplicated per basket)."""
        if normalize not in ("cosine", None):
            raise ValueError(f"normalize must be 'cosine' or None; got {normalize!r}")
        rows, items = flatten_rows(train_baskets, num_items, "basket")
        basket = sp.csr_matrix(
            (np.ones(len(items), dtype=np.float64), (rows, items)), shape=(len(train_baskets), num_items)
        )
        basket.sum_duplicates()
        basket.data[:] = 1.0  # binary
        co = (basket.T @ basket).tocsr()  # [I, I] co-occurrence counts
        n = co.diagonal()  # [I] baskets containing each item
        co = (co - sp.diags(n)).tocsr()
        co.eliminate_zeros()
        if normalize == "cosine":
            inv = np.zeros(num_items)
            inv[n > 0] = 1.0 / np.sqrt(n[n > 0])
            co = sp.diags(inv) @ co @ sp.diags(inv)
        self.sim = sp.csr_matrix(co, dtype=np.float32)
        self.sim.sort_indices()
        self.num_items = num_items
        return self

    def _weights(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """``[N]`` per-position weights ``decay^(len-1-p)`` for the flattened histories."""
        lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
        total = int(lengths.sum())
        if self.recency_decay is None or total == 0:
            return np.ones(total, dtype=np.float32)
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        age = np.repeat(lengths - 1, lengths) - (np.arange(total) - starts)  # len-1-p
        return np.power(self.recency_decay, age, dtype=np.float64).astype(np.float32)

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Return ``[B, I]`` float32 ``Σ_p w_p sim[h_p, :]`` (zeros for an empty history)."""
        _check_batch(users, histories)
        rows, items = flatten_rows(histories, self.num_items, "history")
        hist = sp.csr_matrix(
            (self._weights(histories), (rows, items)), shape=(len(histories), self.num_items)
        )  # duplicates are summed
        return np.asarray((hist @ self.sim).toarray(), dtype=np.float32)


class UserMostFrequent:
    """Repeat-purchase baseline: rank the user's own items by purchase frequency.

    For a history ``h`` of length ``L``::

        score[i] = freq_h(i) + (last_pos_h(i) + 1) / (L + 1)        if i in h   (>= 1)
        score[i] = FALLBACK_SCALE * pop_i / max(pop)                 otherwise   (<= 1e-6)

    The recency term is < 1, so it only breaks frequency ties (more recent first);
    the fallback keeps the ranking full with popular items after all history items.
    """

    def __init__(self) -> None:
        self.num_items = 0
        self.fallback = np.zeros(0, dtype=np.float32)  # [I] in [0, FALLBACK_SCALE]

    def fit(self, train_histories: Sequence[np.ndarray], num_items: int) -> "UserMostFrequent":
        """Store training popularity for the fallback."""
        counts = _item_counts(train_histories, num_items).astype(np.float64)
        top = counts.max() if counts.size else 0.0
        self.fallback = (FALLBACK_SCALE * counts / top if top > 0 else counts).astype(np.float32)
        self.num_items = num_items
        return self

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Return ``[B, I]`` float32 scores as in the class docstring."""
        _check_batch(users, histories)
        rows, items = flatten_rows(histories, self.num_items, "history")
        out = np.tile(self.fallback, (len(histories), 1))
        if len(items) == 0:
            return out
        lengths = np.bincount(rows, minlength=len(histories))
        pos = np.arange(len(items)) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # [N]
        keys = rows * self.num_items + items
        # Scan reversed so that np.unique's first index is each (user, item)'s last occurrence.
        uniq, first_rev, freq = np.unique(keys[::-1], return_index=True, return_counts=True)
        last = len(keys) - 1 - first_rev
        u, i = uniq // self.num_items, uniq % self.num_items
        out[u, i] = freq + (pos[last] + 1) / (lengths[u] + 1)
        return out
