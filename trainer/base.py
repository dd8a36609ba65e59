"""Shared trainer plumbing: reading transformed sequence rows and Transform's vocabularies.

Model modules (``two_tower.py`` and later ones) only build models and call
these helpers; none of them parses examples or vocabulary files itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from recsys import features as F
from transform.examples_io import read_examples, split_files  # noqa: F401  (the trainers read through base)


@dataclass(frozen=True)
class Vocabularies:
    """Transform's vocabularies. Index ``len(x)`` is the OOV index of each."""

    items: tuple[str, ...]
    item_counts: dict[str, int]
    users: tuple[str, ...]
    categories: tuple[str, ...]

    @property
    def num_items(self) -> int:
        return len(self.items)

    @property
    def item_oov(self) -> int:
        return len(self.items)

    @property
    def item_pad(self) -> int:
        """Padding index for histories: one past OOV, masked out by the models."""
        return len(self.items) + 1


def config_from_dict(cls, values: dict | None, what: str):
    """A frozen config dataclass from a (possibly partial) dict; unknown keys are an error, not ignored."""
    from dataclasses import fields

    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"Unknown {what} hyperparameters {sorted(unknown)}; known: {sorted(known)}")
    return cls(**values)


def _read_vocab(path: str) -> tuple[str, ...]:
    with tf.io.gfile.GFile(path, "rb") as f:
        return tuple(line.rstrip(b"\n").decode("utf-8") for line in f)


def load_vocabularies(transform_output_dir: str) -> Vocabularies:
    """Reads the vocabularies written by ``transform.preprocessing.preprocessing_fn``."""
    import tensorflow_transform as tft

    tfo = tft.TFTransformOutput(transform_output_dir)
    counts = {}
    for line in _read_vocab(tfo.vocabulary_file_by_name(F.ITEM_FREQ_VOCAB)):
        count, _, item = line.partition(" ")
        counts[item] = int(count)
    return Vocabularies(
        items=_read_vocab(tfo.vocabulary_file_by_name(F.ITEM_VOCAB)),
        item_counts=counts,
        users=_read_vocab(tfo.vocabulary_file_by_name(F.USER_VOCAB)),
        categories=_read_vocab(tfo.vocabulary_file_by_name(F.CATEGORY_VOCAB)),
    )


@dataclass(frozen=True)
class SequenceArrays:
    """Transformed sequence rows flattened to one (history, target) pair per row.

    Attributes:
      history: int32 [N, max_history], right-padded with ``pad``.
      target: int32 [N] item index of the positive.
      target_category: int32 [N].
      target_weight: float32 [N], 1/sqrt(training popularity).
      target_popularity: float32 [N], training count of the target (0 if never a training target).
      row: int32 [N], the source row of each pair (rows with baskets give several pairs).
    """

    history: np.ndarray
    target: np.ndarray
    target_category: np.ndarray
    target_weight: np.ndarray
    target_popularity: np.ndarray
    row: np.ndarray


def transformed_spec() -> dict:
    var = tf.io.VarLenFeature
    return {
        F.transformed_name(F.HISTORY_ITEM_ID.name): var(tf.int64),
        F.transformed_name(F.TARGET_ITEM_ID.name): var(tf.int64),
        F.transformed_name(F.TARGET_CATEGORY.name): var(tf.int64),
        F.TARGET_WEIGHT: var(tf.float32),
        F.TARGET_POPULARITY: var(tf.int64),
    }


#: the name every ``frozen_table`` variable carries (``is_frozen_table``)
FROZEN_TABLE = "frozen_table"


def frozen_table(value, dtype=None) -> tf.Variable:
    """An array a model reads and never trains (catalogue and user tables), as a non-trainable variable.

    A ``tf.constant`` captured by a served function is written into ``saved_model.pb`` (once per function
    that captures it), and protocol buffers stop at 2 GB; a variable is written to the SavedModel's
    ``variables/`` files, which have no such limit. Tables that grow with the users or the items are held
    this way so that a SavedModel's graph does not grow with them (issue 14: 500,000 users' histories).
    """
    return tf.Variable(tf.constant(value, dtype), trainable=False, name=FROZEN_TABLE)


