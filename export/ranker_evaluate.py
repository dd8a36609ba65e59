"""End-to-end evaluation of the exported ranker on the exposures of one split, beside the retrievers' orders.

Every list is the top-10 of one unit's candidates (targets outside the candidate set
are misses, so every row is comparable with the full-ranking tables): each source's
own order (``graph``, ``two_tower``, ``repeat``, ``popularity``: their top-10 is exactly
what the retriever returns), the union in retriever order, and the ranker's score
through the exported SavedModel's ``rank`` signature (exactly what a client gets).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from recsys import features as F
from recsys import names as N
from trainer.ranker import metrics as M
from transform import examples_io
from transform import exposures as X

UNION = "candidates (retriever order)"


def read_requests(exposures_uri: str, split: str, users: frozenset[str] | None = None) -> dict:
    """The split's exposure rows (or those of ``users``) as raw columns (strings decoded)."""
    cols = examples_io.read_examples(examples_io.split_files(exposures_uri, split), F.feature_spec(X.EXPOSURE_FEATURES),
                                     users=users)
    dec = examples_io._decode
    return {
        "user_ids": dec(cols[F.USER_ID.name]),
        "candidates": [dec(c) for c in cols[X.CANDIDATE_ITEM_ID.name]],
        "features": [np.asarray(f, np.float32).reshape(-1, len(X.FEATURE_NAMES)) for f in cols[X.CANDIDATE_FEATURES.name]],
        "click": [np.asarray(c, np.float32) for c in cols[X.LABEL_CLICK.name]],
        "conversion": [np.asarray(c, np.float32) for c in cols[X.LABEL_CONVERSION.name]],
        "history": [dec(a) for a in cols[X.ACTION_ITEM_ID.name]],
        "types": [dec(a) for a in cols[X.ACTION_TYPE.name]],
        "gaps": [np.asarray(g, np.int64) for g in cols[X.ACTION_GAP.name]],
        "targets": [dec(t) for t in cols[F.TARGET_ITEM_ID.name]],
        "request_time": np.asarray(cols[F.TARGET_TIMESTAMP.name], np.int64),
    }


def _pad(rows: list, width: int, fill, dtype) -> np.ndarray:
    out = np.full((len(rows), width), fill, dtype=dtype)
    for r, v in enumerate(rows):
        out[r, :len(v)] = v
    return out


def batch_inputs(req: dict, rows: range) -> dict[str, np.ndarray]:
    """Served ``rank`` inputs for the units ``rows`` of ``req``."""
    h = max([len(req["history"][r]) for r in rows] + [1])
    n = max([len(req["candidates"][r]) for r in rows] + [1])
    width = len(X.SOURCES) * len(X.SOURCE_FEATURES)
    feats = np.zeros((len(rows), n, width), np.float32)
    for i, r in enumerate(rows):
        feats[i, :len(req["candidates"][r])] = req["features"][r][:, :width]
    return {N.USER_ID: np.array([req["user_ids"][r] for r in rows], dtype=object).astype(bytes),
            N.HISTORY: _pad([req["history"][r] for r in rows], h, "", object).astype(bytes),
            N.HISTORY_TYPES: _pad([req["types"][r] for r in rows], h, "", object).astype(bytes),
            N.HISTORY_GAPS: _pad([req["gaps"][r] for r in rows], h, 0, np.int64),
            N.REQUEST_TIME: np.asarray([req["request_time"][r] for r in rows], np.int64),
            N.CANDIDATES: _pad([req["candidates"][r] for r in rows], n, "", object).astype(bytes),
            N.RETRIEVAL_FEATURES: feats}


