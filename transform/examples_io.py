"""Reading an Examples artifact back (numpy side): raw sequence rows, the catalogue, content rows.

The one reader of what ``transform.sequences`` and the ContentEmbedder write; the
trainers, exporters, evaluators and batch jobs all read through it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from recsys import features as F
from transform import fileio


def split_files(uri_or_pattern: str | list[str], split: str | None = None) -> list[str]:
    """Files of one split of an Examples artifact (or the given file patterns)."""
    patterns = [uri_or_pattern] if isinstance(uri_or_pattern, str) else list(uri_or_pattern)
    if split is not None:
        patterns = [os.path.join(p, f"Split-{split}", "*") for p in patterns]
    files = sorted(f for p in patterns for f in fileio.glob(p))
    if not files:
        raise FileNotFoundError(f"No example files match {patterns}")
    return files


def record_dataset(files: list[str], users: frozenset[str] | None = None, key: str = F.USER_ID.name):
    """The gzip TFRecords of ``files``; with ``users``, only the records whose ``key`` (one string) is one of them
    (filtered inside tf.data: the others are never parsed beyond that feature)."""
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if users is None:
        return ds
    keys = sorted(users) or ["\x00"]  # TF tables cannot be empty: one key no real id can take
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(keys, tf.string), tf.ones([len(keys)], tf.int64) if users else tf.zeros([1], tf.int64)),
        default_value=0)
    spec = {key: tf.io.FixedLenFeature([], tf.string)}
    return ds.filter(lambda record: table.lookup(tf.io.parse_single_example(record, spec)[key]) > 0)


def user_ids(files: list[str], key: str = F.USER_ID.name, batch_size: int = 4096) -> list[str]:
    """The ``key`` string of every record of ``files``, in file order (only that feature is parsed)."""
    import tensorflow as tf

    spec = {key: tf.io.FixedLenFeature([], tf.string)}
    out: list[str] = []
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size):
        out.extend(v.decode("utf-8") for v in tf.io.parse_example(batch, spec)[key].numpy().tolist())
    return out


def sampled_users(files: list[str], size: int, seed: int = 0, key: str = F.USER_ID.name) -> frozenset[str] | None:
    """``size`` users of ``files`` drawn as the evaluators' ``--eval-users`` draws them
    (``recsys.evaluation.metrics.sample_rows``: the same users for the same split, size and seed); None (every
    user) when ``size`` is 0 or not below the number of records."""
    from recsys.evaluation.metrics import sample_rows

    if size < 0:
        raise ValueError(f"sample size must be >= 0 (0 = every user); got {size}")
    if not size:
        return None
    ids = user_ids(files, key)
    keep = sample_rows(ids, size, seed)
    return None if len(keep) == len(ids) else frozenset(ids[i] for i in keep.tolist())


def read_examples(files: list[str], spec: dict, batch_size: int = 4096,
                  users: frozenset[str] | None = None) -> dict[str, list]:
    """All examples of ``files`` (or those of ``users``: ``record_dataset``) as python/numpy columns (dense →
    ndarray, varlen → list of arrays)."""
    import tensorflow as tf

    ds = record_dataset(files, users).batch(batch_size)
    cols: dict[str, list] = {k: [] for k in spec}
    for batch in ds:
        parsed = tf.io.parse_example(batch, spec)
        for k, v in parsed.items():
            if isinstance(v, tf.SparseTensor):
                rt = tf.RaggedTensor.from_sparse(v)
                cols[k].extend(np.asarray(x) for x in rt.to_list())
            else:
                cols[k].extend(v.numpy().tolist())
    return cols


@dataclass(frozen=True)
class Catalog:
    """The item catalogue: ids and categories, position = row in the exported index."""

    item_ids: np.ndarray    # str [N]
    categories: np.ndarray  # str [N]
    created_at: np.ndarray  # int64 [N] epoch seconds, -1 unknown
    brands: np.ndarray      # str [N] ("" unknown)
    prices: np.ndarray      # float32 [N] (NaN unknown)

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
    target_order_pos: np.ndarray  # int64 [R], order position of the target(s)
    target_event_types: list[list[str]]  # behaviour of each target (as ``targets``)
    history_event_types: list[list[str]]  # behaviour of each history item (as ``histories``)


def _decode(values) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def read_catalog(examples_uri: str) -> Catalog:
    cols = read_examples(split_files(examples_uri, F.CATALOG), F.feature_spec(F.CATALOG_FEATURES))
    return Catalog(np.array(_decode(cols[F.ITEM_ID.name]), dtype=object),
                   np.array(_decode(cols[F.CATEGORY.name]), dtype=object),
                   np.asarray(cols[F.CREATED_AT.name], np.int64),
                   np.array(_decode(cols[F.BRAND.name]), dtype=object),
                   np.asarray(cols[F.PRICE.name], np.float32))


def read_rows(examples_uri: str, split: str) -> SequenceRows:
    spec = F.feature_spec((F.USER_ID, F.HISTORY_ITEM_ID, F.HISTORY_ORDER_POS, F.HISTORY_EVENT_TYPE, F.TARGET_ITEM_ID,
                           F.TARGET_TIMESTAMP, F.TARGET_ORDER_POS, F.TARGET_EVENT_TYPE))
    cols = read_examples(split_files(examples_uri, split), spec)
    return SequenceRows(
        user_ids=_decode(cols[F.USER_ID.name]),
        histories=[_decode(h) for h in cols[F.HISTORY_ITEM_ID.name]],
        targets=[_decode(t) for t in cols[F.TARGET_ITEM_ID.name]],
        target_timestamps=np.asarray(cols[F.TARGET_TIMESTAMP.name], dtype=np.int64),
        history_order_pos=[np.asarray(p, np.int64).tolist() for p in cols[F.HISTORY_ORDER_POS.name]],
        target_order_pos=np.asarray(cols[F.TARGET_ORDER_POS.name], dtype=np.int64),
        target_event_types=[_decode(t) for t in cols[F.TARGET_EVENT_TYPE.name]],
        history_event_types=[_decode(e) for e in cols[F.HISTORY_EVENT_TYPE.name]],
    )


@dataclass(frozen=True)
class UserHistory:
    """A user's latest known history: items oldest first, the order position and the behaviour of each."""

    items: list[str]
    order_pos: list[int]
    event_types: list[str]


