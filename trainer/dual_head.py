"""The dual-head transformer: one history encoder, a generative head (teacher) and a retrieval head (student).

Items enter the encoder as the sum of their Semantic ID code embeddings (one
table per code position), a projection of their content embedding and, unless
switched off, a free ID embedding. Items of one order share one position
embedding: the position of a history item is how many orders before the
target it was placed (1 = the latest order). A behaviour embedding (click,
purchase, ...) is added where the data has several.

* **Generative head**: a causal transformer decoder reads ``memory_tokens``
  attention-pooled summaries of the encoder output, then BOS, c_1, ..., and
  predicts the next purchase's Semantic ID code by code (one softmax per code
  position, each sized from the data). Inference: ``constrained_beam``.
* **Retrieval head**: user vector = MLP(last state, mean state); item vector =
  MLP mapping network(content embedding) + ID residual (zero for items never
  seen in training, so a new item is embeddable from its content alone).
  Loss: multi-positive InfoNCE (every item of the next order is a positive)
  over in-batch candidates (logQ-corrected) and hard negatives.
* **Distillation**: teacher score of item v = Σ_t log softmax(logits_t)[c_t(v)]
  (teacher-forced over v's prefix). On the student's top ``distill_candidates``
  in-batch candidates, KL(teacher ‖ student) plus ListMLE of the teacher's
  order under the student's scores. Teacher scores are stop-gradient.
* **Data engineering** (``debias_targets``, ``hard_negatives_*``): training
  targets drawn with probability ∝ 1/sqrt(training frequency); hard negatives
  from the target's category and from the user's own history, never one of
  the row's positives (those are replaced by padding, i.e. removed).

``variant="sasrec"`` is the plain SASRec-style baseline on the same code: free
ID embeddings only, positions count items, full softmax over the catalogue.

Index conventions: catalogue items 0..N-1 (catalogue order), OOV = N, PAD = N+1;
OOV and PAD are masked out of histories. Shapes: B batch, L history length,
T code positions, N items, D model width, C candidates.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import tensorflow as tf

from recsys import features as F
from trainer import base
from trainer.constrained_beam import constrained_beam_search, level_sizes

_log = logging.getLogger("recsys.trainer")
EVENT_TYPES = ("",) + tuple(F.INTERACTION_TYPES)  # index 0 = unknown
VARIANTS = ("dual_head", "sasrec")


@dataclass(frozen=True)
class DualHeadConfig:
    """Every hyperparameter of the dual-head model (and of its ablation variants)."""

    d_model: int = 64
    num_heads: int = 2
    encoder_layers: int = 2
    decoder_layers: int = 2
    ff_dim: int = 128
    dropout: float = 0.1
    max_history: int = 30          # the dual head reads the latest 30 items (the two-tower 50): CPU budget
    max_orders: int = 64            # order positions further back share the last embedding
    memory_tokens: int = 4          # encoder summaries the decoder attends to
    memory_recent: int = 0          # + the encoder states of the latest R history items
    epochs: int = 4                 # what the ablation and the measured `make run` used (2-core budget)
    batch_size: int = 256
    learning_rate: float = 1e-3
    temperature: float = 0.1
    logq_correction: bool = True
    max_positives: int = 16         # positives per row used by the multi-positive loss
    debias_targets: bool = True     # draw targets ∝ 1/sqrt(frequency)
    hard_negatives_category: int = 1
    hard_negatives_history: int = 1
    generative_weight: float = 1.0  # 0 = retrieval head alone
    distill_weight: float = 1.0     # KL term; 0 = no distillation
    listwise_weight: float = 0.5    # ListMLE term (only with distillation)
    distill_candidates: int = 20
    distill_temperature: float = 1.0
    distill_warmup_epochs: int = 1  # the teacher trains alone first: an untrained teacher only adds noise
    id_residual: bool = True        # free ID embedding added to known items' representations
    id_dropout: float = 0.2         # share of training items whose ID residual is dropped per step
    order_positions: bool = True    # False: positions count items (SASRec)
    beam_width: int = 20
    variant: str = "dual_head"
    early_stopping_patience: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        for f in ("d_model", "num_heads", "encoder_layers", "ff_dim", "max_history", "max_orders",
                  "memory_tokens", "epochs", "batch_size", "max_positives", "distill_candidates", "beam_width"):
            if getattr(self, f) <= 0:
                raise ValueError(f"DualHeadConfig.{f} must be positive, got {getattr(self, f)}")
        for f in ("hard_negatives_category", "hard_negatives_history", "decoder_layers", "distill_warmup_epochs",
                  "memory_recent"):
            if getattr(self, f) < 0:
                raise ValueError(f"DualHeadConfig.{f} must be >= 0, got {getattr(self, f)}")
        for f in ("generative_weight", "distill_weight", "listwise_weight"):
            if getattr(self, f) < 0:
                raise ValueError(f"DualHeadConfig.{f} must be >= 0, got {getattr(self, f)}")
        if self.temperature <= 0 or self.learning_rate <= 0 or self.distill_temperature <= 0:
            raise ValueError("temperature, distill_temperature and learning_rate must be positive")
        if not 0 <= self.dropout < 1 or not 0 <= self.id_dropout <= 1:
            raise ValueError(f"dropout must be in [0, 1) and id_dropout in [0, 1], got {self.dropout}, {self.id_dropout}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by num_heads {self.num_heads}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.distill_weight > 0 and (self.generative_weight <= 0 or self.decoder_layers == 0):
            raise ValueError("distillation needs a trained generative head (generative_weight > 0, decoder_layers > 0)")

    @property
    def has_generative_head(self) -> bool:
        return self.variant == "dual_head" and self.generative_weight > 0 and self.decoder_layers > 0

    @classmethod
    def from_dict(cls, values: dict | None) -> "DualHeadConfig":
        return base.config_from_dict(cls, values, "dual-head")


# ----------------------------------------------------------------------------- data
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


def relative_orders(order_pos: np.ndarray, target_pos: int, max_orders: int) -> np.ndarray:
    """Order positions → orders before the target, clipped to [1, max_orders - 1].

    Example: order_pos [0, 0, 1, 3], target 4, max_orders 64 → [4, 4, 3, 1].
    """
    rel = np.asarray(target_pos, np.int64) - np.asarray(order_pos, np.int64)
    return np.clip(rel, 1, max_orders - 1).astype(np.int32)


def _decode(values) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def load_sequences(examples_uri: str, split: str, items: ItemSpace, config: DualHeadConfig) -> SequenceData:
    """Raw sequence rows of ``split`` → ``SequenceData`` (last ``max_history`` items as model input)."""
    spec = F.feature_spec((F.USER_ID, F.HISTORY_ITEM_ID, F.HISTORY_ORDER_POS, F.HISTORY_EVENT_TYPE,
                           F.TARGET_ITEM_ID, F.TARGET_ORDER_POS))
    cols = base.read_examples(base.split_files(examples_uri, split), spec)
    pos = items.positions()
    ev_index = {e: i for i, e in enumerate(EVENT_TYPES)}
    n_rows, width = len(cols[F.USER_ID.name]), config.max_history
    history = np.full((n_rows, width), items.pad, np.int32)
    order_rel = np.zeros((n_rows, width), np.int32)
    events = np.zeros((n_rows, width), np.int32)
    positives, full = [], []
    for r in range(n_rows):
        hist = [pos.get(i, items.oov) for i in _decode(cols[F.HISTORY_ITEM_ID.name][r])]
        opos = np.asarray(cols[F.HISTORY_ORDER_POS.name][r], np.int64)
        tpos = int(cols[F.TARGET_ORDER_POS.name][r])
        if not config.order_positions:  # SASRec: every item its own position
            opos, tpos = np.arange(len(hist)), len(hist)
        evs = [ev_index.get(e, 0) for e in _decode(cols[F.HISTORY_EVENT_TYPE.name][r])]
        tail = slice(max(0, len(hist) - width), len(hist))
        n = tail.stop - tail.start
        history[r, :n] = hist[tail]
        order_rel[r, :n] = relative_orders(opos[tail], tpos, config.max_orders)
        events[r, :n] = evs[tail]
        positives.append(np.array(sorted({pos[t] for t in _decode(cols[F.TARGET_ITEM_ID.name][r]) if t in pos}),
                                  np.int64))
        full.append(np.array([h for h in hist if h < items.num_items], np.int64))
    return SequenceData(history, order_rel, events, positives, full, _decode(cols[F.USER_ID.name]))


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
    with np.load(content_npz, allow_pickle=False) as z:
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


# ----------------------------------------------------------------------------- layers
class TransformerBlock(tf.keras.layers.Layer):
    """Pre-norm self-attention + feed-forward block. x [B, S, D], mask bool [B, S, S] (True = attend)."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
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


