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


def pad_histories(histories: list[np.ndarray], max_history: int, pad: int) -> np.ndarray:
    """Keeps the last ``max_history`` items of each history, right-padded with ``pad``."""
    out = np.full((len(histories), max_history), pad, dtype=np.int32)
    for i, h in enumerate(histories):
        h = np.asarray(h)[-max_history:]
        out[i, : len(h)] = h
    return out


def load_sequence_arrays(files: list[str], max_history: int, pad: int) -> SequenceArrays:
    """Reads transformed sequence rows and flattens their targets."""
    cols = read_examples(files, transformed_spec())
    hist_key = F.transformed_name(F.HISTORY_ITEM_ID.name)
    tgt_key = F.transformed_name(F.TARGET_ITEM_ID.name)
    cat_key = F.transformed_name(F.TARGET_CATEGORY.name)
    n_targets = np.array([len(t) for t in cols[tgt_key]], dtype=np.int64)
    row = np.repeat(np.arange(len(n_targets), dtype=np.int32), n_targets)
    histories = pad_histories(cols[hist_key], max_history, pad)

    def flat(key: str, dtype) -> np.ndarray:
        return np.concatenate(cols[key]).astype(dtype) if len(row) else np.zeros(0, dtype)

    return SequenceArrays(
        history=histories[row],
        target=flat(tgt_key, np.int32),
        target_category=flat(cat_key, np.int32),
        target_weight=flat(F.TARGET_WEIGHT, np.float32),
        target_popularity=flat(F.TARGET_POPULARITY, np.float32),
        row=row,
    )
