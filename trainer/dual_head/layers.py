"""Keras building blocks shared by the encoder and the generative head's decoder."""
from __future__ import annotations

import tensorflow as tf


class TransformerBlock(tf.keras.layers.Layer):
    """Pre-norm self-attention + feed-forward block. x [B, S, D], mask bool [B, S, S] (True = attend)."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.num_heads, self.ff_dim, self.dropout = d_model, num_heads, ff_dim, dropout
        self.attention = tf.keras.layers.MultiHeadAttention(num_heads, d_model // num_heads, dropout=dropout)
        self.norm1 = tf.keras.layers.LayerNormalization(epsilon=1e-6)
        self.norm2 = tf.keras.layers.LayerNormalization(epsilon=1e-6)
        self.ff = tf.keras.Sequential([tf.keras.layers.Dense(ff_dim, activation="gelu"),
                                       tf.keras.layers.Dense(d_model)])
        self.drop = tf.keras.layers.Dropout(dropout)

    def call(self, x, mask, training=False):
        h = self.norm1(x)
        x = x + self.drop(self.attention(h, h, attention_mask=mask, training=training), training=training)
        return x + self.drop(self.ff(self.norm2(x)), training=training)

    def get_config(self) -> dict:
        return {**super().get_config(), "d_model": self.d_model, "num_heads": self.num_heads,
                "ff_dim": self.ff_dim, "dropout": self.dropout}
