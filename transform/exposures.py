"""The ranker's training set: candidates the retrievers actually produce, with features and labels.

Our datasets log no impressions, so exposures are bootstrapped the way a
production system starts one: for every unit (a user at the time of a target),
the **candidates** are the union of the retrievers' top-N for the history before
that unit, each with the source's score and rank kept as features:

* ``graph``: the graph retriever, asked by user id (``recommend_user``);
* ``two_tower``: the two-tower, asked with the history (``serving_default``);
* ``student``: the dual-head student (``dual_retrieval``), asked with the history and its order
  positions (``recommend_orders``) — only where the pipeline gives the builder a student for
  both sets (the prefix copy and the served one); otherwise the source is empty on every split,
  so training and serving agree;
* ``repeat``: the user's own past items by purchase count, then recency (basket data
  only: on leave-one-out data a seen item is never a target);
* ``popularity``: the most interacted items of the retrievers' training data.

Which retrievers: for the ranking-window units (the ranker's training units,
``transform/ranking_window.py``) the copies trained on the prefix only; for the
validation and test units the served ones. No unit's candidates come from a
retriever trained on that unit.

Labels: ``click`` = the candidate is one of the unit's targets; ``conversion`` =
it is a target whose behaviour is a purchase (MovieLens: rating >= 4; on
Instacart every interaction is a purchase, so conversion == click and the CVR
head learns nothing beyond CTR there).

One tf.Example per unit (``EXPOSURE_FEATURES``); per-candidate dense features are
flattened row-major ``[N, len(FEATURE_NAMES)]``.

Two implementations of the rows: ``exposure_row`` (one unit, python lists: the reference) and
``exposure_examples`` (a chunk of units at once in numpy, written in protobuf's wire format), which
``CandidateFn`` uses; they give the same records (tests); outside the retriever calls the second took
5.4x less time per unit on a mid-size synthetic input (``benchmarks/exposure_speed.py``, docs/scale.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np

from recsys import features as F
from recsys import names as N

SOURCES = N.RANKER_SOURCES  # also the priority order for ties in the merged order
SOURCE_FEATURES = N.RANKER_SOURCE_FEATURES
USER_FEATURES = ("repeat_count_log", "repeat_recency", "repeat_share", "popularity_log", "category_affinity",
                 "history_len_log")
FEATURE_NAMES = tuple(f"{s}_{f}" for s in SOURCES for f in SOURCE_FEATURES) + USER_FEATURES
DEFAULT_TOP_N = {"graph": 100, "two_tower": 100, "student": 100, "repeat": 50, "popularity": 50}
MAX_ACTIONS = 500  # most recent actions kept per unit: the features' history and the TransAct sequence's source

# exposure tf.Example features
UNIT_SPLIT = F.Feature("unit_split", "string", False, "Split of the unit: train (window), eval or test.")
CANDIDATE_ITEM_ID = F.Feature("candidate_item_id", "string", True, "Candidates, in merged retriever order.")
CANDIDATE_FEATURES = F.Feature("candidate_features", "float32", True,
                               "Per-candidate dense features, row-major [N, len(FEATURE_NAMES)].")
LABEL_CLICK = F.Feature("label_click", "int64", True, "1 if the candidate is a target of the unit.")
LABEL_CONVERSION = F.Feature("label_conversion", "int64", True, "1 if it is a target bought (purchase).")
ACTION_ITEM_ID = F.Feature("action_item_id", "string", True, "The user's most recent actions, oldest first.")
ACTION_TYPE = F.Feature("action_type", "string", True, "Behaviour of each action.")
ACTION_GAP = F.Feature("action_gap", "int64", True,
                       "Orders between each action and the unit (0: the same order, e.g. the same day on MovieLens).")
USER_VECTOR = F.Feature("user_vector", "float32", True, "The graph retriever's vector of the user (long-term).")
EXPOSURE_FEATURES = (F.USER_ID, UNIT_SPLIT, F.TARGET_ITEM_ID, F.TARGET_EVENT_TYPE, F.TARGET_ORDER_POS,
                     F.TARGET_TIMESTAMP, CANDIDATE_ITEM_ID, CANDIDATE_FEATURES, LABEL_CLICK, LABEL_CONVERSION,
                     ACTION_ITEM_ID, ACTION_TYPE, ACTION_GAP, USER_VECTOR)
STATS_FILE = "exposure_stats.json"


@dataclass(frozen=True)
class Action:
    order_pos: int
    item_id: str
    behaviour: str


@dataclass
class Unit:
    """One unit to rank: the user, the full history before it, its targets."""

    user_id: str
    split: str
    history: list[Action]
    targets: list[str]
    target_behaviour: list[str]
    order_pos: int
    timestamp: int
    candidates: dict[str, tuple[list[str], list[float]]] = field(default_factory=dict)  # source -> (ids, scores)
    user_vector: np.ndarray | None = None


def user_timeline(rows: Iterable[Mapping]) -> list[Action]:
    """Every action of one user in event order, from their last sequence row (any split).

    The last unit's row (the longest history) carries the whole history (validation and
    test rows are never cut); its targets complete the timeline.
    Only users with a validation/test row have a complete one: callers check ``complete``.
    """
    rows = list(rows)
    if not rows:
        return []
    # the longest history: the test row's (validation and test histories are never cut)
    last = max(rows, key=lambda r: (len(r[F.HISTORY_ITEM_ID.name]), int(r[F.TARGET_ORDER_POS.name])))
    actions = [Action(int(p), i, b) for i, p, b in zip(
        last[F.HISTORY_ITEM_ID.name], last[F.HISTORY_ORDER_POS.name], last[F.HISTORY_EVENT_TYPE.name], strict=True)]
    p = int(last[F.TARGET_ORDER_POS.name])
    return actions + [Action(p, i, b) for i, b in zip(last[F.TARGET_ITEM_ID.name], last[F.TARGET_EVENT_TYPE.name],
                                                       strict=True)]


def unit_start(timeline: Sequence[Action], row: Mapping) -> int:
    """Index in ``timeline`` of the first event of ``row``'s unit.

    A row's history is the (possibly cut) run of events right before its unit, so the
    unit starts at the event whose order position and item are the row's first target's
    and whose preceding events are the row's history. Several events can share an order
    position (MovieLens: one order per day), hence the history check.
    """
    p = int(row[F.TARGET_ORDER_POS.name])
    first = row[F.TARGET_ITEM_ID.name][0]
    hist = list(row[F.HISTORY_ITEM_ID.name])
    for i, a in enumerate(timeline):
        if a.order_pos == p and a.item_id == first and i >= len(hist) and \
                [x.item_id for x in timeline[i - len(hist):i]] == hist:
            return i
    raise ValueError(f"user {row[F.USER_ID.name]!r}: the unit at order {p} is not in the user's timeline")


def repeat_candidates(history: Sequence[Action], n: int) -> tuple[list[str], list[float]]:
    """The user's own past items: most bought first, then most recent; score = log1p(count)."""
    count: dict[str, int] = {}
    last: dict[str, int] = {}
    for a in history:
        count[a.item_id] = count.get(a.item_id, 0) + 1
        last[a.item_id] = a.order_pos
    ranked = sorted(count, key=lambda i: (-count[i], -last[i], i))[:n]
    return ranked, [math.log1p(count[i]) for i in ranked]


