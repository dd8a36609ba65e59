"""The served ``item_encoder``: raw item fields → content embedding → Semantic ID, all in the graph.

A brand-new item gets its Semantic ID from the model server alone:
``encode_text`` joins the text fields exactly as the pipeline does
(``trainer.text_encoder.item_text``), embeds them with the multilingual
encoder, quantises with the RQ-VAE and appends the disambiguation code.

Disambiguation of a new item: the number of catalogue items that already hold
its L-code tuple (so it takes the next free slot, TIGER-style). Known items are
looked up with ``lookup`` and keep the ID they were given in the pipeline.

Signatures:

* ``encode_text``: ``title``, ``description``, ``category``, ``brand`` string [B]
  → ``embedding`` float [B, D], ``semantic_id`` int32 [B, L+1] (text datasets only);
* ``encode_embedding``: ``embedding`` float [B, D] → ``semantic_id`` int32 [B, L+1];
* ``lookup``: ``item_id`` string [B] → ``semantic_id`` int32 [B, L+1] (-1 row for unknown items).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from recsys import names as N

SEPARATOR = "-"


def tuple_keys(codes: tf.Tensor) -> tf.Tensor:
    """int codes [B, L] → string keys [B] like "12-0-255"."""
    return tf.strings.reduce_join(tf.strings.as_string(codes), axis=1, separator=SEPARATOR)


class ItemEncoderModule(tf.Module):
    """Wraps an embedding→codes function, an optional text encoder and the catalogue's ID table."""

    def __init__(self, codes_fn: Callable[[tf.Tensor], tf.Tensor], embedding_dim: int, item_ids: np.ndarray,
                 semantic_ids: np.ndarray, text_encoder=None, text_fn: Callable | None = None,
                 trackables: dict | None = None):
        super().__init__()
        if len(item_ids) != len(semantic_ids):
            raise ValueError(f"{len(item_ids)} item ids but {len(semantic_ids)} semantic ids")
        self._codes_fn = codes_fn
        self.embedding_dim = embedding_dim
        self.text_encoder = text_encoder
        self._text_fn = text_fn
        for name, obj in (trackables or {}).items():
            setattr(self, name, obj)  # keep the variables behind codes_fn / text_fn tracked
        levels = semantic_ids.shape[1] - 1
        keys = [SEPARATOR.join(str(int(c)) for c in row[:levels]) for row in semantic_ids]
        uniq, counts = np.unique(np.array(keys, dtype=object).astype(str), return_counts=True)
        self.tuple_counts = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(uniq.tolist()), tf.constant(counts, tf.int64)), 0)
        self.item_rows = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant([str(i) for i in item_ids]),
                                                tf.range(len(item_ids), dtype=tf.int64)), -1)
        self.semantic_ids = tf.constant(semantic_ids.astype(np.int32))
        self.levels = levels
        if text_encoder is not None:
            # only a text-trained encoder gets the text signature (saving traces every tf.function)
            self.encode_text = tf.function(self._encode_text, input_signature=[
                tf.TensorSpec([None], tf.string, name=name) for name in N.ITEM_TEXT_FIELDS])

    def _semantic_id(self, embedding: tf.Tensor) -> tf.Tensor:
        codes = tf.cast(self._codes_fn(embedding), tf.int32)                  # [B, L]
        extra = tf.cast(self.tuple_counts.lookup(tuple_keys(codes)), tf.int32)  # [B]
        return tf.concat([codes, extra[:, None]], axis=1)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name=N.EMBEDDING)])
    def encode_embedding(self, embedding):
        return {N.SEMANTIC_ID: self._semantic_id(embedding)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=N.ITEM_ID)])
    def lookup(self, item_id):
        row = self.item_rows.lookup(item_id)
        found = tf.gather(self.semantic_ids, tf.maximum(row, 0))
        return {N.SEMANTIC_ID: tf.where((row >= 0)[:, None], found, -tf.ones_like(found))}

    def _encode_text(self, title, description, category, brand):
        embedding = self.text_encoder(self._text_fn(title, description, category, brand))
        return {N.EMBEDDING: embedding, N.SEMANTIC_ID: self._semantic_id(embedding)}

    def signatures(self) -> dict:
        sigs = {N.ENCODE_EMBEDDING: self.encode_embedding, N.LOOKUP: self.lookup}
        if self.text_encoder is not None:
            sigs[N.ENCODE_TEXT] = self.encode_text
            sigs[N.SERVING_DEFAULT] = self.encode_text
        else:
            sigs[N.SERVING_DEFAULT] = self.encode_embedding
        return sigs