def score_with_saved_model(ranker_dir: str, req: dict, batch_units: int = 16) -> dict[str, list[np.ndarray]]:
    """``rank`` outputs per unit (arrays over the unit's candidates)."""
    import tensorflow as tf

    fn = tf.saved_model.load(ranker_dir).signatures[N.RANK]
    out: dict[str, list[np.ndarray]] = {k: [] for k in (N.PCTR, N.PCVR, N.PCTCVR, N.SCORE)}
    for s in range(0, len(req["user_ids"]), batch_units):
        rows = range(s, min(s + batch_units, len(req["user_ids"])))
        res = fn(**{k: tf.constant(v) for k, v in batch_inputs(req, rows).items()})
        for i, r in enumerate(rows):
            n = len(req["candidates"][r])
            for k in out:
                out[k].append(res[k].numpy()[i, :n])
    return out


def _dense(req: dict, values: list[np.ndarray], positions: dict[str, int]):
    n = max([len(c) for c in req["candidates"]] + [1])
    u = len(req["candidates"])
    pad = len(positions)
    items = _pad([[positions.get(i, pad) for i in c] for c in req["candidates"]], n, pad, np.int64)
    mask = _pad([[i in positions for i in c] for c in req["candidates"]], n, False, bool)  # unknown ids: no slot
    feats = np.zeros((u, n, len(X.FEATURE_NAMES)), np.float32)
    for r, f in enumerate(req["features"]):
        feats[r, :len(f)] = f
    dense = _pad(values, n, -np.inf, np.float64)
    return items, mask, feats, dense


def evaluate_exposures(exposures_uri: str, split: str, positions: dict[str, int], ranker_dir: str | None,
                       k: int = 10, progress: Callable[[str], None] = print, sample_users: int = 0,
                       sample_seed: int = 0) -> dict[str, dict[str, float]]:
    """Rows: each source's own order, the union in retriever order, and the ranker (when ``ranker_dir``).

    ``sample_users`` > 0: only the units of that many users, drawn as the retrieval evaluators'
    ``--eval-users`` draws them (``examples_io.sampled_users``); every row then says ``users evaluated`` and
    ``users in split`` (no confidence half-widths here: these metrics are not kept per user)."""
    files = examples_io.split_files(exposures_uri, split)
    users = examples_io.sampled_users(files, sample_users, sample_seed)
    population = len(examples_io.user_ids(files)) if users is not None else 0
    req = read_requests(exposures_uri, split, users)
    num_items = len(positions)
    targets = [np.array([positions[t] for t in ts if t in positions], np.int64) for ts in req["targets"]]
    items, mask, feats, _ = _dense(req, [np.zeros(len(c)) for c in req["candidates"]], positions)
    rows: dict[str, dict[str, float]] = {}
    for source in X.SOURCES:
        scores = M.source_scores(feats, source)
        if np.isfinite(scores).any():
            rows[source] = M.list_metrics(items, mask & np.isfinite(scores), feats, scores, targets, num_items, k)
    rows[UNION] = M.list_metrics(items, mask, feats, M.merged_order_scores(mask), targets, num_items, k)
    if ranker_dir:
        served = score_with_saved_model(ranker_dir, req)
        _, _, _, score = _dense(req, served[N.SCORE], positions)
        metrics = M.list_metrics(items, mask, feats, score, targets, num_items, k)
        _, _, _, pctr = _dense(req, served[N.PCTR], positions)
        _, _, _, pctcvr = _dense(req, served[N.PCTCVR], positions)
        click = _pad(req["click"], items.shape[1], 0, np.float32)
        conv = _pad(req["conversion"], items.shape[1], 0, np.float32)
        metrics.update(M.exposure_metrics(req["user_ids"], mask, click, conv, np.where(mask, pctr, 0),
                                          np.where(mask, pctcvr, 0)))
        rows[N.RANKER] = metrics
    if users is not None:
        for row in rows.values():
            row.update({"users evaluated": len(req["user_ids"]), "users in split": population})
    progress(f"[evaluate] {split}: ranker and candidate orders on {len(targets):,} units"
             + (f" (a sample of {len(req['user_ids']):,} of {population:,})" if users is not None else ""))
    return rows