class DualHeadModel(tf.keras.Model):
    """Encoder + retrieval head + generative head over one item space (see module docstring)."""

    def __init__(self, items: ItemSpace, config: DualHeadConfig, num_events: int = len(EVENT_TYPES)):
        super().__init__()
        self.config = config
        self.num_items = items.num_items
        self.sizes = level_sizes(items.codes)
        d = config.d_model
        n_rows = items.num_items + 2  # + OOV + PAD
        codes = np.zeros((n_rows, items.codes.shape[1]), np.int32)
        codes[: items.num_items] = items.codes
        content = np.zeros((n_rows, items.content.shape[1]), np.float32)
        norms = np.linalg.norm(items.content, axis=1, keepdims=True)
        content[: items.num_items] = items.content / np.maximum(norms, 1e-8)
        known = np.zeros(n_rows, np.float32)
        known[: items.num_items] = (items.train_count > 0).astype(np.float32)
        self.codes = tf.constant(codes)                 # [N+2, T]
        self.content = tf.constant(content)             # [N+2, Dc]
        self.known = tf.constant(known)                 # [N+2]: has an ID residual
        self.content_dim = items.content.shape[1]
        sasrec = config.variant == "sasrec"
        self.id_embedding = (tf.keras.layers.Embedding(n_rows, d, embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=0.02))
                             if config.id_residual or sasrec else None)
        self.code_embeddings = [] if sasrec else [tf.keras.layers.Embedding(k, d) for k in self.sizes]
        self.content_projection = None if sasrec else tf.keras.layers.Dense(d)
        self.order_embedding = tf.keras.layers.Embedding(config.max_orders, d)
        self.event_embedding = tf.keras.layers.Embedding(num_events, d)
        self.input_norm = tf.keras.layers.LayerNormalization(epsilon=1e-6)
        self.input_drop = tf.keras.layers.Dropout(config.dropout)
        self.encoder = [TransformerBlock(d, config.num_heads, config.ff_dim, config.dropout)
                        for _ in range(config.encoder_layers)]
        self.encoder_norm = tf.keras.layers.LayerNormalization(epsilon=1e-6)
        self.user_mlp = tf.keras.Sequential([tf.keras.layers.Dense(2 * d, activation="gelu"), tf.keras.layers.Dense(d)])
        self.mapping = None if sasrec else tf.keras.Sequential([
            tf.keras.layers.Dense(2 * d, activation="gelu"), tf.keras.layers.Dense(2 * d, activation="gelu"),
            tf.keras.layers.Dense(d)])
        self.generative = config.has_generative_head
        if self.generative:
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

    # -- items ----------------------------------------------------------------------
    def _id_residual(self, items, training):
        """ID embedding of known items [.., D]; dropped for a random share of items while training."""
        keep = tf.gather(self.known, items)
        if training and self.config.id_dropout > 0:
            keep = keep * tf.cast(tf.random.uniform(tf.shape(keep)) >= self.config.id_dropout, tf.float32)
        return self.id_embedding(items) * keep[..., None]

    def item_input(self, items, training=False):
        """Encoder input of items (any shape of indices) → [..., D]."""
        if self.config.variant == "sasrec":
            return self.id_embedding(items)
        # project the whole content table once when it is smaller than the batch of items
        table = self.content_projection(self.content)                               # [N+2, D]
        for t, emb in enumerate(self.code_embeddings):
            table += emb(self.codes[:, t])
        x = tf.gather(table, items)
        if self.id_embedding is not None:
            x += self._id_residual(items, training)
        return x

    def map_content(self, content):
        """Mapping network: content embeddings [M, Dc] (any scale) → item vectors [M, D] without ID residual."""
        content = tf.math.l2_normalize(content, axis=-1)
        return tf.math.l2_normalize(self.mapping(content), axis=-1)

    def item_vectors(self, items, training=False):
        """Retrieval-head item vectors of catalogue indices [M] → [M, D], L2-normalised."""
        if self.config.variant == "sasrec":
            return self.id_embedding(items)
        x = self.mapping(tf.gather(self.content, items))
        if self.id_embedding is not None:
            x += self._id_residual(items, training)
        return tf.math.l2_normalize(x, axis=-1)

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
        u = self.user_mlp(tf.concat([last, mean], axis=1))
        return u if self.config.variant == "sasrec" else tf.math.l2_normalize(u, axis=-1)

    # -- generative head -------------------------------------------------------------
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

    def beam_search(self, memory, allowed, beam_width: int):
        """Top ``beam_width`` allowed items [B, W] and log-likelihoods [B, W] (constrained beam search)."""
        catalogue_codes = self.codes[: self.num_items]

        def step(prefix, t):
            b, w = tf.shape(prefix)[0], tf.shape(prefix)[1]
            flat = tf.reshape(prefix, [b * w, t])
            logits = self.decode(tf.repeat(memory, w, axis=0), flat)[t]
            return tf.reshape(tf.nn.log_softmax(logits), [b, w, self.sizes[t]])

        return constrained_beam_search(step, catalogue_codes, allowed, self.sizes, beam_width)


