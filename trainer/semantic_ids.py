"""Semantic ID tables and quality metrics (numpy only; no TensorFlow needed).

An RQ-VAE (``trainer.rqvae``) gives each item L codes, coarse first. Items whose L-tuples collide
get one extra code 0, 1, 2, ... in input row order, so every Semantic ID (L + 1 codes) is unique
(Rajput et al. 2023, TIGER, section 3.1). ``SemanticIdTable`` maps item ids to IDs and back and
finds items sharing a code prefix; ``semantic_id_report`` measures how good the codes are.

Shapes: codes int [N, L]; Semantic IDs int [N, L + 1]; embeddings float [N, D].
"""
from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from typing import Iterable, Sequence

import numpy as np

TABLE_HEADER_ITEM = "item_id"


def _as_codes(codes: np.ndarray | Sequence[Sequence[int]], name: str = "codes") -> np.ndarray:
    arr = np.asarray(codes)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D array [N, levels], got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative, got {int(arr.min())}")
    return arr.astype(np.int64)


def _group_ranks(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row: (size of its group of identical rows, its 0-based rank in the group by row order)."""
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")          # rows grouped, row order kept inside groups
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ranks = np.empty(len(codes), np.int64)
    ranks[order] = np.arange(len(codes)) - starts[inverse[order]]
    return counts[inverse], ranks


def disambiguate(codes: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
    """Appends a code making every tuple unique: codes [N, L] -> Semantic IDs [N, L + 1].

    Rows with the same L-tuple get 0, 1, 2, ... in input row order; a unique tuple gets 0 (TIGER).
    Example: [[1, 2], [1, 2], [0, 0]] -> [[1, 2, 0], [1, 2, 1], [0, 0, 0]].
    """
    codes = _as_codes(codes)
    if len(codes) == 0:
        return np.zeros((0, codes.shape[1] + 1), np.int64)
    _, ranks = _group_ranks(codes)
    return np.concatenate([codes, ranks[:, None]], axis=1)


def collision_rate(codes: np.ndarray) -> float:
    """Share of items whose full code tuple is shared with at least one other item; [N, L] -> [0, 1]."""
    codes = _as_codes(codes)
    if len(codes) == 0:
        return 0.0
    sizes, _ = _group_ranks(codes)
    return float(np.mean(sizes > 1))


def perplexity(codes: np.ndarray) -> float:
    """exp(H(p)) of the code distribution of one level, natural log; codes int [N] -> [1, #codes].

    Example: [0, 0, 1, 1] -> 2.0; [0, 0, 0, 1] -> exp(-(0.75 ln 0.75 + 0.25 ln 0.25)) ≈ 1.7548.
    """
    _, counts = np.unique(np.asarray(codes).reshape(-1), return_counts=True)
    if counts.sum() == 0:
        return 0.0
    p = counts / counts.sum()
    return float(np.exp(-np.sum(p * np.log(p))))


def category_purity(codes: np.ndarray, categories: np.ndarray) -> float:
    """Weighted share of the majority category inside each code: Σ_code max_c n(code, c) / N.

    codes int [N] (one level), categories int [N]; items with category < 0 are left out.
    Example: codes [0, 0, 0, 1, 1, 2], categories [5, 5, 6, 7, 7, 7] -> (2 + 2 + 1) / 6.
    """
    codes, categories = np.asarray(codes).reshape(-1), np.asarray(categories).reshape(-1)
    if codes.shape != categories.shape:
        raise ValueError(f"codes and categories must have the same length, got {codes.shape} and {categories.shape}")
    keep = categories >= 0
    if not keep.any():
        return float("nan")
    pairs, counts = np.unique(np.stack([codes[keep], categories[keep]], axis=1), axis=0, return_counts=True)
    best: dict[int, int] = defaultdict(int)
    for (code, _), n in zip(pairs.tolist(), counts.tolist()):
        best[code] = max(best[code], n)
    return float(sum(best.values()) / keep.sum())


def random_category_purity(codes: np.ndarray, categories: np.ndarray, seed: int = 0) -> float:
    """``category_purity`` after a seeded random permutation of the codes among the labelled items:
    the same code sizes, assigned without regard to category (the chance level)."""
    codes, categories = np.asarray(codes).reshape(-1), np.asarray(categories).reshape(-1)
    keep = categories >= 0
    shuffled = np.random.default_rng(seed).permutation(codes[keep])
    return category_purity(shuffled, categories[keep])


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _top_k_neighbours(queries: np.ndarray, rows: np.ndarray, query_index: np.ndarray, k: int) -> np.ndarray:
    """Indices [Q, k] of the k highest-cosine rows for each query (unit vectors), the query itself left out."""
    scores = queries @ rows.T
    scores[np.arange(len(query_index)), query_index] = -np.inf
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def knn_recall(original: np.ndarray, reconstructed: np.ndarray, k: int = 10, max_queries: int = 2000,
               seed: int = 0, chunk: int = 0) -> float:
    """Mean |kNN_k(original) ∩ kNN_k(reconstructed)| / k by cosine, each item's own row left out.

    Queries: all items, or ``max_queries`` sampled (seeded) when N is larger; each query is ranked
    against all N items in both spaces. Ties (e.g. items sharing a code tuple reconstruct
    identically) are broken arbitrarily. original, reconstructed [N, D] -> [0, 1].
    """
    a, b = _unit_rows(original), _unit_rows(reconstructed)
    if a.shape != b.shape:
        raise ValueError(f"original and reconstructed must have the same shape, got {a.shape} and {b.shape}")
    n = len(a)
    if n < 2:
        raise ValueError(f"kNN recall needs at least 2 items, got {n}")
    k = min(k, n - 1)
    # queries per block: the evaluators' score budget, at most 512 (512 queries x 1M items, with the scores' negation
    # and argpartition's int64 indices, were 8 GB a block)
    if not chunk:
        from recsys.evaluation.metrics import score_batch_size

        chunk = score_batch_size(n, most=512)
    rng = np.random.default_rng(seed)
    queries = np.arange(n) if n <= max_queries else np.sort(rng.choice(n, max_queries, replace=False))
    hits = 0
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk]
        top_a = _top_k_neighbours(a[q], a, q, k)
        top_b = _top_k_neighbours(b[q], b, q, k)
        hits += sum(len(np.intersect1d(x, y, assume_unique=True)) for x, y in zip(top_a, top_b))
    return float(hits / (len(queries) * k))


REPORT_BLOCK = 65536  # items per block of the report's [N, D] arithmetic


def semantic_id_report(embeddings: np.ndarray, codes: np.ndarray, reconstructed: np.ndarray,
                       categories: np.ndarray | None = None, k: int = 10, seed: int = 0,
                       codebook_size: int | None = None, max_queries: int = 2000) -> dict:
    """Quality of a set of Semantic IDs.

    embeddings, reconstructed float [N, D]; codes int [N, L] (before disambiguation); categories
    int [N] (-1 = unknown) or None. Returns a JSON-ready dict:

    * ``reconstruction_mse`` mean over items and features of (x - x̂)²; ``reconstruction_cosine``
      mean cos(x, x̂);
    * ``levels``: per level ``codes_used``, ``usage`` (codes_used / codebook_size, if given) and
      ``perplexity`` exp(H(p_code));
    * ``collision_rate`` share of items whose L-tuple is shared, ``max_items_per_tuple``,
      ``collision_rate_disambiguated`` (0 by construction, checked);
    * ``category_purity`` of first-level codes and ``random_category_purity`` (same code sizes,
      seeded shuffle), None without categories;
    * ``knn_recall@k`` of reconstructed vs original neighbours by cosine (``max_queries`` queries).
    """
    x, x_hat, codes = np.asarray(embeddings), np.asarray(reconstructed), _as_codes(codes)
    if x.shape != x_hat.shape or x.ndim != 2 or len(codes) != len(x):
        raise ValueError(f"embeddings {x.shape}, reconstructed {x_hat.shape} and codes {codes.shape} must "
                         "describe the same N items")
    # in row blocks (one block up to 65,536 items: the same arithmetic as whole arrays), never a float64 copy of
    # [N, D] at once (two of them were 8 GB at 1M x 512)
    blocks = [slice(s, s + REPORT_BLOCK) for s in range(0, len(x), REPORT_BLOCK)] or [slice(0, 0)]
    cosine = np.concatenate([np.sum(_unit_rows(x[b]) * _unit_rows(x_hat[b]), axis=1) for b in blocks])
    squares = [np.sum((np.asarray(x[b], np.float64) - np.asarray(x_hat[b], np.float64)) ** 2) for b in blocks]
    levels = []
    for level in range(codes.shape[1]):
        used = int(len(np.unique(codes[:, level])))
        levels.append({"level": level, "codes_used": used,
                       "usage": used / codebook_size if codebook_size else None,
                       "perplexity": perplexity(codes[:, level])})
    sizes, _ = _group_ranks(codes)
    after = collision_rate(disambiguate(codes))
    if after != 0.0:
        raise AssertionError(f"disambiguated IDs still collide ({after})")  # never: disambiguate's contract
    report = {
        "num_items": int(len(x)),
        "reconstruction_mse": float(np.sum(squares) / x.size) if x.size else float("nan"),
        "reconstruction_cosine": float(np.mean(cosine)),
        "levels": levels,
        "collision_rate": collision_rate(codes),
        "max_items_per_tuple": int(sizes.max()),
        "collision_rate_disambiguated": after,
        "category_purity": None,
        "random_category_purity": None,
        f"knn_recall@{k}": knn_recall(x, x_hat, k=k, max_queries=max_queries, seed=seed),
    }
    if categories is not None:
        cats = np.asarray(categories).reshape(-1)
        if len(cats) != len(x):
            raise ValueError(f"categories must have one entry per item ({len(x)}), got {len(cats)}")
        if (cats >= 0).any():
            report["category_purity"] = category_purity(codes[:, 0], cats)
            report["random_category_purity"] = random_category_purity(codes[:, 0], cats, seed=seed)
    return report


class SemanticIdTable:
    """Item ids ↔ Semantic IDs (tuples of L + 1 codes), with lookups by code prefix.

    Saved as a TSV with header ``item_id c0 c1 ... c_L``, one item per row in table order
    (readable by pandas, and by ``tf.lookup.TextFileInitializer`` inside a SavedModel).
    """

    def __init__(self, item_ids: Sequence[str], semantic_ids: np.ndarray | Sequence[Sequence[int]]):
        ids = _as_codes(semantic_ids, "semantic_ids")
        items = [str(i) for i in item_ids]
        if len(items) != len(ids):
            raise ValueError(f"{len(items)} item ids but {len(ids)} Semantic IDs")
        seen: set[str] = set()
        duplicates = sorted({i for i in items if i in seen or seen.add(i)})
        if duplicates:
            raise ValueError(f"duplicate item ids {duplicates[:10]} ({len(duplicates)} in all); "
                             "each item must appear once")
        by_id: dict[tuple[int, ...], str] = {}
        for item, sid in zip(items, map(tuple, ids.tolist())):
            if sid in by_id:
                raise ValueError(f"items {by_id[sid]!r} and {item!r} share Semantic ID {sid}; "
                                 "build the table with SemanticIdTable.from_codes (it disambiguates)")
            by_id[sid] = item
        self._items = items
        self._ids = ids
        self._position = {item: row for row, item in enumerate(items)}
        self._by_id = by_id
        self._prefix_index: dict[int, dict[tuple[int, ...], list[int]]] = {}

    @classmethod
    def from_codes(cls, item_ids: Sequence[str], codes: np.ndarray) -> "SemanticIdTable":
        """Table from RQ-VAE codes [N, L]: appends the disambiguation code (row order decides)."""
        return cls(item_ids, disambiguate(codes))

    @property
    def item_ids(self) -> list[str]:
        return list(self._items)

    @property
    def semantic_ids(self) -> np.ndarray:
        """int64 [N, L + 1], in table order (a copy)."""
        return self._ids.copy()

    @property
    def id_length(self) -> int:
        return int(self._ids.shape[1])

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._position

    def id_of(self, item_id: str) -> tuple[int, ...]:
        """The Semantic ID of an item."""
        if item_id not in self._position:
            raise KeyError(f"item {item_id!r} is not in the Semantic ID table ({len(self)} items)")
        return tuple(self._ids[self._position[item_id]].tolist())

    def item_of(self, semantic_id: Iterable[int]) -> str:
        """The item holding a full Semantic ID (L + 1 codes)."""
        key = tuple(int(c) for c in semantic_id)
        if len(key) != self.id_length:
            raise KeyError(f"a Semantic ID has {self.id_length} codes, got {len(key)}: {key}")
        if key not in self._by_id:
            raise KeyError(f"no item has Semantic ID {key}")
        return self._by_id[key]

    def items_with_prefix(self, prefix: Iterable[int]) -> list[str]:
        """Items whose ID starts with ``prefix`` (1 to L + 1 codes), in table order."""
        key = tuple(int(c) for c in prefix)
        if not 1 <= len(key) <= self.id_length:
            raise ValueError(f"prefix must have 1 to {self.id_length} codes, got {len(key)}")
        return [self._items[row] for row in self._index(len(key)).get(key, [])]

    def neighbours(self, item_id: str, prefix_length: int) -> list[str]:
        """Other items sharing the first ``prefix_length`` codes of ``item_id``'s ID, in table order."""
        prefix = self.id_of(item_id)[:prefix_length]
        return [i for i in self.items_with_prefix(prefix) if i != item_id]

    def _index(self, length: int) -> dict[tuple[int, ...], list[int]]:
        if length not in self._prefix_index:
            index: dict[tuple[int, ...], list[int]] = defaultdict(list)
            for row, sid in enumerate(self._ids[:, :length].tolist()):
                index[tuple(sid)].append(row)
            self._prefix_index[length] = dict(index)
        return self._prefix_index[length]

    def save(self, path: str) -> None:
        """Writes the TSV (see class docstring). Item ids may not contain tabs or newlines."""
        bad = [i for i in self._items if any(ch in i for ch in "\t\r\n")]
        if bad:
            raise ValueError(f"item ids with tabs or newlines cannot be written to a TSV: {bad[:5]!r}")
        from transform import fileio

        out = io.StringIO(newline="")
        writer = csv.writer(out, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, escapechar=None)
        writer.writerow([TABLE_HEADER_ITEM] + [f"c{level}" for level in range(self.id_length)])
        for item, sid in zip(self._items, self._ids.tolist()):
            writer.writerow([item] + sid)
        fileio.makedirs(os.path.dirname(path if "://" in path else os.path.abspath(path)))
        fileio.write_bytes(path, out.getvalue().encode("utf-8"))

    @classmethod
    def load(cls, path: str) -> "SemanticIdTable":
        """Reads a TSV written by ``save``; errors name the file and line."""
        from transform import fileio

        text = io.StringIO(fileio.read_bytes(path).decode("utf-8"), newline="")
        rows = list(csv.reader(text, delimiter="\t", quoting=csv.QUOTE_NONE))
        if not rows or rows[0][:1] != [TABLE_HEADER_ITEM] or len(rows[0]) < 2:
            raise ValueError(f"{path}: not a Semantic ID table (expected header 'item_id\\tc0\\t...')")
        width = len(rows[0])
        items, ids = [], []
        for line, row in enumerate(rows[1:], start=2):
            if len(row) != width:
                raise ValueError(f"{path} line {line}: expected {width} fields, got {len(row)}")
            try:
                ids.append([int(c) for c in row[1:]])
            except ValueError as err:
                raise ValueError(f"{path} line {line}: codes must be integers ({err})") from None
            items.append(row[0])
        return cls(items, np.asarray(ids, np.int64).reshape(len(items), width - 1))
