"""Classic non-learned baselines: Popularity, ItemCF (co-occurrence cosine), ItemKNN (RecBole's
top-k item cosine), UserMostFrequent.

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

#: RecBole 1.2.1 ``ItemKNN`` defaults (``recbole/properties/model/ItemKNN.yaml``: ``k: 100``,
#: ``shrink: 0.0``).
ITEMKNN_K: int = 100
ITEMKNN_SHRINK: float = 0.0

#: Constant RecBole's ``ComputeSimilarity`` adds to every cosine denominator.
RECBOLE_COSINE_EPS: float = 1e-6

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

    def __init__(self, recency_decay: float | None = None, block_size: int = 16384) -> None:
        if recency_decay is not None and not 0.0 < recency_decay <= 1.0:
            raise ValueError(f"recency_decay must be in (0, 1]; got {recency_decay}")
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1; got {block_size}")
        self.recency_decay = recency_decay
        self.block_size = block_size  # rows of the similarity built at a time (``fit``)
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
        n = np.asarray(basket.sum(axis=0), dtype=np.float64).ravel()  # [I] baskets containing each item
        inv = np.ones(num_items)
        if normalize == "cosine":
            inv = np.zeros(num_items)
            inv[n > 0] = 1.0 / np.sqrt(n[n > 0])
        by_item = basket.T.tocsr()  # [I, N_baskets]
        blocks = []
        # ``block_size`` rows of C at a time, each normalized and cast before the next: one float64 [I, I]
        # co-occurrence and its three copies did not fit at 1M items (issue 14); the entries are the same
        for start in range(0, num_items, self.block_size):
            co = (by_item[start:start + self.block_size] @ basket).tocsr()  # [B, I] co-occurrence counts
            row = np.repeat(np.arange(start, start + co.shape[0]), np.diff(co.indptr))
            co.data[row == co.indices] = 0.0  # no self co-occurrence
            co.eliminate_zeros()
            row = np.repeat(np.arange(start, start + co.shape[0]), np.diff(co.indptr))
            co.data = (inv[row] * co.data) * inv[co.indices]
            blocks.append(sp.csr_matrix(co, dtype=np.float32))
        self.sim = (sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, num_items))).astype(np.float32)
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


def knn_cosine_similarity(
    matrix: sp.spmatrix, k: int = ITEMKNN_K, shrink: float = ITEMKNN_SHRINK, block_size: int = 1024
) -> sp.csr_matrix:
    """Top-``k`` item-item cosine of a ``[U, I]`` matrix, as RecBole 1.2.1's ``ComputeSimilarity``.

    Reproduces ``ComputeSimilarity(matrix, topk=k, shrink=shrink, method="item",
    normalize=True).compute_similarity()[1]`` (``recbole/model/general_recommender/itemknn.py``)::

        X        = matrix as float32                        [U, I], entries >= 0
        n_j      = sqrt(Σ_u X_uj²)                          (float32)
        c_ji     = Σ_u X_uj X_ui  for j != i,  c_ii = 0     (self-similarity removed)
        s_ji     = c_ji * (1 / (n_i n_j + shrink + 1e-6))   (float32, RecBole's operation order)
        W[:, i]  = s_{·i} on the min(k, I) largest entries of column i, zeros dropped; 0 elsewhere

    i.e. the neighbours are chosen *per column* (per scored item ``i``); ``W`` is not symmetric
    and ``(X @ W)[u, i] = Σ_{j ∈ N_k(i)} X_uj s_ji``. The one deviation: among equal values
    at the ``k``-th place RecBole keeps whichever ``np.argpartition`` returns; here the lower
    item ids are kept, so the result is deterministic. Negative entries are rejected (with
    them RecBole would prefer the implicit zeros, which this sparse selection does not see).

    Only the non-zero co-occurrences are touched: ``block_size`` columns at a time, the
    sparse product ``X[:, block]ᵀ X`` is normalized entry-wise and cut to the top ``k`` per
    row with ``np.partition`` on a zero-padded ``[block_size, max_row_nnz]`` array.

    Returns:
      ``[I, I]`` float32 CSR ``W`` with sorted indices.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    if not shrink >= 0.0:
        raise ValueError(f"shrink must be >= 0; got {shrink}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1; got {block_size}")
    x = sp.csc_matrix(matrix, dtype=np.float32)
    x.sum_duplicates()
    if x.nnz and x.data.min() < 0:
        raise ValueError("matrix entries must be >= 0")
    n_items = x.shape[1]
    topk = min(k, n_items)
    norms = np.sqrt(np.asarray(x.power(2).sum(axis=0), dtype=np.float32).ravel())  # [I]
    xr = x.tocsr()
    add_shrink, add_eps = np.float32(shrink), np.float32(RECBOLE_COSINE_EPS)
    rows, cols, vals = [], [], []
    for start in range(0, n_items, block_size):
        stop = min(start + block_size, n_items)
        # Entry e = (r, j, d): similarity d of item j to item start + r (column start + r of W).
        block = (x[:, start:stop].T @ xr).tocsr()  # [B, I] co-occurrences c, grouped by row r
        ptr, count = block.indptr, np.diff(block.indptr)
        r = np.repeat(np.arange(stop - start), count)
        j = block.indices
        den = np.repeat(norms[start:stop], count) * norms[j] + add_shrink + add_eps
        d = block.data * (np.float32(1.0) / den)
        d[r + start == j] = 0.0  # no self-similarity
        # k-th largest value of each row (its stored entries, zero-padded); 0 => keep all > 0.
        width = int(count.max()) if len(count) else 0
        kth_row = np.zeros(stop - start, dtype=np.float32)
        if width > topk:
            pad = np.zeros((stop - start, width), dtype=np.float32)
            pad[r, np.arange(len(d)) - ptr[r]] = d
            kth_row = np.partition(pad, width - topk, axis=1)[:, width - topk]
        kth = np.repeat(kth_row, count)
        keep = d > kth
        tied = (d == kth) & (kth > 0)
        n_rows = stop - start
        need = topk - np.bincount(r[keep], minlength=n_rows)  # free slots for values tied at k-th
        excess = np.bincount(r[tied], minlength=n_rows) > need
        keep |= tied & ~excess[r]
        t = np.flatnonzero(tied & excess[r])
        if len(t):  # too many ties at the k-th place: lower item ids first
            t = t[np.lexsort((j[t], r[t]))]
            tr = r[t]
            rank = np.arange(len(t)) - np.searchsorted(tr, tr)
            keep[t[rank < need[tr]]] = True
        rows.append(j[keep])
        cols.append(r[keep] + start)
        vals.append(d[keep])
    empty = np.zeros(0, dtype=np.int64)
    w = sp.csr_matrix(
        (
            np.concatenate(vals) if vals else np.zeros(0, dtype=np.float32),
            (np.concatenate(rows) if rows else empty, np.concatenate(cols) if cols else empty),
        ),
        shape=(n_items, n_items),
        dtype=np.float32,
    )
    w.sort_indices()
    return w


class ItemKNN:
    """RecBole 1.2.1 ``ItemKNN`` (``knn_method="item"``): top-``k`` neighbour item cosine.

    ``fit`` builds the user-item matrix ``X [U, I]`` from the training histories the way
    RecBole's ``dataset.inter_matrix(form="csr")`` does (one row per training history, value
    1 per interaction, repeated (user, item) interactions *summed*, so ``X`` holds counts;
    on data without repeats, e.g. MovieLens, it is binary) and computes
    ``W = knn_cosine_similarity(X, k, shrink)`` (formula there). ``score`` returns
    ``h_u @ W`` where ``h_u [I]`` counts the items of the *history passed in* (repeats add up)::

        score[u, i] = Σ_{j ∈ N_k(i)} count_{h_u}(j) * s_ji

    RecBole's ``pred_mat = X @ W`` scores a user from their training row; this equals that
    row when the history passed is the user's training interactions. (With leave-one-out,
    ``evaluate_scorer`` passes everything before the target, i.e. for the test split also the
    validation item, which then contributes too; ``W`` itself only uses training data.)
    """

    def __init__(self, k: int = ITEMKNN_K, shrink: float = ITEMKNN_SHRINK) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1; got {k}")
        if not shrink >= 0.0:
            raise ValueError(f"shrink must be >= 0; got {shrink}")
        self.k = k
        self.shrink = shrink
        self.num_items = 0
        self.sim: sp.csr_matrix = sp.csr_matrix((0, 0), dtype=np.float32)  # [I, I] W, column = scored item

    @staticmethod
    def _counts(histories: Sequence[np.ndarray], num_items: int, what: str) -> sp.csr_matrix:
        """``[len(histories), I]`` float32 CSR of per-row item counts."""
        rows, items = flatten_rows(histories, num_items, what)
        m = sp.csr_matrix(
            (np.ones(len(items), dtype=np.float32), (rows, items)), shape=(len(histories), num_items)
        )
        m.sum_duplicates()
        return m

    def fit(self, train_histories: Sequence[np.ndarray], num_items: int) -> "ItemKNN":
        """Build ``W`` from one training history per user (user ids themselves are not used)."""
        self.sim = knn_cosine_similarity(self._counts(train_histories, num_items, "training"), self.k, self.shrink)
        self.num_items = num_items
        return self

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Return ``[B, I]`` float32 ``counts(history) @ W`` (zeros for an empty history)."""
        _check_batch(users, histories)
        hist = self._counts(histories, self.num_items, "history")
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