# ----------------------------------------------------------------------------- losses
def multi_positive_infonce(logits, is_positive, valid):
    """Multi-positive InfoNCE: each positive against all the row's negatives.

    logits [B, C]; is_positive, valid bool [B, C]. loss_b = mean_{p ∈ P_b} softplus(LSE_{n ∈ N_b} s_bn − s_bp).
    Rows without a positive are skipped. Returns a scalar.
    """
    neg_inf = tf.constant(-1e9, logits.dtype)
    negatives = tf.logical_and(valid, tf.logical_not(is_positive))
    neg_lse = tf.reduce_logsumexp(tf.where(negatives, logits, neg_inf), axis=1, keepdims=True)  # [B, 1]
    per = tf.nn.softplus(neg_lse - logits)                                                     # [B, C]
    pos = tf.cast(tf.logical_and(is_positive, valid), logits.dtype)
    n_pos = tf.reduce_sum(pos, axis=1)
    per_row = tf.reduce_sum(per * pos, axis=1) / tf.maximum(n_pos, 1.0)
    has = tf.cast(n_pos > 0, logits.dtype)
    return tf.reduce_sum(per_row * has) / tf.maximum(tf.reduce_sum(has), 1.0)


def distillation_kl(teacher, student, temperature: float):
    """KL(softmax(teacher/τ) ‖ softmax(student)) averaged over rows; teacher, student [B, C]."""
    p = tf.nn.softmax(teacher / temperature, axis=1)
    return tf.reduce_mean(tf.reduce_sum(p * (tf.nn.log_softmax(teacher / temperature, axis=1)
                                             - tf.nn.log_softmax(student, axis=1)), axis=1))


