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
                 top_n: dict[str, int] | None = None, max_actions: int = MAX_ACTIONS, batch_size: int = 256):
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
        self._counter = {s: beam.metrics.Metrics.counter("recsys", f"exposure_units_{s}") for s in F.SEQUENCE_SPLITS}

    def setup(self) -> None:
        import tensorflow as tf

        self._models = {}
        for split, rs in self._sets.items():
            for path in (rs.two_tower_dir, rs.graph_dir, rs.student_dir):
                if path and path not in self._models:
                    self._models[path] = tf.saved_model.load(path)
        self._ranked = {id(rs): sorted(rs.counts, key=lambda i: (-rs.counts[i], i)) for rs in self._sets.values()}

    def process(self, batch) -> Iterator:
        by_split: dict[str, list[Unit]] = {}
        for _, rows in batch:
            for u in units_of_user(list(rows)):
                by_split.setdefault(u.split, []).append(u)
        for split, units in by_split.items():
            rs = self._sets[split]
            for s in range(0, len(units), self._batch_size):
                chunk = units[s:s + self._batch_size]
                self._retrieve(chunk, rs)
                for u in chunk:
                    if self._top_n["repeat"] and not self._exclude:
                        u.candidates["repeat"] = repeat_candidates(u.history, self._top_n["repeat"])
                    seen = {a.item_id for a in u.history} if self._exclude else set()
                    u.candidates["popularity"] = popularity_candidates(rs.counts, self._ranked[id(rs)], seen,
                                                                       self._top_n["popularity"])
                    row, stats = exposure_row(u, rs.counts, self._category, self._max_actions)
                    self._counter[split].inc()
                    yield beam.pvalue.TaggedOutput(split, _to_example(row))
                    yield beam.pvalue.TaggedOutput("stats", stats)

    def _retrieve(self, units: list[Unit], rs: RetrieverSet) -> None:
        import tensorflow as tf

        hist = [[a.item_id for a in u.history] for u in units]
        width = max([len(h) for h in hist] + [1])
        padded = tf.constant(np.array([h + [""] * (width - len(h)) for h in hist], dtype=object).astype(bytes))
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
        for name, res in results:
            ids, scores = res[N.ITEM_IDS].numpy(), res[N.SCORES].numpy()
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

    Returns ``{"train"|"eval"|"test": serialized exposure rows, "stats": per-unit statistics}``.
    """
    keyed = [pc | f"Parse-{split}" >> beam.Map(lambda b, s=split: (s, parse_row(b)))
             | f"Key-{split}" >> beam.Map(lambda sr: (sr[1][F.USER_ID.name], sr))
             for split, pc in sorted(rows_by_split.items())]
    out = (keyed | "Flatten" >> beam.Flatten()
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
