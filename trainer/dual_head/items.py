"""Item blocks: how items enter the encoder, how the retrieval head scores them, and its loss.

A ``DualHeadModel`` holds one item block, chosen once from ``config.variant``
(``ITEM_BLOCKS``); nothing else in the model depends on the variant.

* ``SemanticIdItems`` (``"dual_head"``): an item's encoder input is the sum of its
  Semantic ID code embeddings and a projection of its content embedding; its
  retrieval vector is the mapping network over the content embedding; both plus
  a free ID residual for items seen in training. User and item vectors are
  L2-normalised; the loss is multi-positive InfoNCE over the batch's anchors
  (logQ-corrected), hard negatives and every row's other positives
  (``retrieval_candidates``), and the candidates are what the distillation ranks.
* ``FreeIdItems`` (``"sasrec"``): one free ID embedding per item, used both as the
  encoder input and as the item vector; raw dot products; full softmax over the
  catalogue; no Semantic ID or content weights at all.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from trainer.base import frozen_table
from trainer.constrained_beam import CodeTrie, code_trie, level_sizes
from trainer.dual_head.config import DualHeadConfig
from trainer.dual_head.data import ItemSpace
from trainer.dual_head.losses import multi_positive_infonce


@dataclass(frozen=True)
class ItemTables:
    """Constant per-item tables over N + 2 rows (catalogue, OOV, PAD), shared by the model and its item block.

    codes int32 [N+2, T]; content float32 [N+2, Dc] (L2-normalised rows, zero for OOV/PAD);
    known float32 [N+2] (1 = seen in training: has an ID residual); trie: the catalogue's Semantic IDs as a
    ``CodeTrie`` of frozen tables, for the generative head's beam search (``None`` without one).

    They are non-trainable variables (``trainer.base.frozen_table``: out of ``saved_model.pb``, which stops at
    2 GB; content alone is items x 213 floats on Instacart), held in this dataclass, which Keras does not track:
    they are not model weights, so checkpoints and ``get_weights`` leave them out (they are rebuilt from the
    item space). A SavedModel serving the model must track ``variables()`` itself (``export.dual_head``).
    """

    num_items: int
    codes: tf.Tensor
    content: tf.Tensor
    known: tf.Tensor
    trie: CodeTrie | None = None

    @classmethod
    def from_space(cls, items: ItemSpace, trie: bool = False) -> "ItemTables":
        n_rows = items.num_items + 2  # + OOV + PAD
        codes = np.zeros((n_rows, items.codes.shape[1]), np.int32)
        codes[: items.num_items] = items.codes
        content = np.zeros((n_rows, items.content.shape[1]), np.float32)
        norms = np.linalg.norm(items.content, axis=1, keepdims=True)
        content[: items.num_items] = items.content / np.maximum(norms, 1e-8)
        known = np.zeros(n_rows, np.float32)
        known[: items.num_items] = (items.train_count > 0).astype(np.float32)
        code_tables = None
        if trie:
            arrays = code_trie(items.codes, level_sizes(items.codes))
            code_tables = CodeTrie(frozen_table(arrays.order), frozen_table(arrays.keys),
                                   frozen_table(arrays.children), arrays.sizes)
        return cls(items.num_items, frozen_table(codes), frozen_table(content), frozen_table(known), code_tables)

    def variables(self) -> tuple:
        tables = (self.codes, self.content, self.known)
        return tables if self.trie is None else tables + (self.trie.order, self.trie.keys, self.trie.children)

    @property
    def rows(self) -> int:
        return self.num_items + 2


class Candidates(NamedTuple):
    """What the retrieval loss scored: items [C], student scores raw [B, C] (before the logQ
    correction), valid bool [B, C] (real catalogue items)."""

    items: tf.Tensor
    raw: tf.Tensor
    valid: tf.Tensor


class ItemBlock(tf.keras.layers.Layer):
    """Interface of an item block (see the module docstring); its methods are called directly."""

    variant = ""

    def __init__(self, tables: ItemTables, sizes: tuple, config: DualHeadConfig, **kwargs):
        super().__init__(**kwargs)
        self.tables, self.sizes, self.config = tables, tuple(sizes), config

    def encoder_input(self, items, training=False):
        """Encoder input of items (any shape of indices) → [..., D]."""
        raise NotImplementedError

    def vectors(self, items, training=False):
        """Retrieval-head item vectors of catalogue indices [M] → [M, D]."""
        raise NotImplementedError

    def user(self, u):
        """The retrieval head's user vector from the user MLP's output [B, D]."""
        raise NotImplementedError

    def map_content(self, content):
        """Content embeddings [M, Dc] → item vectors [M, D] (cold start)."""
        raise NotImplementedError(f"the {self.variant!r} item block has no content path")

    def retrieval_loss(self, user, batch: dict, training=False) -> tuple[tf.Tensor, Candidates | None]:
        """(scalar loss, the candidates it scored or None) for user vectors [B, D] and a sampler batch."""
        raise NotImplementedError

    def build_variables(self) -> None:
        """Creates every variable (one call of each path)."""
        self.vectors(tf.constant([0]))

    def input_variables(self) -> list:
        """Trainable variables of the encoder-input path (shared ones included)."""
        raise NotImplementedError

    def head_variables(self) -> list:
        """Trainable variables only the retrieval head's item side uses."""
        raise NotImplementedError

    def get_config(self) -> dict:  # rebuilt by the model from (items, config), not on its own
        return {**super().get_config(), "variant": self.variant}