def listmle(teacher, student):
    """ListMLE: −log Plackett–Luce likelihood of the teacher's ranking under the student's scores, per position.

    teacher, student [B, C] → scalar = mean_{b, i} (log Σ_{j ≥ i} exp s_{b,π(j)} − s_{b,π(i)}).
    """
    order = tf.argsort(teacher, axis=1, direction="DESCENDING")
    s = tf.gather(student, order, batch_dims=1)
    # log Σ_{j ≥ i} exp(s_j): reverse cumulative logsumexp
    rev = tf.reverse(s, axis=[1])
    tail = tf.reverse(tf.math.cumulative_logsumexp(rev, axis=1), axis=[1])
    return tf.reduce_mean(tail - s)  # per position, so the scale does not grow with the list length


# ----------------------------------------------------------------------------- training batches
class PairSampler:
    """(row, target) training pairs, the targets' sampling law and hard negatives (numpy)."""

    def __init__(self, data: SequenceData, items: ItemSpace, config: DualHeadConfig):
        self.data, self.items, self.config = data, items, config
        rows = [np.full(len(p), r, np.int64) for r, p in enumerate(data.positives)]
        self.pair_row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        self.pair_target = np.concatenate(data.positives) if rows else np.zeros(0, np.int64)
        if len(self.pair_target) == 0:
            raise ValueError("No training pairs: no training target is a catalogue item.")
        counts = np.bincount(self.pair_target, minlength=items.num_items).astype(np.float64)
        weight = 1.0 / np.sqrt(np.maximum(counts[self.pair_target], 1.0)) if config.debias_targets \
            else np.ones(len(self.pair_target))
        self.pair_prob = weight / weight.sum()
        # probability that an item is drawn as a target: the logQ correction of in-batch negatives
        q = np.bincount(self.pair_target, weights=self.pair_prob, minlength=items.num_items)
        self.log_q = np.log(np.maximum(q, 1e-12)).astype(np.float32)
        trained = np.flatnonzero(counts > 0)
        self.trained = trained
        self.by_category = {}
        cats = items.category[trained]
        for c in np.unique(cats):
            self.by_category[int(c)] = trained[cats == c]
        self.rng = np.random.default_rng(config.seed)

    def epoch(self) -> np.ndarray:
        """Pair indices of one epoch: drawn ∝ target weight (debiased) or a permutation."""
        n = len(self.pair_target)
        if self.config.debias_targets:
            return self.rng.choice(n, size=n, replace=True, p=self.pair_prob)
        return self.rng.permutation(n)

    def batch(self, pairs: np.ndarray) -> dict:
        d, cfg, rng = self.data, self.config, self.rng
        rows, anchor = self.pair_row[pairs], self.pair_target[pairs]
        positives = np.full((len(pairs), cfg.max_positives), -1, np.int64)
        for b, (r, a) in enumerate(zip(rows.tolist(), anchor.tolist())):
            others = d.positives[r][d.positives[r] != a]
            if len(others) > cfg.max_positives - 1:
                others = rng.choice(others, cfg.max_positives - 1, replace=False)
            positives[b, 0] = a
            positives[b, 1: 1 + len(others)] = others
        hard = [self._same_category(anchor) for _ in range(cfg.hard_negatives_category)]
        hard += [self._own_history(rows) for _ in range(cfg.hard_negatives_history)]
        hard = np.stack(hard, axis=1) if hard else np.zeros((len(pairs), 0), np.int64)
        # accidental hits: a hard negative that is one of the row's positives is removed (→ PAD)
        hit = (hard[:, :, None] == positives[:, None, :]).any(axis=2) if hard.size else np.zeros(hard.shape, bool)
        hard = np.where(hit, self.items.pad, hard)
        return {
            "history": d.history[rows], "order_rel": d.order_rel[rows], "events": d.events[rows],
            "anchor": anchor.astype(np.int32), "positives": positives.astype(np.int32),
            "hard": hard.astype(np.int32), "anchor_log_q": self.log_q[anchor],
        }

    def _same_category(self, anchor: np.ndarray) -> np.ndarray:
        out = np.empty(len(anchor), np.int64)
        for b, a in enumerate(anchor.tolist()):
            pool = self.by_category.get(int(self.items.category[a]), self.trained)
            out[b] = pool[self.rng.integers(len(pool))]
        return out

    def _own_history(self, rows: np.ndarray) -> np.ndarray:
        hist = self.data.history[rows]
        lengths = (hist < self.items.num_items).sum(axis=1)
        pick = (self.rng.random(len(rows)) * np.maximum(lengths, 1)).astype(np.int64)
        out = hist[np.arange(len(rows)), pick]
        return np.where(lengths > 0, out, self.items.pad)


