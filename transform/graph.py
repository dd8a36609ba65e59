"""The interaction graph of the training events, as Beam transforms and exact pure functions.

Read from the **training split only** (validation and test targets never become
edges): a user's training events are the history of their earliest training
row (their first unit) plus the targets of every training row, each with its
behaviour (``click``, ``like``, ``cart``, ``purchase``; impressions never enter
sequence rows, so they are never edges) and its order position.

Outputs (the GraphBuilder's artifact, ``recsys.features`` names):

* ``edges``: one row per (user, item, behaviour) with the number of events and
  a recency weight ``sum 2^(-age / half_life)``, ``age`` = how many of the
  user's training orders came after the event (0 for the latest order);
* ``item_neighbours``: each item's top-K neighbours in the item–item
  co-interaction graph ``G = Bᵀ B`` (``B``: group × item indicator; a group is
  a basket on basket data, a user's training items otherwise), weighted as
  UltraGCN's item constraint (Mao et al., CIKM 2021)::

      omega(i, j) = G[i, j] / (g_i - G[i, i]) * sqrt(g_i / g_j),   g_i = sum_k G[i, k],  j != i

  ties broken by the lower item position, so the lists are exact and repeatable;
* ``graph_stats.json``: edges, users and items per behaviour, degree
  statistics, and the share of users / catalogue items without a purchase edge.

``G`` is summed in Beam from per-batch sparse products ``B_batchᵀ B_batch``, cut into blocks of
rows and combined per block; each block's rows then give their items' neighbours (with every item's
row sum ``g`` as a side input). A combine adds its inputs in rounds (a round once the waiting parts hold
as many entries as the sum so far), so each entry is copied O(log n) times, not once per batch: at 1M
items and 10M events the single running sum it replaces grew past 15 GB. The statistics are combined
from per-user and per-item degree counts, never from a list of all edges; a user's training rows are folded
per user in a combine that keeps the targets and the earliest row only (grouping whole rows, every row's
history included, is what held 13 GB at 500,000 users / 10M events).
"""
from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np

from recsys import features as F
from recsys.names import LEAVE_LAST_ORDER_OUT, LEAVE_ONE_OUT

DEFAULT_NEIGHBOURS = 10
DEFAULT_HALF_LIFE = 8.0  # orders
STATS_FILE = "graph_stats.json"
DEFAULT_ROW_BLOCK = 1 << 16  # rows of G per block: 16 blocks at 1M items


@dataclass(frozen=True, slots=True)
class TrainingEvent:
    item_id: str
    behaviour: str
    order_pos: int


def user_training_events(rows: Iterable[dict]) -> list[TrainingEvent]:
    """One user's training events from their training rows (parsed dicts, any order).

    The earliest row (smallest target order position) contributes its history and
    targets; every later row its targets only (its history repeats earlier events).
    """
    acc = _new_events()
    for r in rows:
        _add_row(acc, _row_targets(r))
    return _finish_events(acc)


# One user's rows folded one at a time (so Beam can combine them per user without grouping whole rows):
# [earliest target position, that row (parsed dict or serialized), target positions, items, behaviours].


def _new_events() -> list:
    return [None, None, [], [], []]


def _row_targets(row) -> tuple:
    """(target position, target items, target behaviours, the row) of a parsed row."""
    return (int(row[F.TARGET_ORDER_POS.name]), row[F.TARGET_ITEM_ID.name], row[F.TARGET_EVENT_TYPE.name], row)


def _add_row(acc: list, targets: tuple) -> list:
    pos, items, behaviours, row = targets
    if len(items) != len(behaviours):
        raise ValueError(f"a training row has {len(items)} target items and {len(behaviours)} behaviours")
    if acc[0] is None or pos < acc[0]:
        acc[0], acc[1] = pos, row
    acc[2] += [pos] * len(items)
    acc[3] += items
    acc[4] += behaviours
    return acc


def _merge_events(accs: Iterable[list]) -> list:
    out = _new_events()
    for a in accs:
        if a[0] is not None and (out[0] is None or a[0] < out[0]):
            out[0], out[1] = a[0], a[1]
        for k in (2, 3, 4):
            out[k] += a[k]
    return out


def _finish_events(acc: list) -> list[TrainingEvent]:
    if acc[0] is None:
        return []
    first = parse_row(acc[1]) if isinstance(acc[1], bytes) else acc[1]
    events = [TrainingEvent(i, b, int(p)) for i, b, p in zip(
        first[F.HISTORY_ITEM_ID.name], first[F.HISTORY_EVENT_TYPE.name], first[F.HISTORY_ORDER_POS.name],
        strict=True)]
    order = sorted(range(len(acc[2])), key=acc[2].__getitem__)  # stable: a row's targets keep their order
    return events + [TrainingEvent(acc[3][k], acc[4][k], acc[2][k]) for k in order]


