"""The twin export every retriever shares: a ScaNN SavedModel and its brute-force twin.

Stock TF Serving lacks ScaNN's ops, so each retrieval model is exported twice
from the same vectors: with a ScaNN index (tuned here until its recall@10
against brute force reaches a target on real validation queries) and exact,
in stock TF ops. Both get warm-up records and one report. ``IndexBuilder``
(two-tower) and ``DualHeadExporter`` (dual-head student) call
:func:`export_twins`; the graph retriever and rankers reuse it.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from export.retrieval import BRUTE_FORCE, SCANN, ScannParams, scann_searcher
from recsys import names as N
from trainer.warmup import recommend_requests, write_warmup


#: validation queries ScaNN is tuned on, at most: beyond, a seeded uniform sample of this many (a query's
#: recall@10 lies in [0, 1], so the mean over 10,000 has a standard error of at most 0.005, and about 0.002
#: near the 0.95 target). MovieLens-100K (943 users) and Instacart (593) tune on every query, as before; at
#: 50,000 validation users × 100,000 items the exact [Q, N] scores alone were 20 GB (issue 14).
MAX_TUNING_QUERIES = 10_000
#: float32 scores of one exact-search block, at most (1 GiB): ``max(1, EXACT_SCORES // N)`` queries per block
#: (1M items: 268; MovieLens' and Instacart's queries are one block, one matmul, as before)
EXACT_SCORES = 2 ** 28


def tuning_rows(n: int, limit: int = MAX_TUNING_QUERIES, seed: int = 0) -> np.ndarray:
    """The rows of ``n`` queries that :func:`tuning_queries` keeps, in order: all when ``n <= limit``, else
    ``limit`` drawn uniformly (seeded). A caller whose query vectors are costly (the dual head's transformer
    over 458,000 validation histories at 10M events) embeds only these rows (issue 14)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def tuning_queries(queries: np.ndarray, limit: int = MAX_TUNING_QUERIES, seed: int = 0) -> np.ndarray:
    """``queries`` when there are at most ``limit``; else ``limit`` of them drawn uniformly (seeded), in order."""
    if len(queries) <= limit:
        return queries
    return queries[tuning_rows(len(queries), limit, seed)]


#: histories embedded per call by :func:`embed_histories`
HISTORY_BLOCK = 4096