# ----------------------------------------------------------------------------- training
class Trainer:
    """Custom training loop: one optimiser step per batch over both heads."""

    def __init__(self, model: DualHeadModel, config: DualHeadConfig):
        self.model, self.config = model, config
        self.optimizer = tf.keras.optimizers.Adam(config.learning_rate)
        self._steps: dict = {}

    def losses(self, batch: dict, training: bool = True, distill: bool = True) -> dict:
        m, cfg = self.model, self.config
        states, mask = m.encode(batch["history"], batch["order_rel"], batch["events"], training=training)
        user = m.user_vector(states, mask)                                       # [B, D]
        out = {}
        if cfg.variant == "sasrec":
            logits = tf.matmul(user, m.id_embedding(tf.range(m.num_items)), transpose_b=True)  # [B, N]
            out["retrieval"] = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(batch["anchor"], logits))
            return out
        cands = tf.concat([batch["anchor"], tf.reshape(batch["hard"], [-1])], axis=0)   # [C]
        n_batch = tf.shape(batch["anchor"])[0]
        raw = tf.matmul(user, m.item_vectors(cands, training=training), transpose_b=True) / cfg.temperature
        logits = raw
        if cfg.logq_correction:
            correction = tf.concat([batch["anchor_log_q"], tf.zeros([tf.shape(cands)[0] - n_batch])], axis=0)
            logits = raw - correction[None, :]
        is_pos = tf.reduce_any(tf.equal(cands[None, :, None], batch["positives"][:, None, :]), axis=2)
        valid = tf.broadcast_to((cands < m.num_items)[None, :], tf.shape(is_pos))
        out["retrieval"] = multi_positive_infonce(logits, is_pos, valid)
        if m.generative:
            memory = m.memory(states, mask)
            anchor_codes = tf.gather(m.codes, batch["anchor"])                         # [B, T]
            level_logits = m.decode(memory, anchor_codes[:, :-1], training=training)
            out["generative"] = tf.add_n([
                tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(anchor_codes[:, t], lg))
                for t, lg in enumerate(level_logits)])
            if cfg.distill_weight > 0 and distill:
                masked = tf.where(valid, raw, -1e9)
                top = tf.math.top_k(tf.stop_gradient(masked), tf.minimum(cfg.distill_candidates, tf.shape(cands)[0]))
                cand_items = tf.gather(cands, top.indices)                              # [B, c]
                teacher = tf.stop_gradient(m.code_log_likelihood(memory, cand_items, training=False))
                student = tf.gather(raw, top.indices, batch_dims=1)
                out["distill_kl"] = distillation_kl(teacher, student, cfg.distill_temperature)
                if cfg.listwise_weight > 0:
                    out["distill_listwise"] = listmle(teacher, student)
        return out

    def total(self, losses: dict) -> tf.Tensor:
        cfg = self.config
        weights = {"retrieval": 1.0, "generative": cfg.generative_weight, "distill_kl": cfg.distill_weight,
                   "distill_listwise": cfg.distill_weight * cfg.listwise_weight}
        return tf.add_n([weights[k] * v for k, v in losses.items()])

    def train_step(self, batch: dict, distill: bool = True) -> dict:
        """One optimiser step; ``distill`` (python bool) selects one of two traced graphs."""
        fn = self._steps.get(distill)
        if fn is None:
            fn = self._steps[distill] = tf.function(lambda b: self._step(b, distill), reduce_retracing=True)
        return fn(batch)

    def _step(self, batch, distill: bool):
        with tf.GradientTape() as tape:
            losses = self.losses(batch, training=True, distill=distill)
            loss = self.total(losses)
        variables = self.model.trainable_variables
        grads = tape.gradient(loss, variables)
        grads, _ = tf.clip_by_global_norm([g if g is not None else tf.zeros_like(v) for g, v in zip(grads, variables)], 5.0)
        self.optimizer.apply_gradients(zip(grads, variables))
        return dict(losses, total=loss)


