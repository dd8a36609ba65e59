"""The generative head (teacher): memory tokens over the encoder states, a causal decoder over Semantic ID
codes, teacher-forced log-likelihoods and constrained beam search."""
from __future__ import annotations

import tensorflow as tf

from trainer.constrained_beam import constrained_beam_search
from trainer.dual_head.config import DualHeadConfig
from trainer.dual_head.items import ItemTables
from trainer.dual_head.layers import TransformerBlock


class GenerativeHead(tf.keras.layers.Layer):
    """Writes the next purchase's Semantic ID code by code; ``tables.codes`` int32 [N+2, T] (catalogue first).

    Its methods are called directly (no ``call``): ``memory`` → ``decode`` /
    ``code_log_likelihood`` / ``beam_search``.
    """

    def __init__(self, tables: ItemTables, num_items: int, sizes: tuple, config: DualHeadConfig, **kwargs):
        super().__init__(**kwargs)
        d = config.d_model
        self.item_tables, self.num_items, self.sizes, self.config = tables, num_items, tuple(sizes), config
        self.memory_queries = self.add_weight(name="memory_queries", shape=(config.memory_tokens, d),
                                              initializer=tf.keras.initializers.RandomNormal(stddev=0.02))
        self.memory_attention = tf.keras.layers.MultiHeadAttention(config.num_heads, d // config.num_heads)
        self.bos = self.add_weight(name="bos", shape=(d,), initializer=tf.keras.initializers.RandomNormal(stddev=0.02))
        self.token_embeddings = [tf.keras.layers.Embedding(k, d) for k in self.sizes[:-1]]
        self.level_embedding = tf.keras.layers.Embedding(len(self.sizes), d)
        self.decoder = [TransformerBlock(d, config.num_heads, config.ff_dim, config.dropout)
                        for _ in range(config.decoder_layers)]
        self.decoder_norm = tf.keras.layers.LayerNormalization(epsilon=1e-6)
        self.code_heads = [tf.keras.layers.Dense(k) for k in self.sizes]

    @property
    def codes(self):
        return self.item_tables.codes

    def memory(self, states, mask):
        """The decoder's context [B, M + R, D]: attention-pooled summaries of the history, then the
        states of the latest R items (a short history repeats its first item)."""
        queries = tf.tile(self.memory_queries[None], [tf.shape(states)[0], 1, 1])
        pooled = self.memory_attention(queries, states, attention_mask=mask[:, None, :])
        r = self.config.memory_recent
        if r == 0:
            return pooled
        count = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1, keepdims=True)
        idx = tf.clip_by_value(count - r + tf.range(r)[None], 0, tf.shape(states)[1] - 1)
        return tf.concat([pooled, tf.gather(states, idx, batch_dims=1)], axis=1)

    def decode(self, memory, prefix, training=False):
        """Next-code logits after each prefix length.

        memory [B, M, D]; prefix int32 [B, t] (t < T codes). Returns a list of t + 1
        logits tensors, entry s = [B, K_s]: the distribution of code s given c_<s.
        """
        batch = tf.shape(memory)[0]
        t = prefix.shape[1]
        tokens = [tf.tile(self.bos[None, None], [batch, 1, 1])]
        for s in range(t):
            tokens.append(self.token_embeddings[s](prefix[:, s])[:, None])
        tok = tf.concat(tokens, axis=1) + self.level_embedding(tf.range(t + 1))[None]
        x = tf.concat([memory, tok], axis=1)                                  # [B, M + t + 1, D]
        m = self.config.memory_tokens + self.config.memory_recent
        size = m + t + 1
        causal = tf.linalg.band_part(tf.ones([size, size], tf.bool), -1, 0)
        causal = tf.logical_or(causal, tf.range(size)[None, :] < m)          # everyone sees the memory
        mask = tf.tile(causal[None], [batch, 1, 1])
        for block in self.decoder:
            x = block(x, mask, training=training)
        x = self.decoder_norm(x)
        return [self.code_heads[s](x[:, m + s]) for s in range(t + 1)]

    def code_log_likelihood(self, memory, items, training=False):
        """log P(item | user) = Σ_t log softmax(logits_t)[c_t(item)] by teacher forcing.

        memory [B, M, D]; items int32 [B, C] → [B, C].
        """
        b, c = tf.shape(items)[0], tf.shape(items)[1]
        codes = tf.reshape(tf.gather(self.codes, items), [b * c, len(self.sizes)])
        mem = tf.repeat(memory, c, axis=0)
        logits = self.decode(mem, codes[:, :-1], training=training)
        total = tf.zeros([b * c])
        for t, lg in enumerate(logits):
            total += tf.gather(tf.nn.log_softmax(lg), codes[:, t], batch_dims=1)
        return tf.reshape(total, [b, c])

    def shared_code_log_likelihood(self, memory, items):
        """``code_log_likelihood(memory, items, training=False)`` without recomputing what a row's candidates share.

        In the decoder, the memory tokens attend only to the memory and BOS only to the memory and itself,
        so their states (at every layer) and the first code's logits are the same for all C candidates of a
        row: they are computed once per row [B, M + 1], and each candidate runs only its T - 1 code tokens,
        attending to the row's keys/values (projected once per row) and its own earlier tokens. The keys are
        in the same order and the masks are the causal mask's rows, so the result equals the full decode up
        to float summation order (tested to 1e-5). Inference only (no dropout). memory [B, M, D]; items
        int32 [B, C] → [B, C].
        """
        b, c = tf.shape(items)[0], tf.shape(items)[1]
        n_levels = len(self.sizes)
        m = self.config.memory_tokens + self.config.memory_recent
        codes = tf.reshape(tf.gather(self.codes, items), [b * c, n_levels])            # [B*C, T]
        levels = self.level_embedding(tf.range(n_levels))                                # [T, D]
        row = tf.concat([memory, tf.tile((self.bos + levels[0])[None, None], [b, 1, 1])], axis=1)  # [B, M+1, D]
        tok = tf.stack([self.token_embeddings[s](codes[:, s]) + levels[s + 1] for s in range(n_levels - 1)],
                       axis=1)                                                           # [B*C, T-1, D]
        size = m + n_levels                                                              # M + BOS + T-1 tokens
        causal = tf.logical_or(tf.linalg.band_part(tf.ones([size, size], tf.bool), -1, 0),
                               tf.range(size)[None, :] < m)
        row_mask = tf.tile(causal[None, : m + 1, : m + 1], [b, 1, 1])
        tok_mask = tf.tile(causal[None, m + 1:], [b * c, 1, 1])                          # [B*C, T-1, M+T]
        for block in self.decoder:
            attn = block.attention
            h_row, h_tok = block.norm1(row), block.norm1(tok)
            keys = tf.concat([tf.repeat(attn._key_dense(h_row), c, axis=0), attn._key_dense(h_tok)], axis=1)
            values = tf.concat([tf.repeat(attn._value_dense(h_row), c, axis=0), attn._value_dense(h_tok)], axis=1)
            out, _ = attn._compute_attention(attn._query_dense(h_tok), keys, values, tok_mask, training=False)
            tok = tok + attn._output_dense(out)
            tok = tok + block.ff(block.norm2(tok))
            row = block(row, row_mask, training=False)
        first = tf.nn.log_softmax(self.code_heads[0](self.decoder_norm(row)[:, m]))     # [B, K_0]
        total = tf.reshape(tf.gather(first, tf.reshape(codes[:, 0], [b, c]), batch_dims=1), [b * c])
        x = self.decoder_norm(tok)
        for s in range(1, n_levels):
            total += tf.gather(tf.nn.log_softmax(self.code_heads[s](x[:, s - 1])), codes[:, s], batch_dims=1)
        return tf.reshape(total, [b, c])

    def loss(self, memory, targets, training=False):
        """Teacher-forced cross-entropy of the targets' Semantic IDs [B], summed over code positions."""
        codes = tf.gather(self.codes, targets)                                          # [B, T]
        level_logits = self.decode(memory, codes[:, :-1], training=training)
        return tf.add_n([tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(codes[:, t], lg))
                         for t, lg in enumerate(level_logits)])

    def beam_search(self, memory, allowed, beam_width: int):
        """Top ``beam_width`` allowed items [B, W] and log-likelihoods [B, W] (constrained beam search)."""
        return constrained_beam_search(self.beam_step(memory), self.item_tables.trie, allowed, beam_width)

    def beam_step(self, memory):
        """The decoder as a beam search's ``StepFn`` for these requests' memory [B, M, D]."""
        def step(prefix, t):
            b, w = tf.shape(prefix)[0], tf.shape(prefix)[1]
            flat = tf.reshape(prefix, [b * w, t])
            logits = self.decode(tf.repeat(memory, w, axis=0), flat)[t]
            return tf.reshape(tf.nn.log_softmax(logits), [b, w, self.sizes[t]])
        return step

    def ordered_variables(self) -> list:
        """Trainable variables: the layers', then the memory queries and BOS."""
        layers = [self.memory_attention, *self.token_embeddings, self.level_embedding, *self.decoder,
                  self.decoder_norm, *self.code_heads]
        return [v for layer in layers for v in layer.trainable_variables] + [self.memory_queries, self.bos]

    def build_variables(self, states, mask) -> None:
        """Creates every variable (one teacher-forced pass over item 0)."""
        self.code_log_likelihood(self.memory(states, mask), tf.constant([[0]]))
