"""Content embeddings for items: from text, from precomputed vectors, or from what textless items have.

Three sources, chosen per dataset (the run says which):

* **text**: title, description, category path and brand through the multilingual
  sentence encoder (``trainer/text_encoder.py``), batched in a Beam step;
* **precomputed**: a user-supplied file of vectors (e.g. from an LLM), validated
  for coverage, dimension and NaNs;
* **structure**: for catalogues without any product text (the Instacart sample
  has ids, aisles and departments only): one-hot category levels plus a
  co-purchase embedding (the leading positive eigen-directions of the positive
  PMI matrix of items bought in the same training basket). No product text is
  ever invented.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

TEXT = "text"
PRECOMPUTED = "precomputed"
STRUCTURE = "structure"


class EmbeddingInputError(ValueError):
    """A precomputed embedding file that cannot be used as it is."""


@dataclass(frozen=True)
class ContentEmbeddings:
    item_ids: np.ndarray   # str [N]
    vectors: np.ndarray    # float32 [N, D]
    source: str
    notes: tuple[str, ...]


DENSE_MAX_ITEMS = 1024  # up to this many items with a positive PMI: dense eigendecomposition (LAPACK)


def ppmi_matrix(baskets: Sequence[np.ndarray], num_items: int):
    """Positive PMI of items bought in the same basket: scipy.sparse csr float64 [N, N], symmetric, zero diagonal.

    PPMI(i, j) = max(0, log(c_ij · T / (c_i · c_j))) with c_ij the number of baskets
    holding both, c_i = Σ_j c_ij and T = Σ_ij c_ij. An item is counted once per basket.
    """
    import scipy.sparse as sp

    rows, cols = [], []
    for b, items in enumerate(baskets):
        items = np.unique(np.asarray(items, dtype=np.int64))
        rows.extend([b] * len(items))
        cols.extend(items.tolist())
    if not rows:
        return sp.csr_matrix((num_items, num_items), dtype=np.float64)
    m = sp.csr_matrix((np.ones(len(rows), np.float64), (rows, cols)), shape=(len(baskets), num_items))
    co = (m.T @ m).tocoo()
    keep = co.row != co.col
    r, c, v = co.row[keep], co.col[keep], co.data[keep]
    if len(v) == 0:
        return sp.csr_matrix((num_items, num_items), dtype=np.float64)
    item_total = np.bincount(r, weights=v, minlength=num_items)
    pmi = np.log(v * v.sum() / (item_total[r] * item_total[c]))
    pos = pmi > 0
    return sp.csr_matrix((pmi[pos], (r[pos], c[pos])), shape=(num_items, num_items))


def copurchase_embeddings(baskets: Sequence[np.ndarray], num_items: int, dim: int = 64,
                          seed: int = 0) -> np.ndarray:
    """Items bought together end up close: the positive eigen-directions of the PPMI matrix.

    Args:
      baskets: item-index arrays, one per training basket (order).
      num_items: N.
      dim: output dimension; columns past the number of usable components are zero.
      seed: seed of ARPACK's start vector (large catalogues only); a fixed
        default, independent of numpy's global random state.

    Returns:
      float32 [N, dim], deterministic: the same baskets give bit-identical vectors.
      Rows of items with no positive-PMI partner (in particular items never
      co-purchased in training) are zero.

    The PPMI matrix P (:func:`ppmi_matrix`) is symmetric with a zero diagonal, so
    it is indefinite: its trace is 0, its negative eigenvalues add up to as much as
    its positive ones (an isolated pair i–j has +p on (1, 1)/√2 and −p on
    (1, −1)/√2; on the Instacart sample the extremes are −146 and +520). The
    embedding is E = V·sqrt(λ) over the ``dim`` largest *positive* eigenvalues λ
    of P (eigenvectors V): E·Eᵀ is the best rank-``dim`` positive semi-definite
    approximation of P, so items' dot products follow their co-purchase PMI
    (PPMI factorisation as in Levy & Goldberg, 2014). A truncated SVD, U·sqrt(S),
    treats a negative eigenvalue like a positive one: it gives the pair above
    cosine 0, and with tied singular values (±p) an arbitrary mix of the two.
    Each eigenvector's sign is fixed (its largest-magnitude entry positive), and
    eigenvalues tied with the largest one left out are left out too, since any
    basis of a tied eigenspace would be an arbitrary choice. Up to
    ``DENSE_MAX_ITEMS`` items: LAPACK's dense ``eigh``; beyond: ARPACK ``eigsh``
    with a seeded start vector.
    """
    out = np.zeros((num_items, dim), dtype=np.float32)
    if dim < 1:
        return out
    ppmi = ppmi_matrix(baskets, num_items)
    active = np.flatnonzero(np.diff(ppmi.indptr))  # items with a positive-PMI partner
    n = len(active)
    if n < 2:
        return out
    sub = ppmi[active][:, active]
    if n <= DENSE_MAX_ITEMS or dim + 1 >= n:
        values, vectors = np.linalg.eigh(sub.toarray())
    else:
        from scipy.sparse.linalg import ArpackNoConvergence, eigsh

        v0 = np.random.default_rng(seed).uniform(0.5, 1.5, size=n)  # fixed start: deterministic ARPACK
        try:
            values, vectors = eigsh(sub, k=dim + 1, which="LA", v0=v0)
        except ArpackNoConvergence as e:  # rare; keep the pairs that did converge (still deterministic)
            values, vectors = e.eigenvalues, e.eigenvectors
    if len(values) == 0:
        return out
    order = np.argsort(-values, kind="stable")
    values, vectors = values[order], vectors[:, order]
    tol = 1e-9 * max(float(np.abs(values).max()), 1e-300)
    keep = int(np.sum(values[:dim] > tol))
    if 0 < keep < len(values):  # a tie across the cut: the kept eigenspace would be arbitrary
        while keep > 0 and values[keep - 1] - values[keep] <= tol:
            keep -= 1
    if keep == 0:
        return out
    values, vectors = values[:keep], vectors[:, :keep]
    lead = np.argmax(np.abs(vectors), axis=0)
    vectors = vectors * np.where(vectors[lead, np.arange(keep)] < 0, -1.0, 1.0)
    out[active, :keep] = (vectors * np.sqrt(values)).astype(np.float32)
    return out


def category_onehots(categories: Sequence[str], separator: str = " > ") -> np.ndarray:
    """One-hot of every category level (level 1, level 1..2, ...): float32 [N, total levels' vocabulary]."""
    prefixes_per_item = []
    vocab: dict[str, int] = {}
    for cat in categories:
        parts = [p for p in (cat or "").split(separator) if p]
        prefixes = [separator.join(parts[: i + 1]) for i in range(len(parts))]
        for p in prefixes:
            vocab.setdefault(p, len(vocab))
        prefixes_per_item.append(prefixes)
    out = np.zeros((len(categories), max(len(vocab), 1)), dtype=np.float32)
    for i, prefixes in enumerate(prefixes_per_item):
        for p in prefixes:
            out[i, vocab[p]] = 1.0
    return out


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norm > 0, x / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


def structure_embeddings(categories: Sequence[str], copurchase: np.ndarray) -> np.ndarray:
    """[category one-hots | co-purchase], each block L2-normalised so neither dominates: float32 [N, C + D]."""
    return np.concatenate([_unit_rows(category_onehots(categories)), _unit_rows(copurchase)], axis=1)


def load_precomputed(path: str, item_ids: Sequence[str], expected_dim: int | None = None) -> np.ndarray:
    """Reads user-supplied vectors for ``item_ids`` (in that order) and validates them.

    Formats: ``.npz`` with arrays ``item_id`` [N] and ``embedding`` [N, D]; ``.parquet`` / ``.csv``
    with an ``item_id`` column and either an ``embedding`` column of lists or columns ``e0..e{D-1}``.
    Every catalogue item must have a vector; all vectors one dimension; no NaN or inf.
    """
    import io

    from transform import fileio

    if not fileio.exists(path):
        raise EmbeddingInputError(f"{path}: no such file (expected .npz, .parquet or .csv of item embeddings)")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        data = np.load(io.BytesIO(fileio.read_bytes(path)), allow_pickle=True)
        missing = {"item_id", "embedding"} - set(data.files)
        if missing:
            raise EmbeddingInputError(f"{path}: missing arrays {sorted(missing)}; found {data.files}")
        ids = [str(i) for i in data["item_id"]]
        try:
            vectors = np.asarray(data["embedding"], dtype=np.float32)
        except ValueError as e:
            raise EmbeddingInputError(f"{path}: 'embedding' is not a numeric [N, D] array ({e})") from None
    elif ext in (".parquet", ".csv"):
        import pandas as pd

        raw = io.BytesIO(fileio.read_bytes(path))  # from any filesystem gfile knows
        df = pd.read_parquet(raw) if ext == ".parquet" else pd.read_csv(raw)
        if "item_id" not in df.columns:
            raise EmbeddingInputError(f"{path}: no 'item_id' column; columns are {list(df.columns)}")
        ids = df["item_id"].astype(str).tolist()
        ecols = [c for c in df.columns if c.startswith("e") and c[1:].isdigit()]
        if "embedding" in df.columns:
            lengths = df["embedding"].map(len)
            if lengths.nunique() > 1:
                bad = int(np.argmax(lengths.values != lengths.values[0]))
                raise EmbeddingInputError(f"{path} row {bad + 1}, field 'embedding': dimension {lengths.values[bad]} "
                                          f"differs from row 1's {lengths.values[0]}")
            vectors = np.stack(df["embedding"].map(lambda v: np.asarray(v, np.float32)).values)
        elif ecols:
            vectors = df[sorted(ecols, key=lambda c: int(c[1:]))].to_numpy(np.float32)
        else:
            raise EmbeddingInputError(f"{path}: needs an 'embedding' column or columns e0..eN")
    else:
        raise EmbeddingInputError(f"{path}: unsupported extension {ext!r} (use .npz, .parquet or .csv)")
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise EmbeddingInputError(f"{path}: expected one vector per item_id, got shape {vectors.shape} "
                                  f"for {len(ids)} ids")
    if expected_dim is not None and vectors.shape[1] != expected_dim:
        raise EmbeddingInputError(f"{path}: dimension {vectors.shape[1]}, expected {expected_dim}")
    bad_rows = np.where(~np.isfinite(vectors).all(axis=1))[0]
    if len(bad_rows):
        raise EmbeddingInputError(f"{path} row {bad_rows[0] + 1} (item {ids[bad_rows[0]]}), field 'embedding': "
                                  f"NaN or inf ({len(bad_rows)} rows like this)")
    index = {}
    for row, i in enumerate(ids):
        if i in index:
            raise EmbeddingInputError(f"{path} rows {index[i] + 1} and {row + 1}: duplicate item_id {i!r}")
        index[i] = row
    missing = [i for i in item_ids if i not in index]
    if missing:
        raise EmbeddingInputError(f"{path}: {len(missing)} catalogue items have no embedding, e.g. {missing[:5]}")
    return vectors[[index[i] for i in item_ids]]
