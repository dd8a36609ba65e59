"""Model inputs: the catalogue-aligned item space and the sequence rows of one split.

Index conventions: catalogue items 0..N-1 (catalogue order), OOV = N, PAD = N+1;
OOV and PAD are masked out of histories.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from recsys import features as F
from recsys import names
from trainer import base
from trainer.dual_head.config import EVENT_TYPES, DualHeadConfig
from transform import fileio


@dataclass(frozen=True)
class ItemSpace:
    """Per-item inputs, aligned with the catalogue.

    item_ids str [N]; codes int32 [N, T] (Semantic IDs); content float32 [N, Dc];
    category int32 [N] (-1 = none); train_count float32 [N] (times a training target).
    """

    item_ids: np.ndarray
    codes: np.ndarray
    content: np.ndarray
    category: np.ndarray
    train_count: np.ndarray

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @property
    def oov(self) -> int:
        return len(self.item_ids)

    @property
    def pad(self) -> int:
        return len(self.item_ids) + 1

    def positions(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids.tolist())}

    def to_config(self) -> dict:
        """JSON-serialisable form (plain lists); ``from_config`` gives back equal arrays."""
        return {"item_ids": [str(i) for i in self.item_ids.tolist()], "codes": np.asarray(self.codes).tolist(),
                "content": np.asarray(self.content).tolist(), "category": np.asarray(self.category).tolist(),
                "train_count": np.asarray(self.train_count).tolist()}

    @classmethod
    def from_config(cls, values: dict) -> "ItemSpace":
        n = len(values["item_ids"])
        return cls(np.array(values["item_ids"], dtype=object),
                   np.asarray(values["codes"], np.int32).reshape(n, -1),
                   np.asarray(values["content"], np.float32).reshape(n, -1),
                   np.asarray(values["category"], np.int32), np.asarray(values["train_count"], np.float32))


@dataclass(frozen=True)
class SequenceData:
    """Sequence rows of one split as model input.

    history int32 [R, L] (right-padded with PAD, oldest first); order_rel int32 [R, L]
    (orders before the target, ≥ 1; 0 at padding); events int32 [R, L];
    positives: R int arrays (catalogue indices of the targets, unknown ones dropped);
    full_history: R int arrays (the whole history, for exclusion); users: R str.
    """

    history: np.ndarray
    order_rel: np.ndarray
    events: np.ndarray
    positives: list
    full_history: list
    users: list

    def rows(self, keep) -> "SequenceData":
        """The rows ``keep`` (indices) of this split."""
        return SequenceData(self.history[keep], self.order_rel[keep], self.events[keep],
                            [self.positives[i] for i in keep], [self.full_history[i] for i in keep],
                            [self.users[i] for i in keep])


def sample_users(data: SequenceData, size: int, seed: int = 0) -> SequenceData:
    """``data``'s rows of ``size`` users drawn uniformly without replacement (``recsys.evaluation.metrics.
    sample_rows``: the ``size`` users of the smallest ``blake2b(seed:id)``, the draw of the evaluators'
    ``--eval-users`` and of ``GraphConfig.val_users``); ``data`` itself when ``size`` is 0 or not below its rows."""
    from recsys.evaluation.metrics import sample_rows

    keep = sample_rows(data.users, size, seed)
    return data if len(keep) == len(data.users) else data.rows(keep.tolist())


def relative_orders(order_pos: np.ndarray, target_pos: int, max_orders: int) -> np.ndarray:
    """Order positions → orders before the target, clipped to [1, max_orders - 1].

    Example: order_pos [0, 0, 1, 3], target 4, max_orders 64 → [4, 4, 3, 1].
    """
    rel = np.asarray(target_pos, np.int64) - np.asarray(order_pos, np.int64)
    return np.clip(rel, 1, max_orders - 1).astype(np.int32)


def _decode(values) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _lookup(keys, default: int):
    """A string → position table (``keys[i]`` → i; anything else → ``default``)."""
    import tensorflow as tf

    keys = [str(k) for k in keys] or ["\x00"]
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(keys, tf.string), tf.range(len(keys), dtype=tf.int64)), default_value=default)


def _split(values: np.ndarray, lengths: np.ndarray) -> list:
    """Flat ``values`` cut into rows of ``lengths`` (views, no copies)."""
    return np.split(values, np.cumsum(lengths)[:-1]) if len(lengths) else []


def load_sequences(examples_uri: str, split: str, items: ItemSpace, config: DualHeadConfig,
                   batch_size: int = 4096) -> SequenceData:
    """Raw sequence rows of ``split`` → ``SequenceData`` (last ``max_history`` items as model input).

    Batch by batch on flat arrays, ids mapped to positions by lookup tables: a Python object per history value
    of 9M training rows did not fit in memory (issue 14)."""
    spec = F.feature_spec((F.USER_ID, F.HISTORY_ITEM_ID, F.HISTORY_ORDER_POS, F.HISTORY_EVENT_TYPE,
                           F.TARGET_ITEM_ID, F.TARGET_ORDER_POS))
    item_pos, event_pos = _lookup(items.item_ids.tolist(), items.oov), _lookup(EVENT_TYPES, 0)
    width, n = config.max_history, items.num_items
    history, order_rel, events = [np.zeros((0, width), np.int32)], [np.zeros((0, width), np.int32)], [
        np.zeros((0, width), np.int32)]
    positives, full, users = [], [], []
    for parsed in base.parsed_batches(base.split_files(examples_uri, split), spec, batch_size):
        ids, lengths = base.sparse_rows(parsed[F.HISTORY_ITEM_ID.name])
        hist = item_pos.lookup(_strings(ids)).numpy()
        rows, cols, at = base.ragged_tail(lengths, width)
        block = np.full((len(lengths), width), items.pad, np.int32)
        block[rows, cols] = hist[at]
        history.append(block)
        if config.order_positions:
            opos = base.sparse_rows(parsed[F.HISTORY_ORDER_POS.name])[0][at]
            tpos = parsed[F.TARGET_ORDER_POS.name].numpy()[rows]
        else:  # SASRec: every item its own position, the target one past the history
            opos = at - np.repeat(np.cumsum(lengths) - lengths, np.minimum(lengths, width))
            tpos = lengths[rows]
        rel = np.zeros((len(lengths), width), np.int32)
        rel[rows, cols] = relative_orders(opos, tpos, config.max_orders)
        order_rel.append(rel)
        ev = np.zeros((len(lengths), width), np.int32)
        ev[rows, cols] = event_pos.lookup(_strings(
            base.sparse_rows(parsed[F.HISTORY_EVENT_TYPE.name])[0])).numpy()[at]
        events.append(ev)
        targets, t_len = base.sparse_rows(parsed[F.TARGET_ITEM_ID.name])
        t_pos = item_pos.lookup(_strings(targets)).numpy()
        t_row = np.repeat(np.arange(len(t_len)), t_len)
        known = t_pos < n
        keyed = np.unique(t_row[known] * (n + 1) + t_pos[known])  # each row's distinct targets, sorted
        positives += _split(keyed % (n + 1), np.bincount(keyed // (n + 1), minlength=len(t_len)))
        h_row = np.repeat(np.arange(len(lengths)), lengths)
        seen = hist < n
        full += _split(hist[seen], np.bincount(h_row[seen], minlength=len(lengths)))
        users += _decode(parsed[F.USER_ID.name].numpy().tolist())
    return SequenceData(np.concatenate(history), np.concatenate(order_rel), np.concatenate(events),
                        positives, full, users)


def _strings(values: np.ndarray):
    import tensorflow as tf

    return tf.constant(values, tf.string)


def load_item_space(examples_uri: str, semantic_ids_tsv: str, content_npz: str,
                    item_counts: dict[str, int]) -> ItemSpace:
    """Catalogue-aligned Semantic IDs, content embeddings, categories and training counts.

    Every catalogue item must have a Semantic ID and a content embedding (the
    content space is built over the same catalogue); a missing one is an error.
    """
    from transform import examples_io
    from trainer.semantic_ids import SemanticIdTable

    catalog = examples_io.read_catalog(examples_uri)
    table = SemanticIdTable.load(semantic_ids_tsv)
    z = fileio.load_npz(content_npz)
    content_ids = [str(x) for x in z["item_ids"].tolist()]
    vectors = z["vectors"].astype(np.float32)
    content_pos = {item: i for i, item in enumerate(content_ids)}
    missing = [i for i in catalog.item_ids.tolist() if i not in table or i not in content_pos]
    if missing:
        raise ValueError(f"{len(missing)} catalogue items have no Semantic ID or content embedding "
                         f"(first: {missing[:5]}); rebuild the content space for this catalogue.")
    ids = catalog.item_ids.tolist()
    codes = np.array([table.id_of(i) for i in ids], np.int32)
    content = vectors[[content_pos[i] for i in ids]]
    cats = {c: j for j, c in enumerate(sorted({c for c in catalog.categories.tolist() if c}))}
    category = np.array([cats.get(c, -1) for c in catalog.categories.tolist()], np.int32)
    counts = np.array([item_counts.get(i, 0) for i in ids], np.float32)
    return ItemSpace(catalog.item_ids, codes, content, category, counts)


def exclude_history_for(examples_uri: str) -> bool:
    """Leave-one-out data masks the user's history at evaluation; basket data does not."""
    return fileio.read_text(os.path.join(examples_uri, names.PROTOCOL_FILE)).strip() == names.LEAVE_ONE_OUT


def most_frequent_event(data: SequenceData, items: ItemSpace) -> str:
    """The behaviour type served requests are assumed to have when they do not say."""
    events = data.events[data.history < items.num_items]
    return EVENT_TYPES[int(np.bincount(events, minlength=len(EVENT_TYPES)).argmax())] if events.size else ""
