"""``DualHeadModel``: the history encoder, the retrieval head's user side, an item block and the generative head.

Shapes: B batch, L history length, T code positions, N items, D model width.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import tensorflow as tf

from trainer.constrained_beam import level_sizes
from trainer.dual_head.config import EVENT_TYPES, DualHeadConfig
from trainer.dual_head.data import ItemSpace
from trainer.dual_head.generative import GenerativeHead
from trainer.dual_head.items import ITEM_BLOCKS, ItemBlock, ItemTables
from trainer.dual_head.layers import TransformerBlock


class DualHeadModel(tf.keras.Model):
    """Encoder + retrieval head + generative head over one item space (see the package docstring).

    ``item_block`` is the variant: how items enter the encoder and how the retrieval
    head scores them, an ``ItemBlock`` class or its name in ``items.ITEM_BLOCKS``
    (default: the block of ``config.variant``). It is built once, over the model's
    item tables; nothing else in the model depends on the variant.
    """

    def __init__(self, items: ItemSpace, config: DualHeadConfig, num_events: int = len(EVENT_TYPES),
                 item_block: str | type[ItemBlock] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.item_space = items
        self.num_events = num_events
        self.num_items = items.num_items
        self.sizes = level_sizes(items.codes)
        self.content_dim = items.content.shape[1]
        tables = ItemTables.from_space(items, trie=config.has_generative_head)
        self.item_tables = tables  # not tracked: not weights (see ItemTables)
        d = config.d_model
        block = ITEM_BLOCKS[item_block or config.variant] if not isinstance(item_block, type) else item_block
        self.item_block: ItemBlock = block(tables, self.sizes, config)
        self.order_embedding = tf.keras.layers.Embedding(config.max_orders, d)
        self.event_embedding = tf.keras.layers.Embedding(num_events, d)
        self.input_norm = tf.keras.layers.LayerNormalization(epsilon=1e-6)
        self.input_drop = tf.keras.layers.Dropout(config.dropout)
        self.encoder = [TransformerBlock(d, config.num_heads, config.ff_dim, config.dropout)
                        for _ in range(config.encoder_layers)]
        self.encoder_norm = tf.keras.layers.LayerNormalization(epsilon=1e-6)
        self.user_mlp = tf.keras.Sequential([tf.keras.layers.Dense(2 * d, activation="gelu"), tf.keras.layers.Dense(d)])
        self.generative = config.has_generative_head
        self.generative_head = (GenerativeHead(tables, items.num_items, self.sizes, config)
                                if self.generative else None)

    @property
    def codes(self):
        return self.item_tables.codes

    @property
    def content(self):
        return self.item_tables.content

    @property
    def known(self):
        return self.item_tables.known

    # -- Keras serialisation ------------------------------------------------------------
    def get_config(self) -> dict:
        return {"items": self.item_space.to_config(), "config": asdict(self.config), "num_events": self.num_events,
                "item_block": self.item_block.variant}

    @classmethod
    def from_config(cls, config: dict, custom_objects=None) -> "DualHeadModel":
        if config["item_block"] not in ITEM_BLOCKS:
            raise ValueError(f"unknown item block {config['item_block']!r}: register it in items.ITEM_BLOCKS")
        return cls(ItemSpace.from_config(config["items"]), DualHeadConfig.from_dict(config["config"]),
                   num_events=config["num_events"], item_block=config["item_block"])

    def build_variables(self) -> None:
        """Creates every variable by one forward pass through both heads (before restoring weights)."""
        h = tf.constant([[0, self.num_items + 1]], tf.int32)
        states, mask = self.encode(h, tf.constant([[1, 0]], tf.int32), tf.constant([[0, 0]], tf.int32))
        self.user_vector(states, mask)
        self.item_block.build_variables()
        if self.generative:
            self.generative_head.build_variables(states, mask)

    def variable_groups(self) -> dict[str, list]:
        """Trainable variables by part (built model): item_input, encoder, user_head, item_head, generative_head.

        Their concatenation is the training step's variable list. Its order fixes the float
        summation of the gradient's global norm (clipping), so it is kept as it was when the
        model was one module: a seed reproduces the measured numbers bit for bit.
        """
        encoder = [self.order_embedding, self.event_embedding, self.input_norm, *self.encoder, self.encoder_norm]
        groups = {"item_input": self.item_block.input_variables(),
                  "encoder": [v for layer in encoder for v in layer.trainable_variables],
                  "user_head": list(self.user_mlp.trainable_variables),
                  "item_head": self.item_block.head_variables(),
                  "generative_head": self.generative_head.ordered_variables() if self.generative else []}
        listed = [id(v) for group in groups.values() for v in group]
        known = set(listed)
        unlisted = [v.name for v in self.trainable_variables if id(v) not in known]
        if unlisted or len(listed) != len(set(listed)):
            raise RuntimeError(f"variable_groups must list every trainable variable once; unlisted: {unlisted}")
        return groups

    # -- items ----------------------------------------------------------------------
    def item_input(self, items, training=False):
        """Encoder input of items (any shape of indices) → [..., D]."""
        return self.item_block.encoder_input(items, training)

    def item_vectors(self, items, training=False):
        """Retrieval-head item vectors of catalogue indices [M] → [M, D]."""
        return self.item_block.vectors(items, training)

    def map_content(self, content):
        """Content embeddings [M, Dc] (any scale) → item vectors [M, D] without ID residual (cold start)."""
        return self.item_block.map_content(content)

    # -- encoder ---------------------------------------------------------------------
    def encode(self, history, order_rel, events, training=False):
        """[B, L] history, orders-before-target and behaviour → (states [B, L, D], mask [B, L])."""
        mask = history < self.num_items
        x = self.item_input(history, training) + self.order_embedding(order_rel) + self.event_embedding(events)
        x = self.input_drop(self.input_norm(x), training=training)
        attn = tf.logical_and(mask[:, None, :], tf.ones_like(mask)[:, :, None])  # attend to real items
        for block in self.encoder:
            x = block(x, attn, training=training)
        return self.encoder_norm(x), mask

    def user_vector(self, states, mask):
        """Retrieval-head user vector [B, D]: MLP of the latest item's state and the mean state."""
        m = tf.cast(mask, tf.float32)
        count = tf.reduce_sum(m, axis=1, keepdims=True)
        mean = tf.reduce_sum(states * m[..., None], axis=1) / tf.maximum(count, 1.0)
        last = tf.gather(states, tf.maximum(tf.cast(count[:, 0], tf.int32) - 1, 0), batch_dims=1)
        return self.item_block.user(self.user_mlp(tf.concat([last, mean], axis=1)))

    # -- generative head -------------------------------------------------------------
    def _head(self) -> GenerativeHead:
        if self.generative_head is None:
            raise ValueError("this model has no generative head (variant "
                             f"{self.config.variant!r}, generative_weight {self.config.generative_weight}, "
                             f"decoder_layers {self.config.decoder_layers})")
        return self.generative_head

    def memory(self, states, mask):
        """The generative head's context [B, M + R, D] (``GenerativeHead.memory``)."""
        return self._head().memory(states, mask)

    def decode(self, memory, prefix, training=False):
        """Next-code logits after each prefix length (``GenerativeHead.decode``)."""
        return self._head().decode(memory, prefix, training)

    def code_log_likelihood(self, memory, items, training=False):
        """log P(item | user) [B, C] of items [B, C] by teacher forcing (``GenerativeHead.code_log_likelihood``)."""
        return self._head().code_log_likelihood(memory, items, training)

    def beam_search(self, memory, allowed, beam_width: int):
        """Top allowed items [B, W] and log-likelihoods [B, W] (``GenerativeHead.beam_search``)."""
        return self._head().beam_search(memory, allowed, beam_width)