# ----------------------------------------------------------------------------- inference (numpy side)
def user_vectors(model: DualHeadModel, data: SequenceData, batch_size: int = 1024) -> np.ndarray:
    out = []
    for s in range(0, len(data.history), batch_size):
        states, mask = model.encode(tf.constant(data.history[s:s + batch_size]),
                                    tf.constant(data.order_rel[s:s + batch_size]),
                                    tf.constant(data.events[s:s + batch_size]))
        out.append(model.user_vector(states, mask).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.d_model), np.float32)


def catalogue_vectors(model: DualHeadModel) -> np.ndarray:
    """Retrieval-head vectors of every catalogue item [N, D]."""
    return model.item_vectors(tf.range(model.num_items)).numpy()


def retrieval_topk(model: DualHeadModel, data: SequenceData, exclude_history: bool, k: int = 10) -> np.ndarray:
    """Student top-k catalogue indices [R, k] by exact dot product (history masked if asked)."""
    from recsys.evaluation.metrics import top_k

    items = catalogue_vectors(model)
    users = user_vectors(model, data)
    out = [top_k(users[s:s + 1024] @ items.T, k, exclude=data.full_history[s:s + 1024] if exclude_history else None)
           for s in range(0, len(users), 1024)]
    return np.concatenate(out) if out else np.zeros((0, k), np.int64)