#: catalogue rows (N + 2) up to which ``SemanticIdItems.encoder_input`` projects the whole content table per call,
#: then gathers: a batch of 256 histories × 50 holds more items than MovieLens' 1,684 rows or Instacart's 14,192.
#: Above it, only the items asked for are projected: at 1M items the whole-table projection (and its gradient)
#: ran once per batch, 20x a batch's 51,200 items, in training, export and evaluation alike (issue 14).
WHOLE_TABLE_ROWS = 65_536


class SemanticIdItems(ItemBlock):
    variant = "dual_head"

    def __init__(self, tables: ItemTables, sizes: tuple, config: DualHeadConfig, **kwargs):
        super().__init__(tables, sizes, config, **kwargs)
        d = config.d_model
        self.id_embedding = (tf.keras.layers.Embedding(
            tables.rows, d, embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=0.02))
            if config.id_residual else None)
        self.code_embeddings = [tf.keras.layers.Embedding(k, d) for k in self.sizes]
        self.content_projection = tf.keras.layers.Dense(d)
        self.mapping = tf.keras.Sequential([
            tf.keras.layers.Dense(2 * d, activation="gelu"), tf.keras.layers.Dense(2 * d, activation="gelu"),
            tf.keras.layers.Dense(d)])

    def input_variables(self) -> list:
        layers = ([self.id_embedding] if self.id_embedding is not None else []) + self.code_embeddings
        return [v for layer in layers + [self.content_projection] for v in layer.trainable_variables]

    def head_variables(self) -> list:
        return list(self.mapping.trainable_variables)

    def _id_residual(self, items, training):
        """ID embedding of known items [.., D]; dropped for a random share of items while training."""
        keep = tf.gather(self.tables.known, items)
        if training and self.config.id_dropout > 0:
            keep = keep * tf.cast(tf.random.uniform(tf.shape(keep)) >= self.config.id_dropout, tf.float32)
        return self.id_embedding(items) * keep[..., None]

    def encoder_input(self, items, training=False):
        if self.tables.rows <= WHOLE_TABLE_ROWS:  # project the whole (small) content table once per call
            table = self.content_projection(self.tables.content)                    # [N+2, D]
            for t, emb in enumerate(self.code_embeddings):
                table += emb(self.tables.codes[:, t])
            x = tf.gather(table, items)
        else:  # only the items asked for
            x = self.content_projection(tf.gather(self.tables.content, items))      # [..., D]
            codes = tf.gather(self.tables.codes, items)                             # [..., T]
            for t, emb in enumerate(self.code_embeddings):
                x += emb(codes[..., t])
        if self.id_embedding is not None:
            x += self._id_residual(items, training)
        return x

    def map_content(self, content):
        """Mapping network: content embeddings [M, Dc] (any scale) → item vectors [M, D] without ID residual."""
        content = tf.math.l2_normalize(content, axis=-1)
        return tf.math.l2_normalize(self.mapping(content), axis=-1)

    def vectors(self, items, training=False):
        """Mapping network(content) + ID residual, L2-normalised."""
        x = self.mapping(tf.gather(self.tables.content, items))
        if self.id_embedding is not None:
            x += self._id_residual(items, training)
        return tf.math.l2_normalize(x, axis=-1)

    def user(self, u):
        return tf.math.l2_normalize(u, axis=-1)

    def retrieval_loss(self, user, batch: dict, training=False):
        """Multi-positive InfoNCE over the candidates of ``retrieval_candidates`` (logQ-corrected)."""
        cfg = self.config
        cands, correction, is_pos, valid = retrieval_candidates(batch, self.tables.num_items, cfg.positive_candidates)
        raw = tf.matmul(user, self.vectors(cands, training=training), transpose_b=True) / cfg.temperature
        logits = raw - correction[None, :] if cfg.logq_correction else raw
        return multi_positive_infonce(logits, is_pos, valid), Candidates(cands, raw, valid)


