"""Inference on numpy splits and full-ranking evaluation of the student (exact top-k) and the teacher (beam)."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from trainer.dual_head.data import SequenceData
from trainer.dual_head.model import DualHeadModel


def user_vectors(model: DualHeadModel, data: SequenceData, batch_size: int = 1024) -> np.ndarray:
    """Retrieval-head user vectors of every row [R, D]."""
    out = []
    for s in range(0, len(data.history), batch_size):
        states, mask = model.encode(tf.constant(data.history[s:s + batch_size]),
                                    tf.constant(data.order_rel[s:s + batch_size]),
                                    tf.constant(data.events[s:s + batch_size]))
        out.append(model.user_vector(states, mask).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.d_model), np.float32)


#: catalogue items whose retrieval-head vectors are computed per call by :func:`catalogue_vectors`
CATALOGUE_BLOCK = 65_536


def catalogue_vectors(model: DualHeadModel, block: int = CATALOGUE_BLOCK) -> np.ndarray:
    """Retrieval-head vectors of every catalogue item [N, D], ``block`` items per call.

    One call over the whole catalogue (MovieLens' and Instacart's is one block, as before) took the exporter
    from 5.4 GB to 10.6 GB at 1M items × 512-d content: the gathered content, its normalisation and the mapping
    network's layers, each a whole-catalogue copy (issue 14)."""
    parts = [model.item_vectors(tf.range(s, min(s + block, model.num_items))).numpy()
             for s in range(0, model.num_items, block)]
    return np.concatenate(parts) if parts else np.zeros((0, model.config.d_model), np.float32)


def retrieval_topk(model: DualHeadModel, data: SequenceData, exclude_history: bool, k: int = 10) -> np.ndarray:
    """Student top-k catalogue indices [R, k] by exact dot product (history masked if asked)."""
    from recsys.evaluation.metrics import score_batch_size, top_k

    items = catalogue_vectors(model)
    users = user_vectors(model, data)
    b = score_batch_size(len(items))  # 1,024 rows up to 65,536 items, fewer above (memory)
    out = [top_k(users[s:s + b] @ items.T, k, exclude=data.full_history[s:s + b] if exclude_history else None)
           for s in range(0, len(users), b)]
    return np.concatenate(out) if out else np.zeros((0, k), np.int64)


def generative_topk(model: DualHeadModel, data: SequenceData, exclude_history: bool, k: int = 10,
                    beam_width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Teacher top-k by constrained beam search: catalogue indices [R, k] (-1 = none) and log-likelihoods."""
    width = max(beam_width or model.config.beam_width, k)
    n = model.num_items
    batch = int(max(8, min(256, 4_000_000 // (width * n))))
    items_out, scores_out = [], []
    # no AutoGraph: the search's loops run over static code positions (see ``Trainer.train_step``)
    search = tf.function(lambda h, o, e, allowed: _search(model, h, o, e, allowed, width), reduce_retracing=True,
                         autograph=False)
    for s in range(0, len(data.history), batch):
        allowed = np.ones((min(batch, len(data.history) - s), n), bool)
        if exclude_history:
            for r, h in enumerate(data.full_history[s:s + batch]):
                allowed[r, h] = False
        items, scores = search(tf.constant(data.history[s:s + batch]), tf.constant(data.order_rel[s:s + batch]),
                               tf.constant(data.events[s:s + batch]), tf.constant(allowed))
        items_out.append(items.numpy()[:, :k])
        scores_out.append(scores.numpy()[:, :k])
    return np.concatenate(items_out), np.concatenate(scores_out)


def generative_exact_topk(model: DualHeadModel, data: SequenceData, exclude_history: bool, k: int = 10,
                          rows_per_batch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Teacher top-k by scoring every catalogue item (no search): catalogue indices [R, k] and log-likelihoods.

    log P(item | user) of all N items per row (``shared_code_log_likelihood``, teacher forcing), the user's
    history set to -inf if ``exclude_history``, then exact top-k. What beam search approximates: with a beam
    as wide as the catalogue the two agree (tested). A row with fewer than k allowed items gets -1 slots.
    """
    n = model.num_items
    batch = rows_per_batch or int(max(1, min(256, 200_000 // n)))
    every = tf.range(n)
    score = tf.function(lambda h, o, e, cands: model.generative_head.shared_code_log_likelihood(
        model.memory(*model.encode(h, o, e)), cands), reduce_retracing=True, autograph=False)
    items_out, scores_out = [], []
    for s in range(0, len(data.history), batch):
        rows = min(batch, len(data.history) - s)
        ll = score(tf.constant(data.history[s:s + rows]), tf.constant(data.order_rel[s:s + rows]),
                   tf.constant(data.events[s:s + rows]), tf.tile(every[None], [rows, 1])).numpy()
        if exclude_history:
            for r, h in enumerate(data.full_history[s:s + rows]):
                ll[r, h] = -np.inf
        top = np.argsort(-ll, axis=1, kind="stable")[:, :k]
        val = np.take_along_axis(ll, top, axis=1)
        items_out.append(np.where(np.isfinite(val), top, -1))
        scores_out.append(val)
    if not items_out:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.concatenate(items_out), np.concatenate(scores_out)


def _search(model, history, order_rel, events, allowed, width):
    states, mask = model.encode(history, order_rel, events)
    return model.beam_search(model.memory(states, mask), allowed, width)


def evaluate(model: DualHeadModel, data: SequenceData, exclude_history: bool, k: int = 10,
             generative: bool = True) -> dict:
    """Full-ranking metrics of the student (and of the teacher by beam search) on ``data``."""
    from recsys.evaluation.metrics import ranking_metrics

    n = model.num_items
    sub = data.rows([i for i, p in enumerate(data.positives) if len(p)])
    out = {"retrieval": ranking_metrics(retrieval_topk(model, sub, exclude_history, k), sub.positives, n, k)}
    if generative and model.generative:
        top, _ = generative_topk(model, sub, exclude_history, k)
        out["generative"] = metrics_with_missing(top, sub.positives, n, k)
    return out


def metrics_with_missing(top: np.ndarray, positives: list, n: int, k: int) -> dict:
    """Ranking metrics of lists that may be short (-1 slots, when fewer than k items were allowed).

    A missing slot is a miss: it becomes a dummy item n that no target equals; coverage is
    corrected so the dummy does not count as a covered item (entropy keeps it as one symbol).
    """
    from recsys.evaluation.metrics import ranking_metrics

    if (top >= 0).all():
        return ranking_metrics(top, positives, n, k)
    m = ranking_metrics(np.where(top < 0, n, top), positives, n + 1, k)
    m[f"coverage@{k}"] = (m[f"coverage@{k}"] * (n + 1) - 1) / n
    return m