@dataclass(frozen=True, slots=True)
class Edge:
    user_id: str
    item_id: str
    behaviour: str
    count: int
    recency: float


def user_edges(user_id: str, events: Sequence[TrainingEvent], half_life: float = DEFAULT_HALF_LIFE) -> list[Edge]:
    """A user's events aggregated per (item, behaviour), sorted by (item, behaviour)."""
    if half_life <= 0:
        raise ValueError(f"half_life must be positive, got {half_life}")
    if not events:
        return []
    last = max(e.order_pos for e in events)
    agg: dict[tuple[str, str], list] = {}
    for e in events:
        if e.behaviour not in F.INTERACTION_TYPES:
            raise ValueError(f"user {user_id!r}: behaviour {e.behaviour!r} is not an interaction "
                             f"({', '.join(F.INTERACTION_TYPES)})")
        a = agg.setdefault((e.item_id, e.behaviour), [0, 0.0])
        a[0] += 1
        a[1] += 2.0 ** (-(last - e.order_pos) / half_life)
    return [Edge(user_id, i, b, c, r) for (i, b), (c, r) in sorted(agg.items())]


def interaction_groups(events: Sequence[TrainingEvent], protocol: str) -> list[list[str]]:
    """The item sets whose co-occurrence forms the item graph: baskets (basket data) or the user's items."""
    if protocol == LEAVE_LAST_ORDER_OUT:
        groups: dict[int, list[str]] = {}
        for e in events:
            groups.setdefault(e.order_pos, []).append(e.item_id)
        return [sorted(set(g)) for _, g in sorted(groups.items())]
    if protocol == LEAVE_ONE_OUT:
        return [sorted({e.item_id for e in events})] if events else []
    raise ValueError(f"Unknown protocol {protocol!r}")


def cooccurrence(groups: Sequence[Sequence[int]], num_items: int, dtype=np.float64):
    """``G = Bᵀ B`` (scipy CSR, [N, N] of ``dtype``) of item-position groups (each item once per group)."""
    import scipy.sparse as sp

    rows = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    cols = np.concatenate([np.asarray(g, np.int64) for g in groups]) if groups else np.zeros(0, np.int64)
    b = sp.csr_matrix((np.ones(len(cols), dtype), (rows, cols)), shape=(len(groups), num_items))
    b.data[:] = 1  # an item twice in one group counts once
    return (b.T @ b).tocsr()


def item_neighbours(g, k: int, deg=None, row_offset: int = 0) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """UltraGCN's top-``k`` item neighbours of every item with co-interactions: (item, neighbours, omega).

    ``g`` is ``G`` or a block of its rows (rows ``row_offset`` onwards), then with ``deg`` = ``G``'s row sums
    (float64 [N]); an item's own row sum and ``G[i, i]`` come from its row.
    """
    g = g.tocsr()
    g.sum_duplicates()
    if deg is None:
        if g.shape[0] != g.shape[1] or row_offset:
            raise ValueError("a block of G's rows needs deg, G's row sums")
        deg = row_sums(g)
    out = []
    for r in range(g.shape[0]):
        i = r + row_offset
        lo, hi = g.indptr[r], g.indptr[r + 1]
        cols, vals = g.indices[lo:hi], g.data[lo:hi].astype(np.float64)
        keep = cols != i
        denom = deg[i] - vals[~keep].sum()
        cols, vals = cols[keep], vals[keep]
        if len(cols) == 0 or denom <= 0:
            continue
        omega = vals / denom * np.sqrt(deg[i] / deg[cols])
        order = np.lexsort((cols, -omega))[:k]
        out.append((i, cols[order].astype(np.int64), omega[order].astype(np.float32)))
    return out


def row_sums(g) -> np.ndarray:
    """A sparse matrix's row sums as float64 (exact for integer counts below 2^53)."""
    return np.asarray(g.sum(axis=1), np.float64).ravel()


def row_blocks(g, block: int) -> Iterator[tuple[int, object]]:
    """``(b, rows b*block .. (b+1)*block of g)`` for each block of CSR ``g``'s rows that has an entry."""
    if block <= 0:
        raise ValueError(f"block must be positive, got {block}")
    n = g.shape[0]
    for b, lo in enumerate(range(0, n, block)):
        hi = min(lo + block, n)
        if g.indptr[hi] > g.indptr[lo]:
            yield b, g[lo:hi]