def embed_histories(embed: Callable[[tf.Tensor], tf.Tensor], histories: Sequence[Sequence[str]],
                    block: int = HISTORY_BLOCK) -> np.ndarray:
    """``embed`` (a model's anonymous-history embedding: string [B, L], "" padded → [B, D]) over ``histories``,
    ``block`` at a time, each block padded to its own longest history.

    The served embeddings ignore "" padding (the two-tower takes the last ``max_history`` known items, the graph
    retriever their mean), so the blocks give what one call would. One call padded every history to the longest:
    500,000 validation histories at 10M events made a Python object per cell before the matmul (issue 14).
    """
    parts = []
    for s in range(0, len(histories), block):
        rows = [list(h) for h in histories[s:s + block]]
        width = max([len(h) for h in rows] + [1])
        padded = np.array([h + [""] * (width - len(h)) for h in rows], dtype=object).astype(bytes)
        parts.append(np.asarray(embed(tf.constant(padded))))
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def exact_top_k(queries: tf.Tensor, candidates: tf.Tensor, k: int, block: int = 0) -> np.ndarray:
    """Indices [Q, k] of the ``k`` highest dot products, ``block`` queries at a time (default: as many as keep
    the block's scores within ``EXACT_SCORES`` floats; a single block is one matmul)."""
    k = min(k, int(candidates.shape[0]))
    block = block or max(1, EXACT_SCORES // max(int(candidates.shape[0]), 1))
    parts = [tf.math.top_k(tf.matmul(queries[s:s + block], candidates, transpose_b=True), k).indices.numpy()
             for s in range(0, int(queries.shape[0]), block)]
    return np.concatenate(parts) if parts else np.zeros((0, k), np.int32)


def recall_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean |approx ∩ exact| / |exact| over queries; arrays [Q, k] of ids."""
    hits = [len(set(a) & set(e)) / max(len(e), 1) for a, e in zip(approx_ids.tolist(), exact_ids.tolist())]
    return float(np.mean(hits)) if hits else float("nan")


@dataclass(frozen=True)
class ScannTuning:
    params: ScannParams
    recall_at_10: float
    query_ms: float
    brute_force_ms: float
    tried: tuple[dict, ...]


def tune_scann(embeddings: np.ndarray, ids: np.ndarray, queries: np.ndarray, target_recall: float = 0.95,
               k: int = 10, final_k: int = 300) -> ScannTuning:
    """Cheapest ScaNN configuration whose recall@k against brute force reaches ``target_recall``.

    Tries increasing ``num_leaves_to_search`` (the main speed/recall knob) at
    ~sqrt(N) leaves, reordering with exact dot products; falls back to
    searching every leaf, which is exact up to quantisation + reordering; then, every leaf searched,
    doubles the candidates re-scored exactly up to the whole catalogue (exact). Quantisation is what
    fails when the scores are nearly flat: a two-tower trained one epoch on 20,000 synthetic items
    (top-1 to top-600 cosine spread 0.23, 10th to 11th 0.003) reached recall@10 0.83 with every leaf
    searched and 1,200 re-scored (issue 14), and the pipeline stopped there.
    """
    n = len(ids)
    leaves = int(np.clip(round(np.sqrt(n)), 1, 2000))
    cand = tf.constant(embeddings, tf.float32)
    q = tf.constant(queries, tf.float32)
    t0 = time.perf_counter()
    exact = exact_top_k(q, cand, k)
    bf_ms = (time.perf_counter() - t0) * 1000 / max(len(queries), 1)
    exact_ids = ids[exact]
    tried = []
    final_k = min(final_k, n)
    # re-score twice the final candidates exactly when the catalogue is large enough to make that cheap
    reorder = 2 * final_k if n > 4 * final_k else final_k
    settings = [ScannParams(leaves, max(1, int(round(leaves * frac))), reorder)
                for frac in (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)]
    while settings[-1].num_reordering_candidates < n:  # every leaf searched: more re-scored, up to all (exact)
        settings.append(ScannParams(leaves, leaves, min(n, 2 * settings[-1].num_reordering_candidates)))
    # one index for the whole sweep: the settings differ only in what is searched, which ScaNN takes per call
    # (a build per setting kept up to 18 indexes of 1M vectors alive, and GraphExporter was OOM-killed; issue 14)
    searcher = scann_searcher(cand, final_k, ScannParams(leaves, leaves, reorder))
    for p in settings:
        def search(x, p=p):
            return searcher.search_batched(x, final_num_neighbors=final_k, leaves_to_search=p.num_leaves_to_search,
                                           pre_reorder_num_neighbors=p.num_reordering_candidates).indices
        search(q[:1])  # warm
        t0 = time.perf_counter()
        got = search(q).numpy()
        ms = (time.perf_counter() - t0) * 1000 / max(len(queries), 1)
        got = ids[got[:, :k]].astype(str)
        rec = recall_at_k(got, exact_ids.astype(str))
        tried.append({"num_leaves": p.num_leaves, "num_leaves_to_search": p.num_leaves_to_search,
                      **({"num_reordering_candidates": p.num_reordering_candidates}
                         if p.num_reordering_candidates != reorder else {}),
                      "recall@10": round(rec, 4), "query_ms": round(ms, 4)})
        if rec >= target_recall:
            return ScannTuning(p, rec, ms, bf_ms, tuple(tried))
    raise RuntimeError(f"ScaNN never reached recall@{k} >= {target_recall} against brute force; tried {tried}")


def save(module: tf.Module, export_dir: str) -> None:
    """Saves with the ScaNN op namespace allowed (a no-op for the brute-force twin)."""
    tf.saved_model.save(module, export_dir, signatures=module.signatures(),
                        options=tf.saved_model.SaveOptions(namespace_whitelist=["Scann"]))


def _exported_recall(scann_module, bruteforce_module, queries: np.ndarray, item_ids, k: int = 10) -> float:
    """recall@k of the exported module's ScaNN index against exact top-k, on the tuning queries."""
    q = tf.constant(queries, tf.float32)
    exact = exact_top_k(q, bruteforce_module.catalog_embeddings, k)
    _, got = scann_module.scann(q)
    return recall_at_k(got.numpy()[:, :k].astype(str), np.asarray(item_ids)[exact].astype(str))


@dataclass(frozen=True)
class TwinExport:
    bruteforce: tf.Module
    scann: tf.Module
    tuning: ScannTuning

    def report(self) -> dict:
        t = self.tuning
        return {"params": vars(t.params), "recall@10_vs_brute_force": t.recall_at_10, "query_ms": t.query_ms,
                "brute_force_query_ms": t.brute_force_ms, "tried": list(t.tried)}


def export_twins(build: Callable[[str, ScannParams | None], tf.Module], embeddings: np.ndarray,
                 item_ids: np.ndarray, queries: Callable[[tf.Module], np.ndarray], *, model_name: str,
                 scann_dir: str, bruteforce_dir: str, warmup_histories: Sequence[Sequence[str]],
                 target_recall: float = 0.95, final_k: int = 600, log: Callable[[str], None] = print,
                 extra_warmup: Sequence = ()) -> TwinExport:
    """Builds, tunes and saves ``model_name`` (ScaNN) and its brute-force twin ``recsys.names.BRUTE_FORCE_TWINS``.

    Args:
      build: ``build(index, scann_params)`` → the serving module (``index`` is ``BRUTE_FORCE`` or ``SCANN``).
      embeddings, item_ids: the catalogue vectors [N, D] and ids [N], in the module's catalogue order.
      queries: ``queries(bruteforce_module)`` → validation query vectors [Q, D] to tune ScaNN on (at most
        ``MAX_TUNING_QUERIES`` of them are used: ``tuning_queries``).
      scann_dir, bruteforce_dir: SavedModel directories to write.
      warmup_histories: histories for the warm-up requests of both twins.
      final_k: candidates ScaNN returns per query (``max_k + max_exclude``).
      extra_warmup: more warm-up requests (``trainer.warmup.WarmupRequest``) for the model's other signatures.
    """
    bf = build(BRUTE_FORCE, None)
    every = np.asarray(queries(bf), np.float32)
    q = tuning_queries(every)
    tuning = tune_scann(embeddings, np.asarray(item_ids), q, target_recall=target_recall,
                        final_k=min(final_k, len(item_ids)))
    log(f"[{model_name}] ScaNN {tuning.params} recall@10 vs brute force {tuning.recall_at_10:.4f} on "
        f"{len(q):,} validation queries{f' (sampled of {len(every):,})' if len(q) < len(every) else ''}; "
        f"{tuning.query_ms:.3f} ms/query vs brute force "
        f"{tuning.brute_force_ms:.3f} ms/query (batched)")
    sc = build(SCANN, tuning.params)
    exported = _exported_recall(sc, bf, q, item_ids)
    if abs(exported - tuning.recall_at_10) > 1e-9:
        raise RuntimeError(f"[{model_name}] the exported ScaNN index differs from the tuned one: recall@10 "
                           f"{exported:.4f} vs {tuning.recall_at_10:.4f} when tuned (the build must be deterministic)")
    requests = recommend_requests(warmup_histories) + list(extra_warmup)
    for module, out, name in ((bf, bruteforce_dir, N.BRUTE_FORCE_TWINS[model_name]), (sc, scann_dir, model_name)):
        save(module, out)
        write_warmup(out, name, requests)
    return TwinExport(bf, sc, tuning)
