"""Ranker metrics on exposures (AUC, GAUC, logloss per head) and the end-to-end top-k lists (numpy only)."""
from __future__ import annotations

import numpy as np

from recsys.evaluation.metrics import ranking_metrics
from transform.exposures import FEATURE_NAMES

POPULARITY = FEATURE_NAMES.index("popularity_log")
RARE = 5  # "items with <= 5 training interactions"


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney statistic with tied scores averaged (NaN if one class is missing)."""
    labels = np.asarray(labels, bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = np.asarray(scores)[order]
    ranks = np.empty(len(s), np.float64)
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2.0 + 1.0
        i = j + 1
    r = np.empty_like(ranks)
    r[order] = ranks
    return float((r[labels].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def gauc(groups: list[str], labels: np.ndarray, scores: np.ndarray) -> float:
    """Per-user AUC weighted by the user's exposures, over users with both classes (the DIN paper's GAUC)."""
    by: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by.setdefault(g, []).append(i)
    total, weight = 0.0, 0
    for rows in by.values():
        a = auc(labels[rows], scores[rows])
        if not np.isnan(a):
            total += a * len(rows)
            weight += len(rows)
    return float(total / weight) if weight else float("nan")


def logloss(labels: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def exposure_metrics(user_ids: list[str], mask: np.ndarray, click: np.ndarray, conversion: np.ndarray,
                     pctr: np.ndarray, pctcvr: np.ndarray) -> dict[str, float]:
    """AUC, GAUC and logloss of the CTR head (click) and the CTCVR product (conversion) over real exposures."""
    rows, cols = np.nonzero(mask)
    groups = [user_ids[r] for r in rows]
    out = {}
    for head, label, p in (("ctr", click, pctr), ("ctcvr", conversion, pctcvr)):
        y, s = label[rows, cols], p[rows, cols]
        out.update({f"{head}_AUC": auc(y, s), f"{head}_GAUC": gauc(groups, y, s), f"{head}_logloss": logloss(y, s)})
    return out


def top_k_lists(items: np.ndarray, mask: np.ndarray, scores: np.ndarray, k: int = 10) -> np.ndarray:
    """Top-k candidate positions per unit by ``scores`` (ties: merged retriever order); -1 pads."""
    s = np.where(mask, scores, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(items, order, axis=1).astype(np.int64)
    top[~np.take_along_axis(mask, order, axis=1)] = -1
    if top.shape[1] < k:
        top = np.pad(top, ((0, 0), (0, k - top.shape[1])), constant_values=-1)
    return top


def list_metrics(items: np.ndarray, mask: np.ndarray, features: np.ndarray, scores: np.ndarray,
                 targets: list[np.ndarray], num_items: int, k: int = 10) -> dict[str, float]:
    """End-to-end HR/Recall/NDCG/coverage/entropy@k of the ranked lists, with the rare-item share.

    ``rare@k``: share of recommended items with <= 5 training interactions; ``median_pop@k`` their
    median training count (both read from the candidates' popularity feature).
    """
    top = top_k_lists(items, mask, scores, k)
    out = ranking_metrics(top, targets, num_items, k=k)
    order = np.argsort(-np.where(mask, scores, -np.inf), axis=1, kind="stable")[:, :k]
    pop = np.expm1(np.take_along_axis(features[..., POPULARITY], order, axis=1))
    pop = pop[np.take_along_axis(mask, order, axis=1) & np.isfinite(np.take_along_axis(scores, order, axis=1))]
    out[f"rare@{k}"] = float(np.mean(pop <= RARE)) if pop.size else 0.0
    out[f"median_pop@{k}"] = float(np.median(pop)) if pop.size else 0.0
    return out


def source_scores(features: np.ndarray, source: str) -> np.ndarray:
    """Ranking score of one retriever over the merged candidates: 1/rank where it retrieved them, else -inf."""
    f = FEATURE_NAMES.index(f"{source}_rrank")
    r = features[..., f]
    return np.where(r > 0, r, -np.inf)


def merged_order_scores(mask: np.ndarray) -> np.ndarray:
    """Scores that keep the merged retriever order (the candidate union in retriever order)."""
    return np.where(mask, -np.arange(mask.shape[1], dtype=np.float64)[None, :], -np.inf)