def sum_sparse(mats: Sequence) -> object:
    """The sum of same-shape scipy CSR matrices, in one pass over their entries (duplicates summed)."""
    import scipy.sparse as sp

    mats = [m for m in mats if m is not None]
    if len(mats) == 1:
        return mats[0]
    shape = mats[0].shape
    rows = np.concatenate([np.repeat(np.arange(m.shape[0], dtype=np.int32), np.diff(m.indptr)) for m in mats])
    cols = np.concatenate([m.indices for m in mats])
    data = np.concatenate([m.data for m in mats])
    out = sp.coo_matrix((data, (rows, cols)), shape=shape).tocsr()
    out.sum_duplicates()
    return out


def degree_summary(degrees: Sequence[int] | Mapping[int, int]) -> dict:
    """Degree statistics of a list of degrees, or of a histogram ``{degree: how many}``."""
    if isinstance(degrees, Mapping):
        keys = sorted(degrees)
        degrees = np.repeat(np.asarray(keys, np.float64), [degrees[k] for k in keys])
    d = np.asarray(degrees, np.float64)
    if not len(d):
        return {"n": 0}
    return {"n": int(len(d)), "mean": round(float(d.mean()), 3), "median": float(np.median(d)),
            "p90": float(np.percentile(d, 90)), "max": int(d.max()), "min": int(d.min())}


def behaviour_degrees(behaviours: Iterable[str]) -> dict[str, int]:
    """One user's or item's degree per behaviour: how many of its edges have that behaviour."""
    return dict(Counter(behaviours))


class DegreeCounts:
    """How many users (or items) have each degree per behaviour; mergeable, so Beam can combine it."""

    def __init__(self):
        self.entities = 0
        self.hist: dict[str, Counter] = {}

    def add(self, degrees: Mapping[str, int]) -> "DegreeCounts":
        self.entities += 1
        for b, d in degrees.items():
            self.hist.setdefault(b, Counter())[d] += 1
        return self

    def merge(self, other: "DegreeCounts") -> "DegreeCounts":
        self.entities += other.entities
        for b, h in other.hist.items():
            self.hist.setdefault(b, Counter()).update(h)
        return self


def stats_from_degrees(users: DegreeCounts, items: DegreeCounts, num_catalog_items: int) -> dict:
    """``graph_stats`` from the users' and the items' degree counts."""
    target = F.TARGET_BEHAVIOUR
    with_target = lambda c: sum(c.hist.get(target, {}).values())  # noqa: E731
    return {
        "edges": {b: sum(d * n for d, n in users.hist[b].items()) for b in F.INTERACTION_TYPES if b in users.hist},
        "users": users.entities, "items_with_edges": items.entities, "catalog_items": num_catalog_items,
        "user_degree": {b: degree_summary(users.hist[b]) for b in F.INTERACTION_TYPES if b in users.hist},
        "item_degree": {b: degree_summary(items.hist[b]) for b in F.INTERACTION_TYPES if b in items.hist},
        "users_without_purchase_edge": round(1 - with_target(users) / max(users.entities, 1), 4),
        "catalog_items_without_purchase_edge": round(1 - with_target(items) / max(num_catalog_items, 1), 4),
    }


def graph_stats(edges: Iterable[Edge], num_catalog_items: int) -> dict:
    """Per-behaviour edge counts and degree statistics; users / catalogue items without a purchase edge."""
    by_user: dict[str, list[str]] = {}
    by_item: dict[str, list[str]] = {}
    for e in edges:
        by_user.setdefault(e.user_id, []).append(e.behaviour)
        by_item.setdefault(e.item_id, []).append(e.behaviour)
    users, items = DegreeCounts(), DegreeCounts()
    for bs in by_user.values():
        users.add(behaviour_degrees(bs))
    for bs in by_item.values():
        items.add(behaviour_degrees(bs))
    return stats_from_degrees(users, items, num_catalog_items)


def format_stats(stats: dict) -> str:
    lines = [f"[graph] {stats['users']:,} users, {stats['items_with_edges']:,} of {stats['catalog_items']:,} "
             f"catalogue items have edges"]
    for b, n in stats["edges"].items():
        u, i = stats["user_degree"][b], stats["item_degree"][b]
        lines.append(f"[graph]   {b}: {n:,} edges; user degree mean {u['mean']} median {u['median']:g} max "
                     f"{u['max']}; item degree mean {i['mean']} median {i['median']:g} max {i['max']}")
    lines.append(f"[graph] without a {F.TARGET_BEHAVIOUR} edge: {stats['users_without_purchase_edge']:.1%} of users, "
                 f"{stats['catalog_items_without_purchase_edge']:.1%} of catalogue items")
    return "\n".join(lines)


