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


def record_dataset(files: list[str], users: frozenset[str] | None = None, key: str = F.USER_ID.name,
                   rows: np.ndarray | None = None):
    """The gzip TFRecords of ``files``; with ``users``, only the records whose ``key`` (one string) is one of them
    (filtered inside tf.data: the others are never parsed beyond that feature); with ``rows``, only the records at
    those positions (0-based, in file order over ``files``; never parsed otherwise)."""
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if rows is not None:
        rows = np.asarray(rows, np.int64)
        if not len(rows):
            return ds.take(0)
        if rows.min() < 0:
            raise ValueError(f"record positions must be >= 0; got {int(rows.min())}")
        keep = np.zeros(int(rows.max()) + 1, bool)
        keep[rows] = True
        mask, last = tf.constant(keep), len(keep) - 1
        ds = ds.take(len(keep)).enumerate().filter(lambda i, _: tf.gather(mask, tf.minimum(i, last))).map(
            lambda _, record: record)
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
                  users: frozenset[str] | None = None, rows: np.ndarray | None = None) -> dict[str, list]:
    """All examples of ``files`` (or those of ``users``, or at positions ``rows``: ``record_dataset``) as
    python/numpy columns (dense → ndarray, varlen → list of arrays)."""
    import tensorflow as tf

    ds = record_dataset(files, users, rows=rows).batch(batch_size)
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


def read_rows(examples_uri: str, split: str, rows: np.ndarray | None = None) -> SequenceRows:
    """Every row of ``split`` (or only those at positions ``rows``, in file order: ``record_dataset``)."""
    spec = F.feature_spec((F.USER_ID, F.HISTORY_ITEM_ID, F.HISTORY_ORDER_POS, F.HISTORY_EVENT_TYPE, F.TARGET_ITEM_ID,
                           F.TARGET_TIMESTAMP, F.TARGET_ORDER_POS, F.TARGET_EVENT_TYPE))
    cols = read_examples(split_files(examples_uri, split), spec, rows=rows)
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


def row_keys(examples_uri: str, split: str, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """``(user ids, target timestamps)`` of every row of ``split`` in file order, only those two features parsed:
    user ids as fixed-width bytes [R], timestamps int64 [R] (what picks rows before any history is read)."""
    import tensorflow as tf

    spec = F.feature_spec((F.USER_ID, F.TARGET_TIMESTAMP))
    users, stamps = [np.zeros(0, "S1")], [np.zeros(0, np.int64)]
    for batch in record_dataset(split_files(examples_uri, split)).batch(batch_size):
        parsed = tf.io.parse_example(batch, spec)
        users.append(parsed[F.USER_ID.name].numpy().astype(bytes))
        stamps.append(parsed[F.TARGET_TIMESTAMP.name].numpy().astype(np.int64))
    return np.concatenate(users), np.concatenate(stamps)


def _first_per_user(users: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Positions, one per distinct user, of each user's first row in ``order`` (a permutation of the rows)."""
    _, first = np.unique(users[order], return_index=True)  # the first occurrence of each user in ``order``
    return order[first]


def latest_histories(examples_uri: str, users: frozenset[str] | None = None) -> dict[str, UserHistory]:
    """Each user's latest known history, over every split (only ``users``' when given).

    The history of the user's most recent sequence row (largest ``target_timestamp``;
    on a tie the first row read wins, splits in ``F.SEQUENCE_SPLITS`` order) with that row's targets appended at
    the row's ``target_order_pos`` with their behaviours. Keys are sorted by user id.

    Two passes: the user and timestamp of every row pick each user's row, then only those rows are read whole
    (reading every row's history as Python lists took over 15 GB at 10M events; issue 14).
    """
    keys = [row_keys(examples_uri, split) for split in F.SEQUENCE_SPLITS]
    split_of = np.concatenate([np.full(len(u), i, np.int64) for i, (u, _) in enumerate(keys)])
    row_of = np.concatenate([np.arange(len(u), dtype=np.int64) for u, _ in keys])
    all_users = np.concatenate([u for u, _ in keys]) if keys else np.zeros(0, "S1")
    stamps = np.concatenate([t for _, t in keys]) if keys else np.zeros(0, np.int64)
    order = np.lexsort((np.arange(len(stamps)), -stamps))  # latest first; on a tie, the first row read
    chosen = _first_per_user(all_users, order)
    if users is not None:
        wanted = np.array(sorted(u.encode("utf-8") for u in users), dtype=bytes)
        chosen = chosen[np.isin(all_users[chosen], wanted)]
    latest: dict[str, UserHistory] = {}
    for i, split in enumerate(F.SEQUENCE_SPLITS):
        picked = np.sort(row_of[chosen[split_of[chosen] == i]])
        if not len(picked):
            continue
        rows = read_rows(examples_uri, split, rows=picked)
        for u, h, p, e, t, tp, te in zip(rows.user_ids, rows.histories, rows.history_order_pos,
                                         rows.history_event_types, rows.targets, rows.target_order_pos.tolist(),
                                         rows.target_event_types, strict=True):
            latest[u] = UserHistory(h + t, p + [int(tp)] * len(t), e + te)
    return {u: latest[u] for u in sorted(latest)}


def last_timestamp(examples_uri: str) -> int:
    """The latest target timestamp over every split (epoch seconds): "now" for requests replaying this data."""
    return max([int(row_keys(examples_uri, split)[1].max(initial=0)) for split in F.SEQUENCE_SPLITS])


def _targets(files: list[str], batch_size: int = 4096) -> tuple[list[str], np.ndarray]:
    """Every row's target ids, flat in file order, and the row offsets into them [R + 1]."""
    import tensorflow as tf

    spec = F.feature_spec((F.TARGET_ITEM_ID,))
    flat: list[str] = []
    lengths = [np.zeros(0, np.int64)]
    for batch in record_dataset(files).batch(batch_size):
        ids = tf.io.parse_example(batch, spec)[F.TARGET_ITEM_ID.name]
        flat += _decode(ids.values.numpy().tolist())
        lengths.append(np.bincount(ids.indices[:, 0].numpy(), minlength=int(ids.dense_shape[0])))
    return flat, np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).astype(np.int64)


def training_interactions(examples_uri: str) -> dict[str, list[str]]:
    """Each user's training-split interactions in time order (first unit + every training target); users in the
    order of their earliest row.

    Only each user's earliest row is read whole (its history is the user's first unit); of the others, the user,
    timestamp and targets (issue 14: every row's history as Python lists does not fit at 10M events)."""
    users, stamps = row_keys(examples_uri, F.TRAIN)
    order = np.argsort(stamps, kind="stable")
    distinct, code = np.unique(users, return_inverse=True)
    _, seen = np.unique(code[order], return_index=True)
    first = order[np.sort(seen)]  # each user's earliest row, users in the order of those rows
    earliest = read_rows(examples_uri, F.TRAIN, rows=np.sort(first))
    units = dict(zip(earliest.user_ids, earliest.histories, strict=True))
    names = _decode(distinct.tolist())
    out = [list(units[names[c]]) for c in range(len(names))]
    flat, offsets = _targets(split_files(examples_uri, F.TRAIN))
    for i, c in zip(order.tolist(), code[order].tolist()):
        out[c].extend(flat[offsets[i]:offsets[i + 1]])
    return {names[c]: out[c] for c in code[first].tolist()}


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