def retrieval_candidates(batch: dict, num_items: int, positive_candidates: bool = True):
    """The candidate set of a ``PairSampler`` batch: (items [C], logQ correction [C], is_positive [B, C], valid [B, C]).

    Columns: the B anchors (correction ``anchor_log_q``: the probability per draw that the item is drawn as a
    target), the B·H hard negatives (no correction), then, with ``positive_candidates``, every other positive
    of every row that is not already an anchor or hard column (first occurrence only), corrected by its
    ``positive_log_q`` (the expected times per draw that the item comes in as a co-target). So each positive
    of each row is scored: row b's positives are the columns whose item is in ``positives[b]`` and all of them
    are present; a positive column of another row is an ordinary (logQ-corrected) negative for row b. Without
    ``positive_candidates`` (the old loss) a non-anchor positive counts only when it happens to be another
    row's anchor or hard column. Columns that are not catalogue items (PAD) are invalid.
    """
    anchor, hard, positives = batch["anchor"], tf.reshape(batch["hard"], [-1]), batch["positives"]
    cands = tf.concat([anchor, hard], axis=0)
    correction = tf.concat([batch["anchor_log_q"], tf.zeros(tf.shape(hard), tf.float32)], axis=0)
    if positive_candidates:
        others = positives[:, 1:]                                                     # slot 0 is the anchor
        real = others >= 0
        extra = tf.boolean_mask(others, real)                                         # [E] row-major
        extra_q = tf.boolean_mask(batch["positive_log_q"][:, 1:], real)
        uniq, idx = tf.unique(extra)
        first = tf.math.unsorted_segment_min(tf.range(tf.size(extra)), idx, tf.size(uniq))
        keep = tf.logical_and(tf.equal(tf.gather(first, idx), tf.range(tf.size(extra))),
                              tf.logical_not(tf.reduce_any(tf.equal(extra[:, None], cands[None, :]), axis=1)))
        cands = tf.concat([cands, tf.boolean_mask(extra, keep)], axis=0)
        correction = tf.concat([correction, tf.boolean_mask(extra_q, keep)], axis=0)
    is_pos = tf.reduce_any(tf.equal(cands[None, :, None], positives[:, None, :]), axis=2)
    valid = tf.broadcast_to((cands < num_items)[None, :], tf.shape(is_pos))
    return cands, correction, is_pos, valid


class FreeIdItems(ItemBlock):
    variant = "sasrec"

    def __init__(self, tables: ItemTables, sizes: tuple, config: DualHeadConfig, **kwargs):
        super().__init__(tables, sizes, config, **kwargs)
        self.id_embedding = tf.keras.layers.Embedding(
            tables.rows, config.d_model, embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=0.02))

    def input_variables(self) -> list:
        return list(self.id_embedding.trainable_variables)

    def head_variables(self) -> list:
        return []

    def encoder_input(self, items, training=False):
        return self.id_embedding(items)

    def vectors(self, items, training=False):
        return self.id_embedding(items)

    def user(self, u):
        return u

    def retrieval_loss(self, user, batch: dict, training=False):
        """Full softmax over the catalogue, the anchor being the label."""
        logits = tf.matmul(user, self.id_embedding(tf.range(self.tables.num_items)), transpose_b=True)  # [B, N]
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(batch["anchor"], logits)), None


ITEM_BLOCKS = {cls.variant: cls for cls in (SemanticIdItems, FreeIdItems)}


def item_block_for(tables: ItemTables, sizes: tuple, config: DualHeadConfig) -> ItemBlock:
    """The item block of ``config.variant``."""
    return ITEM_BLOCKS[config.variant](tables, sizes, config)
