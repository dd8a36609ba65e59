"""Reading raw sequence and catalogue rows back from an Examples artifact (numpy side)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys import features as F


@dataclass(frozen=True)
class Catalog:
    """The item catalogue: ids and categories, position = row in the exported index."""

    item_ids: np.ndarray    # str [N]
    categories: np.ndarray  # str [N]

    def positions(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids.tolist())}


@dataclass(frozen=True)
class SequenceRows:
    """Raw sequence rows of one split, as python lists (histories are full for eval/test)."""

    user_ids: list[str]
    histories: list[list[str]]
    targets: list[list[str]]
    target_timestamps: np.ndarray  # int64 [R]
    history_order_pos: list[list[int]]  # order position of each history item


def _decode(values) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def read_catalog(examples_uri: str) -> Catalog:
    from trainer import base

    cols = base.read_examples(base.split_files(examples_uri, F.CATALOG), F.feature_spec(F.CATALOG_FEATURES))
    return Catalog(np.array(_decode(cols[F.ITEM_ID.name]), dtype=object),
                   np.array(_decode(cols[F.CATEGORY.name]), dtype=object))


def read_rows(examples_uri: str, split: str) -> SequenceRows:
    from trainer import base

    spec = F.feature_spec((F.USER_ID, F.HISTORY_ITEM_ID, F.HISTORY_ORDER_POS, F.TARGET_ITEM_ID, F.TARGET_TIMESTAMP))
    cols = base.read_examples(base.split_files(examples_uri, split), spec)
    return SequenceRows(
        user_ids=_decode(cols[F.USER_ID.name]),
        histories=[_decode(h) for h in cols[F.HISTORY_ITEM_ID.name]],
        targets=[_decode(t) for t in cols[F.TARGET_ITEM_ID.name]],
        target_timestamps=np.asarray(cols[F.TARGET_TIMESTAMP.name], dtype=np.int64),
        history_order_pos=[np.asarray(p, np.int64).tolist() for p in cols[F.HISTORY_ORDER_POS.name]],
    )


def latest_histories(examples_uri: str) -> dict[str, list[str]]:
    """Each user's latest known history: the history and target of their most recent row, any split."""
    latest: dict[str, tuple[int, list[str]]] = {}
    for split in F.SEQUENCE_SPLITS:
        rows = read_rows(examples_uri, split)
        for u, h, t, ts in zip(rows.user_ids, rows.histories, rows.targets, rows.target_timestamps.tolist()):
            if u not in latest or ts > latest[u][0]:
                latest[u] = (ts, h + t)
    return {u: v for u, (_, v) in latest.items()}


def training_interactions(examples_uri: str) -> dict[str, list[str]]:
    """Each user's training-split interactions in time order (first unit + every training target)."""
    rows = read_rows(examples_uri, F.TRAIN)
    order = np.argsort(rows.target_timestamps, kind="stable")
    out: dict[str, list[str]] = {}
    for i in order.tolist():
        u = rows.user_ids[i]
        if u not in out:
            out[u] = list(rows.histories[i])  # the earliest row's history is the user's first unit
        out[u].extend(rows.targets[i])
    return out


def content_example(item_id: str, category: str, vector) -> bytes:
    """A serialized content row (``recsys.features.CONTENT_FEATURES``)."""
    from transform.sequences import to_example

    row = {F.ITEM_ID.name: item_id, F.CATEGORY.name: category, F.EMBEDDING.name: [float(x) for x in vector]}
    return to_example(row, F.CONTENT_FEATURES).SerializeToString()


@dataclass(frozen=True)
class ContentRows:
    item_ids: np.ndarray     # str [N]
    categories: np.ndarray   # str [N]
    vectors: np.ndarray      # float32 [N, D]


def read_content(embeddings_uri: str) -> ContentRows:
    """The ContentEmbedder's rows, sorted by item id (Beam writes them in no particular order)."""
    from trainer import base

    cols = base.read_examples(base.split_files(embeddings_uri, F.CATALOG), F.feature_spec(F.CONTENT_FEATURES))
    ids = np.array(_decode(cols[F.ITEM_ID.name]), dtype=object)
    order = np.argsort(ids, kind="stable")
    vectors = np.stack(cols[F.EMBEDDING.name]).astype(np.float32)
    return ContentRows(ids[order], np.array(_decode(cols[F.CATEGORY.name]), dtype=object)[order], vectors[order])
