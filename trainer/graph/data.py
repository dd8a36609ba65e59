"""The graph retriever's inputs: the GraphBuilder's edges and neighbours in catalogue index space, and eval rows.

Index conventions: catalogue items 0..N-1 (catalogue order); users 0..U-1 = the
users with at least one training edge, sorted by id. Behaviours index
``config.behaviours`` (the target behaviour among them).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys import features as F
from transform import examples_io


@dataclass(frozen=True)
class GraphData:
    """Edges [E] (user, item, behaviour index, count, recency), item neighbours [N, K] (-1 = none), content [N, Dc]."""

    item_ids: np.ndarray
    user_ids: np.ndarray
    behaviours: tuple[str, ...]
    edge_user: np.ndarray
    edge_item: np.ndarray
    edge_behaviour: np.ndarray
    edge_count: np.ndarray
    edge_recency: np.ndarray
    neighbours: np.ndarray
    omega: np.ndarray
    content: np.ndarray | None

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @property
    def target(self) -> int:
        return self.behaviours.index(F.TARGET_BEHAVIOUR)

    def user_positions(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.user_ids.tolist())}

    def only(self, behaviours: tuple[str, ...]) -> "GraphData":
        """The same graph with only the edges of ``behaviours`` (users keep their index)."""
        keep_idx = [self.behaviours.index(b) for b in behaviours if b in self.behaviours]
        keep = np.isin(self.edge_behaviour, keep_idx)
        remap = np.full(len(self.behaviours), -1, np.int32)
        remap[keep_idx] = np.arange(len(keep_idx))
        return GraphData(self.item_ids, self.user_ids, tuple(self.behaviours[i] for i in keep_idx),
                         self.edge_user[keep], self.edge_item[keep], remap[self.edge_behaviour[keep]],
                         self.edge_count[keep], self.edge_recency[keep], self.neighbours, self.omega, self.content)

    def degrees(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-behaviour degrees: users [nb, U], items [nb, N] (edges of that behaviour)."""
        nb = len(self.behaviours)
        du = np.zeros((nb, self.num_users), np.float32)
        di = np.zeros((nb, self.num_items), np.float32)
        np.add.at(du, (self.edge_behaviour, self.edge_user), 1.0)
        np.add.at(di, (self.edge_behaviour, self.edge_item), 1.0)
        return du, di

    def user_items(self) -> list[np.ndarray]:
        """Each user's distinct training items (any behaviour)."""
        order = np.lexsort((self.edge_item, self.edge_user))
        u, i = self.edge_user[order], self.edge_item[order]
        bounds = np.searchsorted(u, np.arange(self.num_users + 1))
        return [np.unique(i[bounds[k]:bounds[k + 1]]) for k in range(self.num_users)]


def load_graph(graph_uri: str, examples_uri: str, behaviours: tuple[str, ...], neighbours: int,
               content: np.ndarray | None) -> GraphData:
    """The GraphBuilder's artifact in index space (edges of ``behaviours`` only; neighbours cut to ``neighbours``)."""
    catalog = examples_io.read_catalog(examples_uri)
    pos = catalog.positions()
    edges = examples_io.read_graph_edges(graph_uri)
    keep = np.isin(edges.behaviours, list(behaviours)) & np.array([i in pos for i in edges.item_ids.tolist()], bool)
    users = np.array(sorted(set(edges.user_ids[keep].tolist())), dtype=object)
    upos = {u: k for k, u in enumerate(users.tolist())}
    bpos = {b: k for k, b in enumerate(behaviours)}
    nbr = np.full((len(pos), neighbours), -1, np.int64)
    omega = np.zeros((len(pos), neighbours), np.float32)
    for item, (ids, w) in examples_io.read_item_neighbours(graph_uri).items():
        if item not in pos:
            continue
        js = [(pos[j], x) for j, x in zip(ids, w) if j in pos][:neighbours]
        nbr[pos[item], : len(js)] = [j for j, _ in js]
        omega[pos[item], : len(js)] = [x for _, x in js]
    if content is not None and len(content) != len(pos):
        raise ValueError(f"content has {len(content)} rows for {len(pos)} catalogue items")
    return GraphData(
        catalog.item_ids, users, tuple(behaviours),
        np.array([upos[u] for u in edges.user_ids[keep].tolist()], np.int64),
        np.array([pos[i] for i in edges.item_ids[keep].tolist()], np.int64),
        np.array([bpos[b] for b in edges.behaviours[keep].tolist()], np.int32),
        edges.counts[keep], edges.recency[keep], nbr, omega, content)


@dataclass(frozen=True)
class EvalRows:
    """Validation/test rows of users in the graph: user index [R], targets, history (catalogue positions), and the
    behaviour of each target (as ``targets``; None when not read)."""

    users: np.ndarray
    targets: list
    histories: list
    user_ids: list
    target_behaviours: list | None = None


def load_eval_rows(examples_uri: str, split: str, graph: GraphData) -> EvalRows:
    rows = examples_io.read_rows(examples_uri, split)
    pos = {item: i for i, item in enumerate(graph.item_ids.tolist())}
    upos = graph.user_positions()
    keep = [r for r, u in enumerate(rows.user_ids) if u in upos]
    return EvalRows(np.array([upos[rows.user_ids[r]] for r in keep], np.int64),
                    [np.array([pos[t] for t in rows.targets[r] if t in pos], np.int64) for r in keep],
                    [np.array([pos[h] for h in rows.histories[r] if h in pos], np.int64) for r in keep],
                    [rows.user_ids[r] for r in keep],
                    [np.array([b for t, b in zip(rows.targets[r], rows.target_event_types[r], strict=True) if t in pos],
                              dtype=object) for r in keep])


def sample_eval_rows(rows: EvalRows, size: int, seed: int = 0) -> EvalRows:
    """``rows`` of ``size`` users drawn uniformly without replacement (``recsys.evaluation.metrics.sample_rows``:
    the draw depends on the user ids and ``seed`` only); ``rows`` itself when ``size`` is 0 or not below its
    row count."""
    from recsys.evaluation.metrics import sample_rows

    keep = sample_rows(rows.user_ids, size, seed)
    if len(keep) == len(rows.user_ids):
        return rows
    pick = keep.tolist()
    return EvalRows(rows.users[keep], [rows.targets[r] for r in pick], [rows.histories[r] for r in pick],
                    [rows.user_ids[r] for r in pick],
                    None if rows.target_behaviours is None else [rows.target_behaviours[r] for r in pick])


def catalogue_content(examples_uri: str, embeddings_uri: str) -> np.ndarray:
    """The ContentEmbedder's vectors [N, Dc] in catalogue order (every catalogue item must have one)."""
    catalog = examples_io.read_catalog(examples_uri)
    rows = examples_io.read_content(embeddings_uri)
    at = {i: k for k, i in enumerate(rows.item_ids.tolist())}
    missing = [i for i in catalog.item_ids.tolist() if i not in at]
    if missing:
        raise ValueError(f"{len(missing)} catalogue items have no content embedding (first: {missing[:5]})")
    return rows.vectors[[at[i] for i in catalog.item_ids.tolist()]]