# --- Beam -------------------------------------------------------------------------------------------

_ROW_FEATURES = (F.USER_ID, F.HISTORY_ITEM_ID, F.HISTORY_ORDER_POS, F.HISTORY_EVENT_TYPE, F.TARGET_ITEM_ID,
                 F.TARGET_EVENT_TYPE, F.TARGET_ORDER_POS)


def parse_row(serialized: bytes) -> dict:
    """A serialized training row → python dict of the features the graph needs."""
    import tensorflow as tf

    ex = tf.train.Example.FromString(serialized)
    out = {}
    for f in _ROW_FEATURES:
        feat = ex.features.feature[f.name]
        vals = list(feat.bytes_list.value) if f.dtype == "string" else list(feat.int64_list.value)
        vals = [v.decode("utf-8") for v in vals] if f.dtype == "string" else vals
        out[f.name] = vals if f.varlen else vals[0]
    return out


def edge_example(e: Edge) -> bytes:
    from transform.sequences import to_example

    row = {F.USER_ID.name: e.user_id, F.ITEM_ID.name: e.item_id, F.BEHAVIOUR.name: e.behaviour,
           F.EDGE_COUNT.name: e.count, F.EDGE_RECENCY.name: e.recency}
    return to_example(row, F.EDGE_FEATURES).SerializeToString()


def neighbour_example(item_id: str, neighbours: list[str], weights: Sequence[float]) -> bytes:
    from transform.sequences import to_example

    row = {F.ITEM_ID.name: item_id, F.NEIGHBOUR_ITEM_ID.name: neighbours,
           F.NEIGHBOUR_WEIGHT.name: [float(w) for w in weights]}
    return to_example(row, F.ITEM_NEIGHBOUR_FEATURES).SerializeToString()


class _SumSparse(beam.CombineFn):
    """Sums same-shape scipy CSR matrices in rounds: the waiting parts are added to the sum once they hold
    as many entries as it (at least ``min_round``), so the sum is copied O(log n) times, not once per input."""

    def __init__(self, min_round: int = 1 << 20):
        self._min_round = min_round

    def create_accumulator(self):
        return [None, [], 0]  # the sum so far, the waiting parts, their entries

    def _round(self, acc, force: bool = False):
        total, parts, waiting = acc
        if parts and (force or waiting >= max(self._min_round, 0 if total is None else total.nnz)):
            acc[:] = [sum_sparse([total] + parts) if total is not None else sum_sparse(parts), [], 0]
        return acc

    def add_input(self, acc, m):
        acc[1].append(m)
        acc[2] += m.nnz
        return self._round(acc)

    def merge_accumulators(self, accs):
        out = self.create_accumulator()
        for total, parts, waiting in accs:
            out[1] += ([total] if total is not None else []) + parts
            out[2] += waiting + (0 if total is None else total.nnz)
        return self._round(out)

    def compact(self, acc):
        return self._round(acc, force=True)

    def extract_output(self, acc):
        return self._round(acc, force=True)[0]


def _serialized_targets(serialized: bytes) -> tuple[str, tuple]:
    """(user, (target position, target items, target behaviours, the serialized row)): what a user's fold
    needs of a row; only the earliest row's history is ever parsed again."""
    import tensorflow as tf

    f = tf.train.Example.FromString(serialized).features.feature
    strings = lambda name: [sys.intern(v.decode("utf-8")) for v in f[name].bytes_list.value]  # noqa: E731
    return (f[F.USER_ID.name].bytes_list.value[0].decode("utf-8"),
            (int(f[F.TARGET_ORDER_POS.name].int64_list.value[0]), strings(F.TARGET_ITEM_ID.name),
             strings(F.TARGET_EVENT_TYPE.name), serialized))


class _Fold(beam.CombineFn):
    """A combine from three functions: ``new()`` an accumulator, ``add(acc, x)`` and ``merge(acc, other)`` each
    returning the accumulator, then ``out(acc)``."""

    def __init__(self, new, add, merge, out=lambda acc: acc):
        self._new, self._add, self._merge, self._out = new, add, merge, out

    def create_accumulator(self):
        return self._new()

    def add_input(self, acc, x):
        return self._add(acc, x)

    def merge_accumulators(self, accs):
        accs = iter(accs)
        out = next(accs)
        for a in accs:
            out = self._merge(out, a)
        return out

    def extract_output(self, acc):
        return self._out(acc)


