"""Content embeddings for items: from text, from precomputed vectors, or from what textless items have.

Three sources, chosen per dataset (the run says which):

* **text**: title, description, category path and brand through the multilingual
  sentence encoder (``trainer/text_encoder.py``), batched in a Beam step;
* **precomputed**: a user-supplied file of vectors (e.g. from an LLM), validated
  for coverage, dimension and NaNs;
* **structure**: for catalogues without any product text (the Instacart sample
  has ids, aisles and departments only): one-hot category levels plus a
  co-purchase embedding (truncated SVD of the positive PMI matrix of items
  bought in the same training basket). No product text is ever invented.
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


def copurchase_embeddings(baskets: Sequence[np.ndarray], num_items: int, dim: int = 64,
                          seed: int = 0) -> np.ndarray:
    """Items bought together end up close: SVD of the positive PMI co-occurrence matrix.

    Args:
      baskets: item-index arrays, one per training basket (order).
      num_items: N.
      dim: output dimension (capped below the number of items that co-occur).

    Returns:
      float32 [N, dim]; rows of items never co-purchased in training are zero.

    PPMI(i, j) = max(0, log(c_ij · T / (c_i · c_j))) with c_ij the number of baskets
    holding both, c_i the basket count of i and T the total pair count; the
    embedding is U·sqrt(S) of its rank-``dim`` SVD (Levy & Goldberg, 2014).
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import svds

    rows, cols = [], []
    for b, items in enumerate(baskets):
        items = np.unique(np.asarray(items, dtype=np.int64))
        rows.extend([b] * len(items))
        cols.extend(items.tolist())
    out = np.zeros((num_items, dim), dtype=np.float32)
    if not rows:
        return out
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(baskets), num_items))
    co = (m.T @ m).tocoo()
    keep = co.row != co.col
    r, c, v = co.row[keep], co.col[keep], co.data[keep].astype(np.float64)
    if len(v) == 0:
        return out
    item_total = np.bincount(r, weights=v, minlength=num_items)
    pmi = np.log(v * v.sum() / (item_total[r] * item_total[c]))
    pos = pmi > 0
    ppmi = sp.csr_matrix((pmi[pos], (r[pos], c[pos])), shape=(num_items, num_items))
    active = np.unique(r)
    k = int(min(dim, len(active) - 1))
    if k < 1:
        return out
    rng = np.random.default_rng(seed)
    u, s, _ = svds(ppmi.astype(np.float64), k=k, v0=rng.normal(size=num_items))
    order = np.argsort(-s)
    out[:, :k] = (u[:, order] * np.sqrt(s[order])).astype(np.float32)
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
    if not os.path.exists(path):
        raise EmbeddingInputError(f"{path}: no such file (expected .npz, .parquet or .csv of item embeddings)")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        data = np.load(path, allow_pickle=True)
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

        df = pd.read_parquet(path) if ext == ".parquet" else pd.read_csv(path)
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
