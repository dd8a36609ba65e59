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

``G`` is summed in a Beam combine from per-batch sparse products (each worker
adds ``B_batchᵀ B_batch`` of its groups), so no worker ever holds the pairs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import apache_beam as beam
import numpy as np

from recsys import features as F
from recsys.names import LEAVE_LAST_ORDER_OUT, LEAVE_ONE_OUT

DEFAULT_NEIGHBOURS = 10
DEFAULT_HALF_LIFE = 8.0  # orders
STATS_FILE = "graph_stats.json"


@dataclass(frozen=True)
class TrainingEvent:
    item_id: str
    behaviour: str
    order_pos: int


def user_training_events(rows: Iterable[dict]) -> list[TrainingEvent]:
    """One user's training events from their training rows (parsed dicts, any order).

    The earliest row (smallest target order position) contributes its history and
    targets; every later row its targets only (its history repeats earlier events).
    """
    rows = sorted(rows, key=lambda r: int(r[F.TARGET_ORDER_POS.name]))
    if not rows:
        return []
    first = rows[0]
    events = [TrainingEvent(i, b, int(p)) for i, b, p in zip(
        first[F.HISTORY_ITEM_ID.name], first[F.HISTORY_EVENT_TYPE.name], first[F.HISTORY_ORDER_POS.name],
        strict=True)]
    for r in rows:
        pos = int(r[F.TARGET_ORDER_POS.name])
        events += [TrainingEvent(i, b, pos) for i, b in zip(r[F.TARGET_ITEM_ID.name], r[F.TARGET_EVENT_TYPE.name],
                                                             strict=True)]
    return events


@dataclass(frozen=True)
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


def cooccurrence(groups: Sequence[Sequence[int]], num_items: int):
    """``G = Bᵀ B`` (scipy CSR, float64 [N, N]) of item-position groups (each item once per group)."""
    import scipy.sparse as sp

    rows = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    cols = np.concatenate([np.asarray(g, np.int64) for g in groups]) if groups else np.zeros(0, np.int64)
    b = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(groups), num_items))
    b.data[:] = 1.0  # an item twice in one group counts once
    return (b.T @ b).tocsr()


