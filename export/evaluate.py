"""Offline evaluation of exported retrieval models and baselines on one split.

Full ranking over the whole catalogue, no sampled negatives. On leave-one-out
data (MovieLens) every item already in the user's history is masked: the
convention of RecBole's general models (Pop, ItemKNN). RecBole's *sequential*
models (SASRec, GRU4Rec, BERT4Rec) are evaluated without that mask, so every
exported sequence model also gets a row labelled ``<name> (unmasked)``: those
rows stand beside published sequential results. On basket data
(leave-last-order-out) repeats are allowed and expected, so nothing is masked.

The exported models are evaluated through their own ``serving_default``
signature (``recommend_orders`` where they have it), i.e. exactly what a client
gets from the model server.
"""
from __future__ import annotations

import gc
import logging
import time
from typing import Callable, Collection

import numpy as np

from transform import examples_io
from recsys.evaluation import baselines as baseline_scorers
from recsys.evaluation import metrics
from recsys import names as N
from recsys.names import LEAVE_LAST_ORDER_OUT, LEAVE_ONE_OUT

_log = logging.getLogger("recsys.export")
K = 10
#: requests per call to a SavedModel in ``saved_model_topk`` (256 unless ``evaluate_split``'s ``batch_sizes`` says)
BATCH_SIZE = 256
#: requests × catalogue items of one generative call, at most: ``beam_batch_size``
BEAM_CALL_CELLS = 2 ** 26