def is_frozen_table(variable) -> bool:
    return FROZEN_TABLE in variable.name


def ragged_tail(lengths: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each row's last ``width`` values go in a right-padded ``[R, width]`` matrix: ``(rows, columns,
    positions in the flat values)``, for flat values whose rows have ``lengths`` (concatenated in row order).

    Example: lengths [3, 1], width 2 → rows [0, 0, 1], columns [0, 1, 0], positions [1, 2, 3].
    """
    lengths = np.asarray(lengths, np.int64)
    n = np.minimum(lengths, width)
    rows = np.repeat(np.arange(len(n)), n)
    cols = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    return rows, cols, np.repeat(np.cumsum(lengths) - n, n) + cols


def tail_matrix(values: np.ndarray, lengths: np.ndarray, width: int, pad: int) -> np.ndarray:
    """int32 ``[R, width]``: each row's last ``width`` values (flat ``values``, rows of ``lengths``), oldest
    first, right-padded with ``pad``."""
    out = np.full((len(lengths), width), pad, dtype=np.int32)
    rows, cols, at = ragged_tail(lengths, width)
    out[rows, cols] = np.asarray(values)[at]
    return out


def pad_histories(histories: list[np.ndarray], max_history: int, pad: int) -> np.ndarray:
    """Keeps the last ``max_history`` items of each history, right-padded with ``pad``."""
    lengths = np.array([len(h) for h in histories], np.int64)
    values = np.concatenate([np.asarray(h, np.int64) for h in histories]) if len(histories) else np.zeros(0, np.int64)
    return tail_matrix(values, lengths, max_history, pad)


def parsed_batches(files: list[str], spec: dict, batch_size: int = 4096):
    """``tf.io.parse_example`` of ``files``' records, ``batch_size`` at a time, in file order."""
    from transform.examples_io import record_dataset

    for batch in record_dataset(files).batch(batch_size):
        yield tf.io.parse_example(batch, spec)


def sparse_rows(values: tf.SparseTensor) -> tuple[np.ndarray, np.ndarray]:
    """A parsed varlen feature [B, None] as its flat values and each row's length [B] (numpy)."""
    return values.values.numpy(), np.bincount(values.indices[:, 0].numpy(), minlength=int(values.dense_shape[0]))


def load_sequence_arrays(files: list[str], max_history: int, pad: int) -> SequenceArrays:
    """Reads transformed sequence rows and flattens their targets.

    Batch by batch on flat arrays (issue 14: a Python object per value of 9M rows' histories did not fit)."""
    hist_key = F.transformed_name(F.HISTORY_ITEM_ID.name)
    tgt_key = F.transformed_name(F.TARGET_ITEM_ID.name)
    cat_key = F.transformed_name(F.TARGET_CATEGORY.name)
    keys = (tgt_key, cat_key, F.TARGET_WEIGHT, F.TARGET_POPULARITY)
    histories, n_targets = [np.zeros((0, max_history), np.int32)], [np.zeros(0, np.int64)]
    flat: dict[str, list] = {k: [np.zeros(0)] for k in keys}
    for parsed in parsed_batches(files, transformed_spec()):
        histories.append(tail_matrix(*sparse_rows(parsed[hist_key]), max_history, pad))
        n_targets.append(sparse_rows(parsed[tgt_key])[1])
        for k in keys:
            flat[k].append(parsed[k].values.numpy())
    n_targets = np.concatenate(n_targets)
    row = np.repeat(np.arange(len(n_targets), dtype=np.int32), n_targets)
    histories = np.concatenate(histories)

    def values(key: str, dtype) -> np.ndarray:
        return np.concatenate(flat[key]).astype(dtype)

    return SequenceArrays(
        history=histories[row],
        target=values(tgt_key, np.int32),
        target_category=values(cat_key, np.int32),
        target_weight=values(F.TARGET_WEIGHT, np.float32),
        target_popularity=values(F.TARGET_POPULARITY, np.float32),
        row=row,
    )
