"""TF Transform ``preprocessing_fn``: vocabularies, popularity and sampling weights.

Analysed over the training split only (see the pipeline's ``SplitsConfig``), so
no popularity leaks from validation or test targets. Outputs:

* item / user / category indices (unseen ids → the single OOV index, which equals
  the vocabulary size, the convention the exported models repeat at serving);
* per target: its training popularity (count as a training target) and the
  sampling weight ``1 / sqrt(max(popularity, 1))`` that later models use to
  fight popularity bias;
* order positions passed through (order positional encoding input).
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from recsys import features as F


def _lookup_frequency(ids: tf.SparseTensor, freq_vocab_path) -> tf.SparseTensor:
    """Training count of every id in ``ids`` (0 when never a training target).

    The frequency vocabulary holds lines ``"<count> <item>"``. The table is built
    the way ``tft.apply_vocabulary`` builds its own, so it is initialised from the
    analyzer's deferred file path and exported with the transform graph.
    """
    from tensorflow_transform import tf_utils

    def construct_table(path):
        init = tf.lookup.TextFileInitializer(
            path, key_dtype=tf.string, key_index=1, value_dtype=tf.int64, value_index=0, delimiter=" ")
        return tf.lookup.StaticHashTable(init, default_value=0)

    counts, _ = tf_utils.construct_and_lookup_table(construct_table, freq_vocab_path, ids.values)
    return tf.SparseTensor(ids.indices, counts, ids.dense_shape)


def _apply(ids, vocab):
    return tft.apply_vocabulary(ids, vocab, num_oov_buckets=F.OOV_BUCKETS)


def preprocessing_fn(inputs: dict) -> dict:
    """Raw sequence rows → indices, popularity and weights (names from recsys.features)."""
    history = inputs[F.HISTORY_ITEM_ID.name]
    targets = inputs[F.TARGET_ITEM_ID.name]

    item_vocab = tft.vocabulary(tf.concat([history.values, targets.values], 0), vocab_filename=F.ITEM_VOCAB)
    freq_vocab = tft.vocabulary(targets.values, vocab_filename=F.ITEM_FREQ_VOCAB, store_frequency=True)
    popularity = _lookup_frequency(targets, freq_vocab)
    weight = tf.SparseTensor(
        popularity.indices,
        tf.math.rsqrt(tf.cast(tf.maximum(popularity.values, 1), tf.float32)),
        popularity.dense_shape)

    outputs = {
        F.transformed_name(F.USER_ID.name): tft.compute_and_apply_vocabulary(
            inputs[F.USER_ID.name], vocab_filename=F.USER_VOCAB, num_oov_buckets=F.OOV_BUCKETS),
        F.transformed_name(F.HISTORY_ITEM_ID.name): _apply(history, item_vocab),
        F.transformed_name(F.TARGET_ITEM_ID.name): _apply(targets, item_vocab),
        F.transformed_name(F.TARGET_CATEGORY.name): tft.compute_and_apply_vocabulary(
            inputs[F.TARGET_CATEGORY.name], vocab_filename=F.CATEGORY_VOCAB, num_oov_buckets=F.OOV_BUCKETS),
        F.TARGET_POPULARITY: popularity,
        F.TARGET_WEIGHT: weight,
    }
    for passthrough in (F.HISTORY_ORDER_POS, F.TARGET_ORDER_POS, F.TARGET_TIMESTAMP):
        outputs[F.transformed_name(passthrough.name)] = inputs[passthrough.name]
    return outputs