def beam_batch_size(num_items: int, most: int = BATCH_SIZE) -> int:
    """Requests per call to a ``generative`` SavedModel. A call holds [requests, items] tables: the allowed
    items and, in the constrained beam search, their prefix sums (``trainer.constrained_beam``); with the
    request's exclusions about 20 bytes a cell. ``most`` (256) up to 262,144 items, then as many as keep a call
    within ``BEAM_CALL_CELLS`` (67 at 1M items: +1.1 GB a call in ``benchmarks/constrained_beam_scale.py``). The
    first search kept a [requests, beams, items] mask, and this was 13 at 1M items and 20 beams (issue 14)."""
    return max(1, min(most, BEAM_CALL_CELLS // max(1, num_items)))


BASELINES = ("popularity", "item_cf", "item_knn", "user_most_frequent")  # the rows ``baselines=True`` adds
UNMASKED = " (unmasked)"  # label suffix of a sequence model's row evaluated without the history mask


def _to_positions(items: list[str], pos: dict[str, int]) -> np.ndarray:
    return np.array([pos[i] for i in items if i in pos], dtype=np.int64)


def _pad(rows: list[list[str]]) -> np.ndarray:
    width = max([len(r) for r in rows] + [1])
    return np.array([r + [""] * (width - len(r)) for r in rows], dtype=object).astype(bytes)


def saved_model_topk(model_dir: str, histories: list[list[str]], exclude_history: bool, pos: dict[str, int],
                     k: int = K, batch_size: int = BATCH_SIZE, order_pos: list[list[int]] | None = None,
                     user_ids: list[str] | None = None) -> np.ndarray:
    """Top-k catalogue positions [R, k] from a retrieval SavedModel's serving signature (-1 = no item).

    Models with a ``recommend_orders`` signature get the histories' order positions too.
    With ``user_ids`` the model is asked through ``recommend_user`` (models that learn a
    vector per user, e.g. the graph retriever; the histories are then only excluded).
    """
    import tensorflow as tf
    import scann  # noqa: F401  (ScaNN ops for the ScaNN twin)

    signatures = tf.saved_model.load(model_dir).signatures
    with_orders = order_pos is not None and N.RECOMMEND_ORDERS in signatures and user_ids is None
    fn = signatures[N.RECOMMEND_USER if user_ids is not None else
                    N.RECOMMEND_ORDERS if with_orders else N.SERVING_DEFAULT]
    out = np.full((len(histories), k), -1, dtype=np.int64)
    for s in range(0, len(histories), batch_size):
        batch = histories[s:s + batch_size]
        padded = tf.constant(_pad(batch))
        exclude = padded if exclude_history else tf.constant([[b""]] * len(batch))
        if user_ids is not None:
            res = fn(user_id=tf.constant(user_ids[s:s + batch_size]), k=tf.constant([k] * len(batch), tf.int32),
                     exclude=exclude)
            for r, ids in enumerate(res["item_ids"].numpy().tolist()):
                got = [pos.get(i.decode(), -1) for i in ids][:k]
                out[s + r, : len(got)] = got
            continue
        extra = {}
        if with_orders:
            width = padded.shape[1]
            extra["order_pos"] = tf.constant(
                [p + [0] * (width - len(p)) for p in order_pos[s:s + batch_size]], tf.int64)
        res = fn(history=padded, k=tf.constant([k] * len(batch), tf.int32), exclude=exclude, **extra)
        for r, ids in enumerate(res["item_ids"].numpy().tolist()):
            got = [pos.get(i.decode(), -1) for i in ids][:k]
            out[s + r, : len(got)] = got
    return out


def evaluate_split(examples_uri: str, split: str, protocol: str, model_dirs: dict[str, str],
                   k: int = K, progress: Callable[[str], None] = print,
                   user_models: Collection[str] = (), baselines: bool = True,
                   training: dict | None = None, sample_users: int = 0,
                   sample_seed: int = 0, batch_sizes: dict[str, int] | None = None) -> dict[str, dict[str, float]]:
    """Metrics of the baselines and of every model in ``model_dirs`` on ``split``.

    ``user_models``: models asked by user id (``recommend_user``); they are not sequence
    models, so they get the history mask only (RecBole's convention for general models).
    ``baselines=False``: the models only (an evaluator that shows another's baseline rows: reading the
    training interactions the baselines fit on is most of their cost). ``training``: those interactions
    (``examples_io.training_interactions``), when the caller already read them for another split.
    ``sample_users`` > 0: evaluate that many of the split's users, drawn uniformly without replacement
    (``metrics.sample_rows(user_ids, sample_users, sample_seed)``: the same users for every evaluator given the
    same numbers), still ranking the whole catalogue for each; every row then also holds the 95% confidence
    half-widths of HR, Recall and NDCG (``"NDCG@10 ci95"``, ``metrics.RankingAccumulator.confidence``) and
    ``"users evaluated"`` / ``"users in split"``. 0 (default): every user, the rows as before.
    ``batch_sizes``: requests per call for some of ``model_dirs`` (``BATCH_SIZE`` for the others).
    """
    if protocol not in (LEAVE_ONE_OUT, LEAVE_LAST_ORDER_OUT):
        raise ValueError(f"Unknown protocol {protocol!r}")
    catalog = examples_io.read_catalog(examples_uri)
    pos = catalog.positions()
    n = len(pos)
    rows = examples_io.read_rows(examples_uri, split)
    population = len(rows.user_ids)
    keep = metrics.sample_rows(rows.user_ids, sample_users, sample_seed)
    sampled = len(keep) < population
    if sampled:
        rows = _select_rows(rows, keep)
        progress(f"[evaluate] {split}: {len(keep):,} of {population:,} users sampled (seed {sample_seed})")
    ci = {"population": population} if sampled else {}
    exclude_history = protocol == LEAVE_ONE_OUT
    targets = [_to_positions(t, pos) for t in rows.targets]
    histories = [_to_positions(h, pos) for h in rows.histories]
    users = np.arange(len(rows.user_ids))
    scorers: dict[str, object] = {}
    if baselines:
        train = examples_io.training_interactions(examples_uri) if training is None else training
        train_hist = [_to_positions(h, pos) for h in train.values()]
        scorers = {
            "popularity": baseline_scorers.Popularity().fit(train_hist, n),
            "item_cf": baseline_scorers.ItemCF().fit(train_hist, n),
            "item_knn": baseline_scorers.ItemKNN().fit(train_hist, n),  # RecBole 1.2.1 defaults: k=100, shrink=0
        }
        if protocol == LEAVE_LAST_ORDER_OUT:
            scorers["user_most_frequent"] = baseline_scorers.UserMostFrequent().fit(train_hist, n)
    results: dict[str, dict[str, float]] = {}
    for name, scorer in scorers.items():
        t0 = time.time()
        results[name] = metrics.evaluate_scorer(scorer.score, users, histories, targets, n, k=k,
                                                exclude_history=exclude_history, **ci)
        progress(f"[evaluate] {split}: {name} done in {time.time() - t0:.1f}s")
    modes = [(True, ""), (False, UNMASKED)] if exclude_history else [(False, "")]
    for name, model_dir in model_dirs.items():
        by_user = name in user_models
        for masked, suffix in modes[:1] if by_user else modes:
            t0 = time.time()
            top = saved_model_topk(model_dir, rows.histories, masked, pos, k=k, order_pos=rows.history_order_pos,
                                   user_ids=rows.user_ids if by_user else None,
                                   batch_size=(batch_sizes or {}).get(name, BATCH_SIZE))
            results[name + suffix] = metrics.ranking_metrics(top, targets, n, k=k, **ci)
            # the loaded SavedModel is in reference cycles: collected now, its memory is reused by the next load
            # (the 1M rung's dual_retrieval, 5.1 GB resident once loaded, loaded twice more: +0.7 GB a reload with
            # a collection, +2.1 GB without: benchmarks/saved_model_reload_memory.py); the DualHeadEvaluator's
            # fifth load was killed at 22.5 GB (issue 14)
            gc.collect()
            progress(f"[evaluate] {split}: {name + suffix} done in {time.time() - t0:.1f}s")
    if sampled:
        for values in results.values():
            values.update({"users evaluated": float(len(keep)), "users in split": float(population)})
    return results


def _select_rows(rows: examples_io.SequenceRows, keep: np.ndarray) -> examples_io.SequenceRows:
    """``rows`` restricted to the row indices ``keep`` (every field, in ``keep``'s order)."""
    import dataclasses

    picked = {}
    for field in dataclasses.fields(rows):
        value = getattr(rows, field.name)
        picked[field.name] = value[keep] if isinstance(value, np.ndarray) else [value[i] for i in keep.tolist()]
    return examples_io.SequenceRows(**picked)
