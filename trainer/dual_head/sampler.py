"""Training batches (numpy): (row, target) pairs, the targets' sampling law and hard negatives."""
from __future__ import annotations

import numpy as np

from trainer.dual_head.config import DualHeadConfig
from trainer.dual_head.data import ItemSpace, SequenceData


class PairSampler:
    """(row, target) training pairs, the targets' sampling law and hard negatives (numpy).

    Targets are drawn ∝ 1/sqrt(training frequency) when ``debias_targets``; each pair gets
    ``hard_negatives_category`` items of the target's category, then ``hard_negatives_history``
    items of the row's own (model-input) history; a hard negative that is one of the row's
    positives is removed (replaced by PAD).
    """

    def __init__(self, data: SequenceData, items: ItemSpace, config: DualHeadConfig):
        self.data, self.items, self.config = data, items, config
        rows = [np.full(len(p), r, np.int64) for r, p in enumerate(data.positives)]
        self.pair_row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        self.pair_target = np.concatenate(data.positives) if rows else np.zeros(0, np.int64)
        if len(self.pair_target) == 0:
            raise ValueError("No training pairs: no training target is a catalogue item.")
        counts = np.bincount(self.pair_target, minlength=items.num_items).astype(np.float64)
        weight = 1.0 / np.sqrt(np.maximum(counts[self.pair_target], 1.0)) if config.debias_targets \
            else np.ones(len(self.pair_target))
        self.pair_prob = weight / weight.sum()
        # probability that an item is drawn as a target: the logQ correction of in-batch negatives
        q = np.bincount(self.pair_target, weights=self.pair_prob, minlength=items.num_items)
        self.log_q = np.log(np.maximum(q, 1e-12)).astype(np.float32)
        # expected times per drawn pair that an item comes in as one of the row's *other* positives (the
        # co-targets of the drawn target): the logQ correction of the positive candidate columns. Pair i of
        # row r brings every item of r's order but its own target, so item x gets Σ_{pairs (r, t), x ∈ P_r,
        # t ≠ x} p_(r,t) = Σ_{pairs (r, x)} (mass of row r − p_(r,x)). (Ignores the max_positives cap.)
        row_mass = np.bincount(self.pair_row, weights=self.pair_prob, minlength=len(data.positives))
        q_co = np.bincount(self.pair_target, weights=row_mass[self.pair_row] - self.pair_prob,
                           minlength=items.num_items)
        self.co_log_q = np.log(np.maximum(q_co, 1e-12)).astype(np.float32)
        trained = np.flatnonzero(counts > 0)
        self.trained = trained
        self.by_category = {}
        cats = items.category[trained]
        for c in np.unique(cats):
            self.by_category[int(c)] = trained[cats == c]
        self.rng = np.random.default_rng(config.seed)

    def epoch(self) -> np.ndarray:
        """Pair indices of one epoch: drawn ∝ target weight (debiased) or a permutation."""
        n = len(self.pair_target)
        if self.config.debias_targets:
            return self.rng.choice(n, size=n, replace=True, p=self.pair_prob)
        return self.rng.permutation(n)

    def batch(self, pairs: np.ndarray) -> dict:
        """Model inputs of the pairs ``pairs``: history, order_rel, events [B, L]; anchor [B];
        positives [B, max_positives] (anchor first, -1 padded); hard [B, H] (PAD = removed); anchor_log_q [B];
        positive_log_q [B, max_positives] (``co_log_q`` of each positive, 0 at padding)."""
        d, cfg, rng = self.data, self.config, self.rng
        rows, anchor = self.pair_row[pairs], self.pair_target[pairs]
        positives = np.full((len(pairs), cfg.max_positives), -1, np.int64)
        for b, (r, a) in enumerate(zip(rows.tolist(), anchor.tolist())):
            others = d.positives[r][d.positives[r] != a]
            if len(others) > cfg.max_positives - 1:
                others = rng.choice(others, cfg.max_positives - 1, replace=False)
            positives[b, 0] = a
            positives[b, 1: 1 + len(others)] = others
        hard = [self._same_category(anchor) for _ in range(cfg.hard_negatives_category)]
        hard += [self._own_history(rows) for _ in range(cfg.hard_negatives_history)]
        hard = np.stack(hard, axis=1) if hard else np.zeros((len(pairs), 0), np.int64)
        # accidental hits: a hard negative that is one of the row's positives is removed (→ PAD)
        hit = (hard[:, :, None] == positives[:, None, :]).any(axis=2) if hard.size else np.zeros(hard.shape, bool)
        hard = np.where(hit, self.items.pad, hard)
        return {
            "history": d.history[rows], "order_rel": d.order_rel[rows], "events": d.events[rows],
            "anchor": anchor.astype(np.int32), "positives": positives.astype(np.int32),
            "hard": hard.astype(np.int32), "anchor_log_q": self.log_q[anchor],
            "positive_log_q": np.where(positives >= 0, self.co_log_q[np.maximum(positives, 0)], 0.0).astype(np.float32),
        }

    def _same_category(self, anchor: np.ndarray) -> np.ndarray:
        out = np.empty(len(anchor), np.int64)
        for b, a in enumerate(anchor.tolist()):
            pool = self.by_category.get(int(self.items.category[a]), self.trained)
            out[b] = pool[self.rng.integers(len(pool))]
        return out

    def _own_history(self, rows: np.ndarray) -> np.ndarray:
        hist = self.data.history[rows]
        lengths = (hist < self.items.num_items).sum(axis=1)
        pick = (self.rng.random(len(rows)) * np.maximum(lengths, 1)).astype(np.int64)
        out = hist[np.arange(len(rows)), pick]
        return np.where(lengths > 0, out, self.items.pad)