def latest_histories(examples_uri: str) -> dict[str, UserHistory]:
    """Each user's latest known history, over every split.

    The history of the user's most recent sequence row (largest ``target_timestamp``;
    on a tie the first row read wins) with that row's targets appended at the row's
    ``target_order_pos`` with their behaviours. Keys are sorted by user id.
    """
    latest: dict[str, tuple[int, UserHistory]] = {}
    for split in F.SEQUENCE_SPLITS:
        rows = read_rows(examples_uri, split)
        for u, h, p, e, t, tp, te, ts in zip(rows.user_ids, rows.histories, rows.history_order_pos,
                                             rows.history_event_types, rows.targets, rows.target_order_pos.tolist(),
                                             rows.target_event_types, rows.target_timestamps.tolist(), strict=True):
            if u not in latest or ts > latest[u][0]:
                latest[u] = (ts, UserHistory(h + t, p + [int(tp)] * len(t), e + te))
    return {u: latest[u][1] for u in sorted(latest)}


def last_timestamp(examples_uri: str) -> int:
    """The latest target timestamp over every split (epoch seconds): "now" for requests replaying this data."""
    return max([int(read_rows(examples_uri, split).target_timestamps.max(initial=0)) for split in F.SEQUENCE_SPLITS])


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


def training_item_counts(examples_uri: str) -> dict[str, int]:
    """Training-split interactions per item (the popularity every stage reads: sources, features, tables)."""
    counts: dict[str, int] = {}
    for items in training_interactions(examples_uri).values():
        for i in items:
            counts[i] = counts.get(i, 0) + 1
    return counts


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
    import tensorflow as tf

    spec = F.feature_spec(F.CONTENT_FEATURES)
    ids, cats, blocks = [], [], []
    for batch in record_dataset(split_files(embeddings_uri, F.CATALOG)).batch(4096):
        parsed = tf.io.parse_example(batch, spec)
        ids += _decode(parsed[F.ITEM_ID.name].numpy().tolist())
        cats += _decode(parsed[F.CATEGORY.name].numpy().tolist())
        emb = parsed[F.EMBEDDING.name]  # varlen: one [B, D] block, never a python float per value (1M x 512)
        lengths = np.bincount(emb.indices[:, 0].numpy(), minlength=int(emb.dense_shape[0]))
        if len(lengths) and lengths.min() != lengths.max():
            raise ValueError(f"content embeddings of different lengths ({lengths.min()} to {lengths.max()}) in "
                             f"{embeddings_uri}; every item needs the same dimension")
        blocks.append(tf.sparse.to_dense(emb).numpy().astype(np.float32, copy=False))
    ids = np.array(ids, dtype=object)
    order = np.argsort(ids, kind="stable")
    dims = {b.shape[1] for b in blocks if len(b)}
    if len(dims) > 1:
        raise ValueError(f"content embeddings of different lengths {sorted(dims)} in {embeddings_uri}")
    vectors = np.concatenate(blocks) if blocks else np.zeros((0, 0), np.float32)
    return ContentRows(ids[order], np.array(cats, dtype=object)[order], vectors[order])


@dataclass(frozen=True)
class GraphEdges:
    """The GraphBuilder's edges (one per user, item, behaviour), sorted by (user, item, behaviour)."""

    user_ids: np.ndarray    # str [E]
    item_ids: np.ndarray    # str [E]
    behaviours: np.ndarray  # str [E]
    counts: np.ndarray      # int64 [E]
    recency: np.ndarray     # float32 [E]


def read_graph_edges(graph_uri: str) -> GraphEdges:
    cols = read_examples(split_files(graph_uri, F.EDGES), F.feature_spec(F.EDGE_FEATURES))
    u = np.array(_decode(cols[F.USER_ID.name]), dtype=object)
    i = np.array(_decode(cols[F.ITEM_ID.name]), dtype=object)
    b = np.array(_decode(cols[F.BEHAVIOUR.name]), dtype=object)
    order = np.lexsort((b, i, u))
    return GraphEdges(u[order], i[order], b[order], np.asarray(cols[F.EDGE_COUNT.name], np.int64)[order],
                      np.asarray(cols[F.EDGE_RECENCY.name], np.float32)[order])


def read_item_neighbours(graph_uri: str) -> dict[str, tuple[list[str], list[float]]]:
    """item → (neighbours best first, UltraGCN omega weights)."""
    cols = read_examples(split_files(graph_uri, F.ITEM_NEIGHBOURS), F.feature_spec(F.ITEM_NEIGHBOUR_FEATURES))
    return {item: (_decode(n), np.asarray(w, np.float32).tolist()) for item, n, w in zip(
        _decode(cols[F.ITEM_ID.name]), cols[F.NEIGHBOUR_ITEM_ID.name], cols[F.NEIGHBOUR_WEIGHT.name], strict=True)}
