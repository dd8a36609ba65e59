"""Negative and positive feedback as an online update of the user's query vector (DESIGN.md §7).

The user's served query vector ``u`` (the retriever's ``user_vector``) is never changed; the
client keeps a per-user, per-model offset ``δ`` and queries with ``q = u + δ``
(``recommend_vector``). One feedback round (impressions I, clicks C ⊆ I, purchases P) updates

    δ ← clip( δ + |u| · ( η₊ · mean_{i ∈ C ∪ P} ê_i  −  η₋ · mean_{i ∈ I \\ (C ∪ P)} ê_i ) )

with ``ê`` the unit item vectors (so a step is a fixed share of the user's own norm whatever the
space's scale), purchases counted ``purchase_weight`` times in the positive mean, and
``clip`` scaling ``δ`` back to norm ``max_shift · |u|`` when it is longer: the update is a
Rocchio-style relevance-feedback step, i.e. a bandit policy update in embedding space (a click
is a reward of 1 for the arm it pulled, an ignored impression a reward of 0), kept within a
ball around the long-term vector so a few rounds cannot carry the user away from their history.
A term with no items is zero. ``δ`` persists in the store (``commerce_recsys_client.store``) with a TTL.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class FeedbackRule:
    """η₊ (``toward``), η₋ (``away``), the norm bound ``max_shift`` (a share of |u|), purchase weight."""

    toward: float = 0.3
    away: float = 0.1
    max_shift: float = 0.5
    purchase_weight: float = 2.0

    def __post_init__(self):
        for name in ("toward", "away", "max_shift", "purchase_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def update(self, user: np.ndarray, delta: np.ndarray | None, positives: Sequence[np.ndarray],
               negatives: Sequence[np.ndarray], positive_weights: Sequence[float] | None = None) -> np.ndarray:
        """The new offset ``δ`` [D] after one round; ``user`` [D], ``positives``/``negatives``: item vectors [D]."""
        user = _vector(user, "user vector")
        delta = np.zeros_like(user) if delta is None else _vector(delta, "stored offset")
        if delta.shape != user.shape:
            raise ValueError(f"the stored offset has dimension {delta.shape[0]}, the user vector {user.shape[0]}")
        weights = np.ones(len(positives)) if positive_weights is None else np.asarray(positive_weights, np.float64)
        step = np.zeros_like(user)
        if len(positives):
            step += self.toward * np.average(_units(positives, user.shape), axis=0, weights=weights)
        if len(negatives):
            step -= self.away * _units(negatives, user.shape).mean(axis=0)
        scale = float(np.linalg.norm(user))
        new = delta + scale * step
        bound = self.max_shift * scale
        norm = float(np.linalg.norm(new))
        if norm > bound:
            new = new * (bound / norm) if norm > 0 else new
        return new.astype(np.float32)


def _vector(value, what: str) -> np.ndarray:
    array = np.asarray(value, np.float64)
    if array.ndim != 1 or not array.size:
        raise ValueError(f"the {what} must be a non-empty 1-D vector, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"the {what} has NaN or infinite values")
    return array


def _units(vectors: Sequence[np.ndarray], shape) -> np.ndarray:
    array = np.asarray(vectors, np.float64).reshape(len(vectors), -1)
    if array.shape[1:] != shape:
        raise ValueError(f"item vectors have dimension {array.shape[1]}, the user vector {shape[0]}")
    if not np.all(np.isfinite(array)):
        raise ValueError("an item vector has NaN or infinite values")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)


def split_feedback(impressions: Sequence[str], clicks: Sequence[str], purchases: Sequence[str],
                   purchase_weight: float) -> tuple[list[str], list[float], list[str]]:
    """(positive items, their weights, ignored impressions): a purchase outweighs a click of the same item."""
    positives: dict[str, float] = {}
    for item in clicks:
        positives[item] = max(positives.get(item, 0.0), 1.0)
    for item in purchases:
        positives[item] = max(positives.get(item, 0.0), purchase_weight)
    ignored = list(dict.fromkeys(i for i in impressions if i not in positives))
    return list(positives), list(positives.values()), ignored


def query_vector(user: np.ndarray, delta: np.ndarray | None) -> np.ndarray:
    """``q = u + δ`` (the user vector alone without an offset)."""
    user = np.asarray(user, np.float32)
    return user if delta is None else user + np.asarray(delta, np.float32)