def popularity_candidates(counts: Mapping[str, int], ranked: Sequence[str], exclude: set[str],
                          n: int) -> tuple[list[str], list[float]]:
    """Top-n of ``ranked`` (items by training count, most first) not in ``exclude``; score = log1p(count)."""
    out = []
    for i in ranked:
        if i not in exclude:
            out.append(i)
            if len(out) == n:
                break
    return out, [math.log1p(counts[i]) for i in out]


def merge(candidates: Mapping[str, tuple[Sequence[str], Sequence[float]]]) -> list[str]:
    """Union of the sources' lists in retriever order: best rank in any source first, ties by ``SOURCES``."""
    best: dict[str, tuple[int, int]] = {}
    for s_idx, s in enumerate(SOURCES):
        ids = candidates.get(s, ((), ()))[0]
        for r, i in enumerate(ids):
            if i and (i not in best or (r, s_idx) < best[i]):
                best[i] = (r, s_idx)
    return sorted(best, key=lambda i: best[i])


def candidate_features(unit: Unit, merged: Sequence[str], counts: Mapping[str, int],
                       category: Mapping[str, str], max_actions: int = MAX_ACTIONS) -> np.ndarray:
    """Dense features [N, len(FEATURE_NAMES)] of the merged candidates of ``unit`` (its last ``max_actions``)."""
    n, width = len(merged), len(FEATURE_NAMES)
    out = np.zeros((n, width), np.float32)
    index = {i: c for c, i in enumerate(merged)}
    for s_idx, s in enumerate(SOURCES):
        ids, scores = unit.candidates.get(s, ((), ()))
        for r, (i, sc) in enumerate(zip(ids, scores)):
            c = index.get(i)
            if c is None:
                continue
            base = s_idx * len(SOURCE_FEATURES)
            out[c, base:base + 3] = (1.0, sc, 1.0 / (r + 1))
    count: dict[str, int] = {}
    last: dict[str, int] = {}
    cats: dict[str, int] = {}
    history = unit.history[-max_actions:]
    for a in history:
        count[a.item_id] = count.get(a.item_id, 0) + 1
        last[a.item_id] = a.order_pos
        c = category.get(a.item_id, "")
        cats[c] = cats.get(c, 0) + 1
    orders = len({a.order_pos for a in history}) or 1
    hist_len = len(history)
    base = len(SOURCES) * len(SOURCE_FEATURES)
    for c, i in enumerate(merged):
        k = count.get(i, 0)
        out[c, base:] = (
            math.log1p(k),
            1.0 / max(unit.order_pos - last[i], 1) if i in last else 0.0,
            k / orders,
            math.log1p(counts.get(i, 0)),
            cats.get(category.get(i, ""), 0) / hist_len if hist_len else 0.0,
            math.log1p(hist_len),
        )
    return out


def exposure_row(unit: Unit, counts: Mapping[str, int], category: Mapping[str, str],
                 max_actions: int = MAX_ACTIONS) -> tuple[dict, dict]:
    """(tf.Example feature dict, per-unit statistics) of one unit.

    The user–item features see the last ``max_actions`` actions only: the served ranker gets
    at most that much history per request (``export/ranker.py``), so both see the same.
    """
    merged = merge(unit.candidates)
    feats = candidate_features(unit, merged, counts, category, max_actions)
    targets = set(unit.targets)
    bought = {t for t, b in zip(unit.targets, unit.target_behaviour) if b == F.TARGET_BEHAVIOUR}
    actions = unit.history[-max_actions:]
    vector = unit.user_vector if unit.user_vector is not None else np.zeros(0, np.float32)
    row = {
        F.USER_ID.name: unit.user_id, UNIT_SPLIT.name: unit.split,
        F.TARGET_ITEM_ID.name: list(unit.targets), F.TARGET_EVENT_TYPE.name: list(unit.target_behaviour),
        F.TARGET_ORDER_POS.name: unit.order_pos, F.TARGET_TIMESTAMP.name: unit.timestamp,
        CANDIDATE_ITEM_ID.name: merged, CANDIDATE_FEATURES.name: feats.reshape(-1).tolist(),
        LABEL_CLICK.name: [int(i in targets) for i in merged],
        LABEL_CONVERSION.name: [int(i in bought) for i in merged],
        ACTION_ITEM_ID.name: [a.item_id for a in actions], ACTION_TYPE.name: [a.behaviour for a in actions],
        ACTION_GAP.name: [unit.order_pos - a.order_pos for a in actions],
        USER_VECTOR.name: np.asarray(vector, np.float32).tolist(),
    }
    found = len(targets & set(merged))
    stats = {"split": unit.split, "candidates": len(merged), "targets": len(targets), "positives": found,
             "any_positive": int(found > 0)}
    return row, stats