def generative_topk(model: DualHeadModel, data: SequenceData, exclude_history: bool, k: int = 10,
                    beam_width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Teacher top-k by constrained beam search: catalogue indices [R, k] (-1 = none) and log-likelihoods."""
    width = max(beam_width or model.config.beam_width, k)
    n = model.num_items
    batch = int(max(8, min(256, 4_000_000 // (width * n))))
    items_out, scores_out = [], []
    search = tf.function(lambda h, o, e, allowed: _search(model, h, o, e, allowed, width), reduce_retracing=True)
    for s in range(0, len(data.history), batch):
        allowed = np.ones((min(batch, len(data.history) - s), n), bool)
        if exclude_history:
            for r, h in enumerate(data.full_history[s:s + batch]):
                allowed[r, h] = False
        items, scores = search(tf.constant(data.history[s:s + batch]), tf.constant(data.order_rel[s:s + batch]),
                               tf.constant(data.events[s:s + batch]), tf.constant(allowed))
        items_out.append(items.numpy()[:, :k])
        scores_out.append(scores.numpy()[:, :k])
    return np.concatenate(items_out), np.concatenate(scores_out)


def _search(model, history, order_rel, events, allowed, width):
    states, mask = model.encode(history, order_rel, events)
    return model.beam_search(model.memory(states, mask), allowed, width)


def evaluate(model: DualHeadModel, data: SequenceData, exclude_history: bool, k: int = 10,
             generative: bool = True) -> dict:
    """Full-ranking metrics of the student (and of the teacher by beam search) on ``data``."""
    from recsys.evaluation.metrics import ranking_metrics

    n = model.num_items
    keep = [i for i, p in enumerate(data.positives) if len(p)]
    sub = SequenceData(data.history[keep], data.order_rel[keep], data.events[keep],
                       [data.positives[i] for i in keep], [data.full_history[i] for i in keep],
                       [data.users[i] for i in keep])
    out = {"retrieval": ranking_metrics(retrieval_topk(model, sub, exclude_history, k), sub.positives, n, k)}
    if generative and model.generative:
        top, _ = generative_topk(model, sub, exclude_history, k)
        out["generative"] = metrics_with_missing(top, sub.positives, n, k)
    return out


def metrics_with_missing(top: np.ndarray, positives: list, n: int, k: int) -> dict:
    """Ranking metrics of lists that may be short (-1 slots, when fewer than k items were allowed).

    A missing slot is a miss: it becomes a dummy item n that no target equals; coverage is
    corrected so the dummy does not count as a covered item (entropy keeps it as one symbol).
    """
    from recsys.evaluation.metrics import ranking_metrics

    if (top >= 0).all():
        return ranking_metrics(top, positives, n, k)
    m = ranking_metrics(np.where(top < 0, n, top), positives, n + 1, k)
    m[f"coverage@{k}"] = (m[f"coverage@{k}"] * (n + 1) - 1) / n
    return m


@dataclass
class TrainResult:
    model: DualHeadModel
    log: list = field(default_factory=list)
    best_epoch: int = 0
    validation: dict = field(default_factory=dict)


def train(train_data: SequenceData, val_data: SequenceData, items: ItemSpace, config: DualHeadConfig,
          exclude_history: bool, label: str = "dual_head") -> TrainResult:
    """Trains with per-epoch validation (student NDCG@10); keeps the best epoch's weights."""
    tf.keras.utils.set_random_seed(config.seed)
    sampler = PairSampler(train_data, items, config)
    model = DualHeadModel(items, config)
    trainer = Trainer(model, config)
    print(f"[{label}] {len(sampler.pair_target):,} training pairs from {len(train_data.history):,} rows, "
          f"{items.num_items:,} items, code sizes {model.sizes}, validation rows {len(val_data.history):,}", flush=True)
    start = time.time()
    log, best, best_weights, best_epoch, stale = [], -1.0, None, 0, 0
    for epoch in range(1, config.epochs + 1):
        pairs = sampler.epoch()
        sums: dict[str, float] = {}
        steps = len(pairs) // config.batch_size
        for s in range(steps):
            batch = sampler.batch(pairs[s * config.batch_size:(s + 1) * config.batch_size])
            values = trainer.train_step({k: tf.constant(v) for k, v in batch.items()},
                                        distill=epoch > config.distill_warmup_epochs)
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        val = evaluate(model, val_data, exclude_history, generative=False)["retrieval"]
        entry = {"epoch": epoch, **{f"loss_{k}": round(v / max(steps, 1), 4) for k, v in sums.items()},
                 "val_HR@10": round(val["HR@10"], 4), "val_NDCG@10": round(val["NDCG@10"], 4),
                 "elapsed_s": round(time.time() - start, 1)}
        log.append(entry)
        print(f"[{label}] epoch {epoch}/{config.epochs}: " + " ".join(f"{k}={v}" for k, v in entry.items()
                                                                      if k != "epoch"), flush=True)
        if val["NDCG@10"] > best:
            best, best_weights, best_epoch, stale = val["NDCG@10"], model.get_weights(), epoch, 0
        else:
            stale += 1
            if stale >= config.early_stopping_patience:
                print(f"[{label}] early stop: validation NDCG@10 has not improved for {stale} epochs", flush=True)
                break
    model.set_weights(best_weights)
    return TrainResult(model, log, best_epoch)


# ----------------------------------------------------------------------------- TFX Trainer
TRAIN_INFO = "dual_head.json"
WEIGHTS = "weights"


def content_space_paths(base_model_dir: str) -> tuple[str, str]:
    """(semantic_ids.tsv, content_embeddings.npz) inside the Semantic ID trainer's model artifact."""
    from trainer.semantic_id_trainer import CONTENT_FILE, TABLE_FILE

    serving = base_model_dir.rstrip("/")
    root = os.path.dirname(serving) if os.path.basename(serving) == "Format-Serving" else serving
    tsv = os.path.join(root, "Format-Serving", "assets.extra", TABLE_FILE)
    npz = os.path.join(root, CONTENT_FILE)
    for p in (tsv, npz):
        if not os.path.exists(p):
            raise FileNotFoundError(f"{p} not found: the dual-head trainer needs the content space "
                                    "(run the pipeline with Semantic IDs on)")
    return tsv, npz


def exclude_history_for(examples_uri: str) -> bool:
    """Leave-one-out data masks the user's history at evaluation; basket data does not."""
    from tfx_pipeline.components.example_gen import PROTOCOL_FILE
    from transform.sequences import LEAVE_ONE_OUT

    with open(os.path.join(examples_uri, PROTOCOL_FILE), encoding="utf-8") as f:
        return f.read().strip() == LEAVE_ONE_OUT


def save_trained(result: TrainResult, items: ItemSpace, config: DualHeadConfig, out_dir: str, extra: dict) -> None:
    """Weights + config + item space: everything ``load_trained`` needs to rebuild the model."""
    os.makedirs(out_dir, exist_ok=True)
    result.model.save_weights(os.path.join(out_dir, WEIGHTS, "model"))
    np.savez(os.path.join(out_dir, "items.npz"), item_ids=items.item_ids.astype(str), codes=items.codes,
             content=items.content, category=items.category, train_count=items.train_count)
    with open(os.path.join(out_dir, TRAIN_INFO), "w") as f:
        json.dump({"config": asdict(config), "log": result.log, "best_epoch": result.best_epoch, **extra}, f, indent=1)


def load_trained(out_dir: str) -> tuple[DualHeadModel, ItemSpace, dict]:
    with open(os.path.join(out_dir, TRAIN_INFO)) as f:
        info = json.load(f)
    with np.load(os.path.join(out_dir, "items.npz"), allow_pickle=False) as z:
        items = ItemSpace(z["item_ids"].astype(object), z["codes"], z["content"], z["category"], z["train_count"])
    config = DualHeadConfig.from_dict(info["config"])
    model = DualHeadModel(items, config)
    _build(model, items)
    model.load_weights(os.path.join(out_dir, WEIGHTS, "model")).expect_partial()
    return model, items, info


def _build(model: DualHeadModel, items: ItemSpace) -> None:
    """Creates every variable by one forward pass through both heads."""
    h = tf.constant([[0, items.pad]], tf.int32)
    states, mask = model.encode(h, tf.constant([[1, 0]], tf.int32), tf.constant([[0, 0]], tf.int32))
    model.user_vector(states, mask)
    if model.config.variant != "sasrec":
        model.item_vectors(tf.constant([0]))
    else:
        model.id_embedding(tf.constant([0]))
    if model.generative:
        model.code_log_likelihood(model.memory(states, mask), tf.constant([[0]]))


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (GenericExecutor).

    Inputs: ``examples`` = the raw sequence Examples (order positions and behaviour
    are not in the transformed rows), ``transform_graph`` (training counts),
    ``base_model`` = the Semantic ID trainer's model (ID table + content embeddings).
    Output: ``Format-Serving/`` holds the weights, config and item space.
    """
    config = DualHeadConfig.from_dict((fn_args.custom_config or {}).get("dual_head"))
    examples_uri = os.path.dirname(os.path.dirname(fn_args.train_files[0]))
    vocab = base.load_vocabularies(fn_args.transform_output)
    tsv, npz = content_space_paths(fn_args.base_model)
    items = load_item_space(examples_uri, tsv, npz, vocab.item_counts)
    exclude = exclude_history_for(examples_uri)
    train_data = load_sequences(examples_uri, F.TRAIN, items, config)
    val_data = load_sequences(examples_uri, F.EVAL, items, config)
    result = train(train_data, val_data, items, config, exclude)
    save_trained(result, items, config, fn_args.serving_model_dir,
                 {"exclude_history": exclude, "default_event": most_frequent_event(train_data, items)})


def most_frequent_event(data: SequenceData, items: ItemSpace) -> str:
    """The behaviour type served requests are assumed to have when they do not say."""
    events = data.events[data.history < items.num_items]
    return EVENT_TYPES[int(np.bincount(events, minlength=len(EVENT_TYPES)).argmax())] if events.size else ""