def item_neighbours(g, k: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """UltraGCN's top-``k`` item neighbours of every item with co-interactions: (item, neighbours, omega)."""
    g = g.tocsr()
    g.sum_duplicates()
    deg = np.asarray(g.sum(axis=1)).ravel()
    diag = g.diagonal()
    out = []
    for i in range(g.shape[0]):
        lo, hi = g.indptr[i], g.indptr[i + 1]
        cols, vals = g.indices[lo:hi], g.data[lo:hi]
        keep = cols != i
        cols, vals = cols[keep], vals[keep]
        denom = deg[i] - diag[i]
        if len(cols) == 0 or denom <= 0:
            continue
        omega = vals / denom * np.sqrt(deg[i] / deg[cols])
        order = np.lexsort((cols, -omega))[:k]
        out.append((i, cols[order].astype(np.int64), omega[order].astype(np.float32)))
    return out


def degree_summary(degrees: Sequence[int]) -> dict:
    d = np.asarray(degrees, np.float64)
    if not len(d):
        return {"n": 0}
    return {"n": int(len(d)), "mean": round(float(d.mean()), 3), "median": float(np.median(d)),
            "p90": float(np.percentile(d, 90)), "max": int(d.max()), "min": int(d.min())}


def graph_stats(edges: Iterable[Edge], num_catalog_items: int) -> dict:
    """Per-behaviour edge counts and degree statistics; users / catalogue items without a purchase edge."""
    user_deg: dict[str, dict[str, int]] = {}
    item_deg: dict[str, dict[str, int]] = {}
    users, items, n_edges = set(), set(), {}
    for e in edges:
        n_edges[e.behaviour] = n_edges.get(e.behaviour, 0) + 1
        user_deg.setdefault(e.behaviour, {}).setdefault(e.user_id, 0)
        user_deg[e.behaviour][e.user_id] += 1
        item_deg.setdefault(e.behaviour, {}).setdefault(e.item_id, 0)
        item_deg[e.behaviour][e.item_id] += 1
        users.add(e.user_id)
        items.add(e.item_id)
    target = F.TARGET_BEHAVIOUR
    purchase_users = set(user_deg.get(target, {}))
    purchase_items = set(item_deg.get(target, {}))
    return {
        "edges": {b: n_edges[b] for b in F.INTERACTION_TYPES if b in n_edges},
        "users": len(users), "items_with_edges": len(items), "catalog_items": num_catalog_items,
        "user_degree": {b: degree_summary(list(user_deg[b].values())) for b in F.INTERACTION_TYPES if b in user_deg},
        "item_degree": {b: degree_summary(list(item_deg[b].values())) for b in F.INTERACTION_TYPES if b in item_deg},
        "users_without_purchase_edge": round(1 - len(purchase_users) / max(len(users), 1), 4),
        "catalog_items_without_purchase_edge": round(1 - len(purchase_items) / max(num_catalog_items, 1), 4),
    }


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
    """Sums scipy sparse matrices (the per-batch co-occurrence products)."""

    def __init__(self, num_items: int):
        self._n = num_items

    def create_accumulator(self):
        import scipy.sparse as sp

        return sp.csr_matrix((self._n, self._n))

    def add_input(self, acc, m):
        return acc + m

    def merge_accumulators(self, accs):
        accs = iter(accs)
        total = next(accs)
        for a in accs:
            total = total + a
        return total

    def extract_output(self, acc):
        return acc


@beam.ptransform_fn
def BuildGraph(train_rows, item_ids: Sequence[str], protocol: str, neighbours: int = DEFAULT_NEIGHBOURS,  # noqa: N802
               half_life: float = DEFAULT_HALF_LIFE, group_batch: int = 512):
    """Serialized training rows → ``{"edges": serialized edges, "item_neighbours": ..., "edge_list": Edges}``."""
    positions = {item: i for i, item in enumerate(item_ids)}
    ids = list(item_ids)
    events = (train_rows
              | "Parse" >> beam.Map(parse_row)
              | "ByUser" >> beam.Map(lambda r: (r[F.USER_ID.name], r))
              | "GroupByUser" >> beam.GroupByKey()
              | "Events" >> beam.MapTuple(lambda u, rows: (u, user_training_events(rows))))
    edges = events | "Edges" >> beam.FlatMapTuple(lambda u, ev: user_edges(u, ev, half_life))

    def groups(kv) -> Iterator[list[int]]:
        for g in interaction_groups(kv[1], protocol):
            idx = [positions[i] for i in g if i in positions]
            if idx:  # singletons too: they count in g_i = sum_k G[i, k]
                yield idx

    def rows_of(g) -> Iterator[bytes]:
        for i, nbrs, w in item_neighbours(g, neighbours):
            yield neighbour_example(ids[i], [ids[j] for j in nbrs.tolist()], w.tolist())

    neighbour_rows = (events
                      | "Groups" >> beam.FlatMap(groups)
                      | "BatchGroups" >> beam.BatchElements(min_batch_size=group_batch, max_batch_size=group_batch)
                      | "Cooccurrence" >> beam.Map(lambda batch: cooccurrence(batch, len(ids)))
                      | "SumCooccurrence" >> beam.CombineGlobally(_SumSparse(len(ids)))
                      | "Neighbours" >> beam.FlatMap(rows_of))
    return {F.EDGES: edges | "EdgeExamples" >> beam.Map(edge_example),
            F.ITEM_NEIGHBOURS: neighbour_rows, "edge_list": edges}


def write_stats(stats: dict, path: str) -> None:
    from transform import fileio

    fileio.write_json(path, stats, indent=1)