class ItemLookup:
    """Per-item values the features need, looked up for numpy arrays of utf-8 ids (``bytes``).

    ``category``: an integer code per category string ("" and unknown items share code 0, as
    ``category.get(i, "")`` does); ``popularity_log``: ``math.log1p(counts.get(i, 0))``, computed
    with ``math.log1p`` so the values are the per-candidate path's to the bit.
    """

    def __init__(self, counts: Mapping[str, int], category: Mapping[str, str]):
        keys = sorted(set(counts) | set(category))
        self.keys = np.array([k.encode("utf-8") for k in keys], dtype="S") if keys else np.zeros(0, "S1")
        codes: dict[str, int] = {"": 0}
        self.category = np.array([codes.setdefault(category.get(k, ""), len(codes)) for k in keys], np.int64)
        self.popularity_log = np.array([math.log1p(counts.get(k, 0)) for k in keys], np.float64)
        self.num_categories = len(codes)

    def find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(category codes int64, popularity_log float64) of ``ids`` ('S' array); unknown ids: (0, 0.0)."""
        if not len(self.keys) or not len(ids):
            return np.zeros(len(ids), np.int64), np.zeros(len(ids), np.float64)
        at = np.minimum(np.searchsorted(self.keys, ids), len(self.keys) - 1)
        hit = self.keys[at] == ids
        return np.where(hit, self.category[at], 0), np.where(hit, self.popularity_log[at], 0.0)


@dataclass(frozen=True)
class SourceEntries:
    """One source's candidates for a batch of units, flat: entry e is candidate ``ids[e]`` of unit ``unit[e]``
    at rank ``rank[e]`` (0 = the source's best) with score ``scores[e]``. No entry has an empty id."""

    unit: np.ndarray    # int64 [E]
    rank: np.ndarray    # int64 [E]
    ids: np.ndarray     # 'S' [E] utf-8 item ids (numpy's 'S' drops trailing NUL bytes: no item id ends in one)
    scores: np.ndarray  # float64 [E]

    @classmethod
    def from_matrix(cls, ids: np.ndarray, scores: np.ndarray) -> "SourceEntries":
        """A retriever's batched output ``[B, K]`` (ids bytes, ``b""`` = no item): empty slots are dropped and
        the ranks count the kept ones (as ``CandidateFn``'s per-unit lists did)."""
        ids = np.asarray(ids).astype("S")
        real = ids != b""
        rank = np.cumsum(real, axis=1) - 1
        unit = np.broadcast_to(np.arange(ids.shape[0], dtype=np.int64)[:, None], ids.shape)
        return cls(unit[real], rank[real].astype(np.int64), ids[real],
                   np.asarray(scores)[real].astype(np.float64))

    @classmethod
    def from_lists(cls, lists: Sequence[tuple[Sequence[str], Sequence[float]]]) -> "SourceEntries":
        """Per-unit ``(ids, scores)`` lists (``str`` ids); a rank is the position in its list, "" ids are dropped
        (as ``exposure_row`` reads ``Unit.candidates``)."""
        unit, rank, ids, scores = [], [], [], []
        for b, (i_list, s_list) in enumerate(lists):
            for r, (i, sc) in enumerate(zip(i_list, s_list)):
                if i:
                    unit.append(b)
                    rank.append(r)
                    ids.append(i.encode("utf-8"))
                    scores.append(sc)
        return cls(np.array(unit, np.int64), np.array(rank, np.int64),
                   np.array(ids, dtype="S") if ids else np.zeros(0, "S1"), np.array(scores, np.float64))


_LOG1P_TABLE = np.zeros(0, np.float64)


def _log1p_exact(values: np.ndarray) -> np.ndarray:
    """``math.log1p`` of every non-negative integer of ``values`` (float64): numpy's own log1p may differ in the
    last bit on some CPUs, and the rows must equal the per-candidate path's. Small integers (counts, history
    lengths) come from a table of ``math.log1p`` values."""
    global _LOG1P_TABLE
    values = np.asarray(values, np.int64)
    if not len(values):
        return np.zeros(0, np.float64)
    top = int(values.max())
    if top >= 1 << 20:
        uniq, inv = np.unique(values, return_inverse=True)
        return np.array([math.log1p(int(v)) for v in uniq], np.float64)[inv.reshape(-1)]
    if top >= len(_LOG1P_TABLE):
        _LOG1P_TABLE = np.array([math.log1p(i) for i in range(max(top + 1, 2 * len(_LOG1P_TABLE), 1024))])
    return _LOG1P_TABLE[values]


def _firsts(sorted_keys: np.ndarray) -> np.ndarray:
    """Bool mask of the first element of every run of equal values in ``sorted_keys``."""
    return np.r_[True, sorted_keys[1:] != sorted_keys[:-1]] if len(sorted_keys) else np.zeros(0, bool)


def _lasts(sorted_keys: np.ndarray) -> np.ndarray:
    return np.r_[sorted_keys[1:] != sorted_keys[:-1], True] if len(sorted_keys) else np.zeros(0, bool)


def _distinct_per_unit(unit: np.ndarray, values: np.ndarray, b_count: int) -> np.ndarray:
    """int64 [b_count]: how many distinct ``values`` each unit has."""
    if not len(values):
        return np.zeros(b_count, np.int64)
    low, span = int(values.min()), int(values.max()) - int(values.min()) + 1
    if span * b_count < 1 << 62:
        key = unit * span + (values - low)
        first = np.unique(key) // span
    else:
        first = np.unique(np.stack([unit, values]), axis=1)[0]
    return np.bincount(first, minlength=b_count)


def _lookup(sorted_keys: np.ndarray, values: np.ndarray, queries: np.ndarray, missing) -> np.ndarray:
    """``values`` at the positions of ``queries`` in ``sorted_keys`` (unique), ``missing`` where absent."""
    if not len(sorted_keys):
        return np.full(len(queries), missing, dtype=values.dtype)
    at = np.minimum(np.searchsorted(sorted_keys, queries), len(sorted_keys) - 1)
    return np.where(sorted_keys[at] == queries, values[at], missing)


def exposure_examples(units: Sequence[Unit], sources: Mapping[str, SourceEntries], items: ItemLookup,
                      max_actions: int = MAX_ACTIONS) -> list[tuple[bytes, dict]]:
    """The serialized exposure row and statistics of every unit of a batch, all units at once in numpy.

    Record for record the tf.Example and statistics of ``exposure_row`` + ``to_example`` (``exposure_row``'s
    docstring has the features), serialized deterministically (``_example``), for ``units`` whose candidates
    are given as ``sources`` (one ``SourceEntries`` per source present; ``Unit.candidates`` is not read) and
    ``unit.user_vector``. ``tests/transform/test_exposures.py`` holds the two paths equal byte for byte.
    """
    b_count, s_count = len(units), len(SOURCES)
    if not b_count:
        return []
    # every candidate entry of every source, flat
    parts = [(s_idx, sources[s]) for s_idx, s in enumerate(SOURCES) if s in sources and len(sources[s].ids)]
    e_unit = np.concatenate([p.unit for _, p in parts] + [np.zeros(0, np.int64)])
    e_rank = np.concatenate([p.rank for _, p in parts] + [np.zeros(0, np.int64)])
    e_src = np.concatenate([np.full(len(p.ids), s_idx, np.int64) for s_idx, p in parts] + [np.zeros(0, np.int64)])
    e_score = np.concatenate([p.scores for _, p in parts] + [np.zeros(0, np.float64)])
    # the last ``max_actions`` actions and the targets of every unit, flat
    actions = [u.history[-max_actions:] for u in units]
    h_len = np.array([len(a) for a in actions], np.int64)
    h_unit = np.repeat(np.arange(b_count, dtype=np.int64), h_len)
    h_ids = [a.item_id.encode("utf-8") for acts in actions for a in acts]
    h_types = [a.behaviour.encode("utf-8") for acts in actions for a in acts]
    h_pos = np.array([a.order_pos for acts in actions for a in acts], np.int64)
    t_sets = [sorted(set(u.targets)) for u in units]
    t_unit = np.repeat(np.arange(b_count, dtype=np.int64), [len(t) for t in t_sets])
    t_ids = [t.encode("utf-8") for ts in t_sets for t in ts]
    bought = {(b, t) for b, u in enumerate(units) for t, k in zip(u.targets, u.target_behaviour)
              if k == F.TARGET_BEHAVIOUR}
    t_bought = np.array([(b, t) in bought for b, ts in enumerate(t_sets) for t in ts], bool)
    # one integer per distinct id of the batch
    all_ids = [p.ids for _, p in parts] + [np.array(h_ids + t_ids, dtype="S")] if h_ids or t_ids else \
        [p.ids for _, p in parts]
    vocab, inv = np.unique(np.concatenate(all_ids + [np.zeros(0, "S1")]), return_inverse=True)
    inv = inv.reshape(-1).astype(np.int64)
    v_count = max(len(vocab), 1)
    e_item, h_item, t_item = np.split(inv, [len(e_unit), len(e_unit) + len(h_ids)])
    v_cat, v_pop = items.find(vocab)

    # merge: each (unit, item) at its best (rank, source priority); a unit's candidates in that order
    e_key = e_unit * v_count + e_item
    prio = e_rank * s_count + e_src
    o = np.lexsort((prio, e_key))
    best = o[_firsts(e_key[o])]
    merged = best[np.lexsort((prio[best], e_unit[best]))]
    m_unit, m_item, m_key = e_unit[merged], e_item[merged], e_key[merged]
    offsets = np.r_[0, np.cumsum(np.bincount(m_unit, minlength=b_count))]
    by_key = np.argsort(m_key)
    m_sorted = m_key[by_key]
    feats = np.zeros((len(merged), len(FEATURE_NAMES)), np.float32)

    # source features (in, score, 1 / (rank + 1)); a source listing an item twice: its later entry counts
    s_key = e_key * s_count + e_src
    o = np.lexsort((e_rank, s_key))
    last = o[_lasts(s_key[o])]
    row = by_key[np.searchsorted(m_sorted, e_key[last])]
    col = e_src[last] * len(SOURCE_FEATURES)
    feats[row, col] = 1.0
    feats[row, col + 1] = e_score[last]
    feats[row, col + 2] = 1.0 / (e_rank[last] + 1).astype(np.float64)

    # user features from the unit's last ``max_actions`` actions
    order_pos = np.array([u.order_pos for u in units], np.int64)
    h_key = h_unit * v_count + h_item
    o = np.argsort(h_key, kind="stable")  # history order within a key: the run's last element is the latest
    h_sorted = h_key[o]
    starts = np.flatnonzero(_firsts(h_sorted))
    uniq_h = h_sorted[starts]
    h_count = np.diff(np.r_[starts, len(h_sorted)])
    h_last = h_pos[o[_lasts(h_sorted)]]
    orders = np.maximum(_distinct_per_unit(h_unit, h_pos, b_count), 1)
    c_count = max(items.num_categories, 1)
    cat_key = h_unit * c_count + v_cat[h_item]
    cat_keys, cat_n = np.unique(cat_key, return_counts=True)
    k = _lookup(uniq_h, h_count, m_key, 0)
    last_pos = _lookup(uniq_h, h_last, m_key, 0)
    seen = k > 0
    hist_len = h_len[m_unit]
    base = len(SOURCES) * len(SOURCE_FEATURES)
    feats[:, base] = _log1p_exact(k)
    feats[:, base + 1] = np.where(seen, 1.0 / np.maximum(order_pos[m_unit] - last_pos, 1).astype(np.float64), 0.0)
    feats[:, base + 2] = k.astype(np.float64) / orders[m_unit].astype(np.float64)
    feats[:, base + 3] = v_pop[m_item]
    affinity = _lookup(cat_keys, cat_n, m_unit * c_count + v_cat[m_item], 0).astype(np.float64)
    feats[:, base + 4] = np.where(hist_len > 0, affinity / np.maximum(hist_len, 1).astype(np.float64), 0.0)
    feats[:, base + 5] = _log1p_exact(hist_len)

    # labels
    t_key = t_unit * v_count + t_item
    click = np.isin(m_key, t_key).astype(np.int64)
    conversion = np.isin(m_key, t_key[t_bought]).astype(np.int64)
    positives = np.bincount(m_unit, weights=click, minlength=b_count).astype(np.int64)

    # the records, written in protobuf's wire format: the chunk's arrays are encoded at once, each unit's
    # record is slices of them (a tf.train.Example built from python lists cost more than everything above)
    enc_vocab = [_bytes_item(v) for v in vocab.tolist()]
    enc_len = np.array([len(e) for e in enc_vocab] + [0], np.int64)
    cand_blob, cand_off = b"".join([enc_vocab[i] for i in m_item.tolist()]), _offsets(enc_len[m_item])
    act_blob, act_off = b"".join([enc_vocab[i] for i in h_item.tolist()]), _offsets(enc_len[h_item])
    enc_types = {t: _bytes_item(t) for t in set(h_types)}
    type_blob, type_off = _joined([enc_types[t] for t in h_types])
    feat_blob = np.ascontiguousarray(feats, "<f4").tobytes()
    row_bytes = 4 * len(FEATURE_NAMES)
    click_blob, click_off = _varints(click)
    conv_blob, conv_off = _varints(conversion)
    gap_blob, gap_off = _varints(order_pos[h_unit] - h_pos)
    h_off = np.r_[0, np.cumsum(h_len)].tolist()
    off = offsets.tolist()
    out = []
    for b, u in enumerate(units):
        lo, hi, a, z = off[b], off[b + 1], h_off[b], h_off[b + 1]
        vector = u.user_vector if u.user_vector is not None else np.zeros(0, np.float32)
        fields = {
            F.USER_ID.name: _bytes_feature(_bytes_item(u.user_id.encode("utf-8"))),
            UNIT_SPLIT.name: _bytes_feature(_bytes_item(u.split.encode("utf-8"))),
            F.TARGET_ITEM_ID.name: _bytes_feature(b"".join(_bytes_item(t.encode("utf-8")) for t in u.targets)),
            F.TARGET_EVENT_TYPE.name: _bytes_feature(
                b"".join(_bytes_item(t.encode("utf-8")) for t in u.target_behaviour)),
            F.TARGET_ORDER_POS.name: _int64_feature(_varint(int(u.order_pos))),
            F.TARGET_TIMESTAMP.name: _int64_feature(_varint(int(u.timestamp))),
            CANDIDATE_ITEM_ID.name: _bytes_feature(cand_blob[cand_off[lo]:cand_off[hi]]),
            CANDIDATE_FEATURES.name: _float_feature(feat_blob[lo * row_bytes:hi * row_bytes]),
            LABEL_CLICK.name: _int64_feature(click_blob[click_off[lo]:click_off[hi]]),
            LABEL_CONVERSION.name: _int64_feature(conv_blob[conv_off[lo]:conv_off[hi]]),
            ACTION_ITEM_ID.name: _bytes_feature(act_blob[act_off[a]:act_off[z]]),
            ACTION_TYPE.name: _bytes_feature(type_blob[type_off[a]:type_off[z]]),
            ACTION_GAP.name: _int64_feature(gap_blob[gap_off[a]:gap_off[z]]),
            USER_VECTOR.name: _float_feature(np.ascontiguousarray(vector, "<f4").tobytes()),
        }
        stats = {"split": u.split, "candidates": hi - lo, "targets": len(t_sets[b]),
                 "positives": int(positives[b]), "any_positive": int(positives[b] > 0)}
        out.append((_example(fields), stats))
    return out


# --- tf.train.Example in protobuf's wire format ------------------------------------------------------------------
# Example {features = 1: Features}; Features {feature = 1: map<string, Feature>}, a map entry being {key = 1,
# value = 2}; Feature {bytes_list = 1 | float_list = 2 | int64_list = 3}; BytesList {repeated bytes value = 1};
# FloatList and Int64List {repeated value = 1, packed}. The map is written in key order: the bytes are those of
# ``SerializeToString(deterministic=True)`` of the message ``transform.sequences.to_example`` builds (tested).
# Without ``deterministic`` a protobuf map's order changes from one message to the next, so the per-unit path's
# bytes were not reproducible run to run, its messages were.

_SMALL_VARINTS = [bytes((n,)) for n in range(0x80)]


def _varint(n: int) -> bytes:
    """Protobuf's base-128 varint of an int64 (negative: two's complement, 10 bytes)."""
    if 0 <= n < 0x80:
        return _SMALL_VARINTS[n]
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SHIFTS = np.arange(10, dtype=np.uint64) * np.uint64(7)


def _varints(values: np.ndarray) -> tuple[bytes, list[int]]:
    """The varints of every int64 of ``values`` concatenated, and the byte offset of each (``len + 1`` offsets)."""
    values = np.asarray(values, np.int64)
    if not len(values):
        return b"", [0]
    if values.min() >= 0 and values.max() < 0x80:  # one byte each (labels, most gaps)
        return values.astype(np.uint8).tobytes(), list(range(len(values) + 1))
    v = values.view(np.uint64)
    groups = (v[:, None] >> _SHIFTS) & np.uint64(0x7F)                       # [n, 10] 7-bit groups, low first
    nonzero = groups != 0
    size = np.where(nonzero.any(axis=1), 10 - np.argmax(nonzero[:, ::-1], axis=1), 1)  # bytes of each varint
    col = np.arange(10)
    groups |= (col < (size - 1)[:, None]).astype(np.uint64) << np.uint64(7)  # continuation bits
    return groups[col < size[:, None]].astype(np.uint8).tobytes(), np.r_[0, np.cumsum(size)].tolist()


def _offsets(sizes: np.ndarray) -> list[int]:
    return np.r_[0, np.cumsum(sizes, dtype=np.int64)].tolist()


def _joined(parts: list[bytes]) -> tuple[bytes, list[int]]:
    """``b"".join(parts)`` and the byte offset of each part (``len + 1`` offsets)."""
    return b"".join(parts), np.r_[0, np.cumsum([len(p) for p in parts], dtype=np.int64)].tolist()


def _bytes_item(value: bytes) -> bytes:
    """One ``BytesList.value`` element."""
    return b"\n" + _varint(len(value)) + value


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _bytes_feature(items: bytes) -> bytes:
    return _length_delimited(b"\n", items)  # Feature.bytes_list


def _float_feature(packed: bytes) -> bytes:
    return _length_delimited(b"\x12", _length_delimited(b"\n", packed) if packed else b"")  # Feature.float_list


def _int64_feature(packed: bytes) -> bytes:
    return _length_delimited(b"\x1a", _length_delimited(b"\n", packed) if packed else b"")  # Feature.int64_list


_KEYS = {f.name: _length_delimited(b"\n", f.name.encode("utf-8")) for f in EXPOSURE_FEATURES}
_KEY_ORDER = sorted(_KEYS, key=lambda k: k.encode("utf-8"))


def _example(fields: Mapping[str, bytes]) -> bytes:
    """A serialized tf.train.Example from its features' serialized ``Feature`` messages, keys in order."""
    features = b"".join(_length_delimited(b"\n", _KEYS[k] + _length_delimited(b"\x12", fields[k]))
                        for k in _KEY_ORDER)
    return _length_delimited(b"\n", features)


def unit_sources(units: Sequence[Unit]) -> dict[str, SourceEntries]:
    """``Unit.candidates`` of a batch as ``exposure_examples``' input (tests, and callers holding lists)."""
    return {s: SourceEntries.from_lists([u.candidates.get(s, ((), ())) for u in units])
            for s in SOURCES if any(s in u.candidates for u in units)}


def units_of_user(rows: Sequence[tuple[str, Mapping]]) -> list[Unit]:
    """The units to rank of one user from ``(split, parsed row)`` pairs: window, eval and test rows.

    Prefix (``train``) rows are never ranked. A user without a validation/test row (fewer
    than three units) has no complete timeline and contributes no unit.
    """
    from transform.ranking_window import WINDOW

    if not any(split in (F.EVAL, F.TEST) for split, _ in rows):
        return []
    timeline = user_timeline(r for split, r in rows if split in (F.EVAL, F.TEST))
    units = []
    for split, r in rows:
        if split == F.TRAIN:
            continue
        start = unit_start(timeline, r)
        units.append(Unit(
            user_id=r[F.USER_ID.name], split=F.TRAIN if split == WINDOW else split, history=list(timeline[:start]),
            targets=list(r[F.TARGET_ITEM_ID.name]), target_behaviour=list(r[F.TARGET_EVENT_TYPE.name]),
            order_pos=int(r[F.TARGET_ORDER_POS.name]), timestamp=int(r[F.TARGET_TIMESTAMP.name])))
    return sorted(units, key=lambda u: len(u.history))


def parse_row(serialized: bytes) -> dict:
    """A raw sequence row as a python dict (the features ``user_timeline`` and ``units_of_user`` read)."""
    import tensorflow as tf

    f = tf.train.Example.FromString(serialized).features.feature

    def strings(name):
        return [v.decode("utf-8") for v in f[name].bytes_list.value]

    return {
        F.USER_ID.name: strings(F.USER_ID.name)[0],
        F.HISTORY_ITEM_ID.name: strings(F.HISTORY_ITEM_ID.name),
        F.HISTORY_ORDER_POS.name: list(f[F.HISTORY_ORDER_POS.name].int64_list.value),
        F.HISTORY_EVENT_TYPE.name: strings(F.HISTORY_EVENT_TYPE.name),
        F.TARGET_ITEM_ID.name: strings(F.TARGET_ITEM_ID.name),
        F.TARGET_EVENT_TYPE.name: strings(F.TARGET_EVENT_TYPE.name),
        F.TARGET_ORDER_POS.name: int(f[F.TARGET_ORDER_POS.name].int64_list.value[0]),
        F.TARGET_TIMESTAMP.name: int(f[F.TARGET_TIMESTAMP.name].int64_list.value[0]),
    }


def row_user(serialized: bytes) -> str:
    """A raw sequence row's user id, nothing else parsed (a sampled run drops most rows by it: 17.5 µs a row
    against ``parse_row``'s 62.4 µs on the 1M rung's ranking window, issue 14)."""
    import tensorflow as tf

    return tf.train.Example.FromString(serialized).features.feature[F.USER_ID.name].bytes_list.value[0].decode("utf-8")


@dataclass(frozen=True)
class RetrieverSet:
    """Where one set of candidate retrievers lives and what they were trained on."""

    two_tower_dir: str
    graph_dir: str
    counts: dict[str, int]  # training interactions per item of the retrievers' training data
    student_dir: str = ""  # the dual-head student (``dual_retrieval``); "" = no student source


class CandidateFn(beam.DoFn):
    """Batches of users (``(user_id, [(split, row)])``) → serialized exposure rows tagged by split.

    The window units are asked to ``prefix`` (retrievers trained on the prefix), the
    validation and test units to ``served``. Retrievers are SavedModels called in
    batches through their serving signatures, exactly as the model server would.
    """

    def __init__(self, prefix: RetrieverSet, served: RetrieverSet, category: dict[str, str], exclude_history: bool,
                 top_n: dict[str, int] | None = None, max_actions: int = MAX_ACTIONS, batch_size: int = 256,
                 vectorised: bool = True, samples: Mapping[str, frozenset[str] | None] | None = None):
        """``samples``: per unit split (``train`` = the window units, ``eval``, ``test``), the users whose units are
        built (a split absent or ``None``: every user's). The other units are dropped before any retriever is
        asked; a user's timeline still comes from all of their rows."""
        if bool(prefix.student_dir) != bool(served.student_dir):
            raise ValueError("the student source needs both a prefix student (window units) and a served one "
                             "(validation/test units), or neither: a source on some splits only would teach the "
                             "ranker a feature it never sees at serving time")
        self._sets = {F.TRAIN: prefix, F.EVAL: served, F.TEST: served}
        self._category = category
        self._exclude = exclude_history
        self._top_n = dict(DEFAULT_TOP_N, **(top_n or {}))
        self._max_actions = max_actions
        self._batch_size = batch_size
        self._vectorised = vectorised
        self._samples = {split: (samples or {}).get(split) for split in F.SEQUENCE_SPLITS}
        unknown = set(samples or {}) - set(F.SEQUENCE_SPLITS)
        if unknown:
            raise ValueError(f"samples are per unit split {F.SEQUENCE_SPLITS}; got {sorted(unknown)}")
        self._counter = {s: beam.metrics.Metrics.counter("recsys", f"exposure_units_{s}") for s in F.SEQUENCE_SPLITS}

    def needed_users(self) -> frozenset[str] | None:
        """The users any built unit can belong to (every split sampled), or None (some split takes every user)."""
        if any(v is None for v in self._samples.values()):
            return None
        return frozenset().union(*self._samples.values())

    def _sampled(self, unit: Unit) -> bool:
        keep = self._samples[unit.split]
        return keep is None or unit.user_id in keep

    def setup(self) -> None:
        import tensorflow as tf

        self._models = {}
        for split, rs in self._sets.items():
            for path in (rs.two_tower_dir, rs.graph_dir, rs.student_dir):
                if path and path not in self._models:
                    self._models[path] = tf.saved_model.load(path)
        self._ranked = {id(rs): sorted(rs.counts, key=lambda i: (-rs.counts[i], i)) for rs in self._sets.values()}
        self._lookup = {id(rs): ItemLookup(rs.counts, self._category) for rs in self._sets.values()}

    def process(self, batch) -> Iterator:
        by_split: dict[str, list[Unit]] = {}
        for _, rows in batch:
            for u in units_of_user(list(rows)):
                if self._sampled(u):
                    by_split.setdefault(u.split, []).append(u)
        for split, units in by_split.items():
            rs = self._sets[split]
            for s in range(0, len(units), self._batch_size):
                chunk = units[s:s + self._batch_size]
                records = self._chunk(chunk, rs) if self._vectorised else self._chunk_per_unit(chunk, rs)
                for example, stats in records:
                    self._counter[split].inc()
                    yield beam.pvalue.TaggedOutput(split, example)
                    yield beam.pvalue.TaggedOutput("stats", stats)

    def _own_sources(self, u: Unit, rs: RetrieverSet) -> dict[str, tuple[list[str], list[float]]]:
        """The ``repeat`` and ``popularity`` candidates of one unit."""
        out = {}
        if self._top_n["repeat"] and not self._exclude:
            out["repeat"] = repeat_candidates(u.history, self._top_n["repeat"])
        seen = {a.item_id for a in u.history} if self._exclude else set()
        out["popularity"] = popularity_candidates(rs.counts, self._ranked[id(rs)], seen, self._top_n["popularity"])
        return out

    def _chunk(self, units: list[Unit], rs: RetrieverSet) -> list[tuple[bytes, dict]]:
        """(serialized row, statistics) of every unit of ``units``: the retrievers' outputs stay arrays and the
        rows are built for the whole chunk at once (``exposure_examples``)."""
        results, vectors = self._ask_retrievers(units, rs)
        sources = {name: SourceEntries.from_matrix(ids, scores) for name, ids, scores in results}
        own = [self._own_sources(u, rs) for u in units]
        for name in ("repeat", "popularity"):
            if any(name in o for o in own):
                sources[name] = SourceEntries.from_lists([o.get(name, ((), ())) for o in own])
        for r, u in enumerate(units):
            u.user_vector = vectors[r]
        return exposure_examples(units, sources, self._lookup[id(rs)], self._max_actions)

    def _chunk_per_unit(self, units: list[Unit], rs: RetrieverSet) -> Iterator[tuple[bytes, dict]]:
        """The former path, kept for the equality test and ``benchmarks/exposure_speed.py``: per-unit candidate
        lists, then ``exposure_row`` and ``to_example`` unit by unit."""
        self._retrieve(units, rs)
        for u in units:
            u.candidates.update(self._own_sources(u, rs))
            row, stats = exposure_row(u, rs.counts, self._category, self._max_actions)
            yield _to_example(row), stats

    def _ask_retrievers(self, units: list[Unit], rs: RetrieverSet) -> tuple[list, np.ndarray]:
        """``([(source, item ids [B, K] bytes, scores [B, K])], user vectors [B, D])``: one batched call of each
        retriever's serving signature for the whole chunk."""
        import tensorflow as tf

        hist = [[a.item_id for a in u.history] for u in units]
        width = max([len(h) for h in hist] + [1])
        # utf-8 by hand: ``astype(bytes)`` encodes ascii and failed on a non-ASCII item id
        padded = tf.constant(np.array([[i.encode("utf-8") for i in h] + [b""] * (width - len(h)) for h in hist],
                                      dtype=object).reshape(len(hist), width))
        exclude = padded if self._exclude else tf.constant([[b""]] * len(units))
        users = tf.constant([u.user_id.encode() for u in units])

        def k(n):
            return tf.constant([n] * len(units), tf.int32)

        tt = self._models[rs.two_tower_dir].signatures[N.SERVING_DEFAULT](
            history=padded, k=k(self._top_n["two_tower"]), exclude=exclude)
        graph = self._models[rs.graph_dir].signatures
        gr = graph[N.RECOMMEND_USER](user_id=users, k=k(self._top_n["graph"]), exclude=exclude)
        vectors = graph[N.USER_VECTOR](user_id=users)[N.EMBEDDING].numpy()
        results = [("two_tower", tt), ("graph", gr)]
        if rs.student_dir and self._top_n["student"]:
            pos = [[a.order_pos for a in u.history] for u in units]
            order_pos = tf.constant(np.array([p + [0] * (width - len(p)) for p in pos], np.int64))
            results.append(("student", self._models[rs.student_dir].signatures[N.RECOMMEND_ORDERS](
                history=padded, order_pos=order_pos, k=k(self._top_n["student"]), exclude=exclude)))
        return [(name, res[N.ITEM_IDS].numpy(), res[N.SCORES].numpy()) for name, res in results], vectors

    def _retrieve(self, units: list[Unit], rs: RetrieverSet) -> None:
        """The retrievers' candidates as per-unit lists in ``Unit.candidates`` (the per-unit path)."""
        results, vectors = self._ask_retrievers(units, rs)
        for name, ids, scores in results:
            for r, u in enumerate(units):
                keep = [c for c, i in enumerate(ids[r]) if i]
                u.candidates[name] = ([ids[r][c].decode() for c in keep], [float(scores[r][c]) for c in keep])
        for r, u in enumerate(units):
            u.user_vector = vectors[r]


def _to_example(row: dict) -> bytes:
    from transform.sequences import to_example

    return to_example(row, EXPOSURE_FEATURES).SerializeToString()


@beam.ptransform_fn
def BuildExposures(rows_by_split: dict, candidate_fn: CandidateFn, users_per_batch: int = 128):  # noqa: N802
    """``{split: PCollection of serialized sequence rows}`` of the ranking-window artifact → exposures.

    Returns ``{"train"|"eval"|"test": serialized exposure rows, "stats": per-unit statistics}``. When every
    split of ``candidate_fn`` is sampled, the rows of users in no sample are dropped before they are grouped.
    """
    needed = candidate_fn.needed_users()

    def sampled(split, pc):  # rows of users in no sample are dropped on their user id alone, before the parse
        if needed is None:
            return pc
        return pc | f"SampledUsers-{split}" >> beam.Filter(lambda b, users=needed: row_user(b) in users)

    keyed = [sampled(split, pc) | f"Parse-{split}" >> beam.Map(lambda b, s=split: (s, parse_row(b)))
             | f"Key-{split}" >> beam.Map(lambda sr: (sr[1][F.USER_ID.name], sr))
             for split, pc in sorted(rows_by_split.items())]
    out = (keyed
           | "Flatten" >> beam.Flatten()
           | "GroupByUser" >> beam.GroupByKey()
           | "Batch" >> beam.BatchElements(min_batch_size=users_per_batch, max_batch_size=users_per_batch)
           | "Candidates" >> beam.ParDo(candidate_fn).with_outputs(*F.SEQUENCE_SPLITS, "stats"))
    return {name: out[name] for name in (*F.SEQUENCE_SPLITS, "stats")}


def summarise(stats: Iterable[Mapping]) -> dict:
    """Per split: units, candidates per unit, positives per unit, share of units with a positive in the set."""
    by: dict[str, list[Mapping]] = {}
    for s in stats:
        by.setdefault(s["split"], []).append(s)
    out = {}
    for split, rows in sorted(by.items()):
        n = len(rows)
        out[split] = {
            "units": n,
            "candidates_per_unit": float(np.mean([r["candidates"] for r in rows])),
            "positives_per_unit": float(np.mean([r["positives"] for r in rows])),
            "targets_per_unit": float(np.mean([r["targets"] for r in rows])),
            "units_with_positive": float(np.mean([r["any_positive"] for r in rows])),
            "target_recall": float(sum(r["positives"] for r in rows) / max(1, sum(r["targets"] for r in rows))),
        }
    return out


def format_stats(stats: Mapping[str, Mapping[str, float]]) -> str:
    lines = ["[exposures] split   units  cand/unit  pos/unit  units with a positive  target recall"]
    for split, s in stats.items():
        lines.append(f"[exposures] {split:<6} {s['units']:>6,} {s['candidates_per_unit']:>10.1f} "
                     f"{s['positives_per_unit']:>9.2f} {s['units_with_positive']:>22.3f} {s['target_recall']:>14.3f}")
    return "\n".join(lines)