def _count_into(acc: Counter, x) -> Counter:
    acc[x] += 1
    return acc


def _update(acc: Counter, other: Counter) -> Counter:
    acc.update(other)
    return acc


def _training_events_fn() -> _Fold:
    """A user's rows → their training events (``user_training_events``), combined per user: only the earliest
    row so far and the targets are kept, never every row's history."""
    return _Fold(_new_events, _add_row, lambda a, b: _merge_events([a, b]), _finish_events)


def _behaviour_degrees_fn() -> _Fold:
    """An item's behaviours → its degree per behaviour (``behaviour_degrees``), combined per item."""
    return _Fold(Counter, _count_into, _update, dict)


def _degree_counts_fn() -> _Fold:
    """Per-entity behaviour degrees → ``DegreeCounts``."""
    return _Fold(DegreeCounts, DegreeCounts.add, DegreeCounts.merge)


def _deg_vector(blocks: Iterable[tuple[int, np.ndarray]], num_items: int, block: int) -> np.ndarray:
    deg = np.zeros(num_items, np.float64)
    for b, sums in blocks:
        deg[b * block:b * block + len(sums)] = sums
    return deg


@beam.ptransform_fn
def BuildGraph(train_rows, item_ids: Sequence[str], protocol: str, neighbours: int = DEFAULT_NEIGHBOURS,  # noqa: N802
               half_life: float = DEFAULT_HALF_LIFE, group_batch: int = 512, row_block: int = DEFAULT_ROW_BLOCK):
    """Serialized training rows → ``{"edges": serialized edges, "item_neighbours": ..., "stats": graph_stats}``."""
    positions = {item: i for i, item in enumerate(item_ids)}
    ids = list(item_ids)
    n = len(ids)
    events = (train_rows
              | "Targets" >> beam.Map(_serialized_targets)
              | "EventsPerUser" >> beam.CombinePerKey(_training_events_fn()))
    user_edge_lists = events | "UserEdges" >> beam.MapTuple(lambda u, ev: user_edges(u, ev, half_life))
    edges = user_edge_lists | "Edges" >> beam.FlatMap(lambda es: es)

    def groups(kv) -> Iterator[list[int]]:
        for g in interaction_groups(kv[1], protocol):
            idx = [positions[i] for i in g if i in positions]
            if idx:  # singletons too: they count in g_i = sum_k G[i, k]
                yield idx

    def rows_of(block_rows, deg) -> Iterator[bytes]:
        b, g = block_rows
        for i, nbrs, w in item_neighbours(g, neighbours, deg=deg, row_offset=b * row_block):
            yield neighbour_example(ids[i], [ids[j] for j in nbrs.tolist()], w.tolist())

    blocks = (events
              | "Groups" >> beam.FlatMap(groups)
              | "BatchGroups" >> beam.BatchElements(min_batch_size=group_batch, max_batch_size=group_batch)
              | "Cooccurrence" >> beam.FlatMap(lambda batch: row_blocks(cooccurrence(batch, n, np.int32), row_block))
              | "SumPerBlock" >> beam.CombinePerKey(_SumSparse()))
    deg = (blocks
           | "BlockRowSums" >> beam.MapTuple(lambda b, g: (b, row_sums(g)))
           | "AllRowSums" >> beam.combiners.ToList()
           | "RowSums" >> beam.Map(_deg_vector, n, row_block))
    neighbour_rows = blocks | "Neighbours" >> beam.FlatMap(rows_of, beam.pvalue.AsSingleton(deg))

    user_counts = (user_edge_lists
                   | "UserDegrees" >> beam.Map(lambda es: behaviour_degrees(e.behaviour for e in es))
                   | "UserDegreeCounts" >> beam.CombineGlobally(_degree_counts_fn()))
    item_counts = (edges
                   | "ItemBehaviour" >> beam.Map(lambda e: (e.item_id, e.behaviour))
                   | "ItemDegrees" >> beam.CombinePerKey(_behaviour_degrees_fn())
                   | "Degrees" >> beam.Values()
                   | "ItemDegreeCounts" >> beam.CombineGlobally(_degree_counts_fn()))
    stats = user_counts | "Stats" >> beam.Map(lambda u, i: stats_from_degrees(u, i, n),
                                              beam.pvalue.AsSingleton(item_counts))
    return {F.EDGES: edges | "EdgeExamples" >> beam.Map(edge_example),
            F.ITEM_NEIGHBOURS: neighbour_rows, "stats": stats}


def write_stats(stats: dict, path: str) -> None:
    from transform import fileio

    fileio.write_json(path, stats, indent=1)
