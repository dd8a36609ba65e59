"""The ranker family: DCN-v2 or DeepFM interaction, an optional TransAct block, ESMM heads.

Inputs (a batch of units, each with N candidates; ``data.ExposureSet`` names):

* ``items`` int32 [B, N] candidate positions; ``features`` float32 [B, N, F] dense features
  (standardised inside the model with the training set's mean/std);
* ``actions``/``action_type``/``action_gap`` int32 [B, A]: the user's most recent actions,
  right-aligned; ``user_vector`` float32 [B, D]: a retriever's long-term user vector.

Candidate representation: id embedding ⊕ projected (frozen) content embedding ⊕ category
embedding ⊕ the sum of one embedding per Semantic-ID level (the content space's RQ-VAE codes,
shared by items with similar content, so a rare item borrows from its code neighbours). Item age
at the request (``request_time`` [B] epoch seconds − the item's ``created_at``) enters as
log1p(days) / 5 with a known/unknown flag (unknown: no creation time, or no request time).
Where the catalogue has them (user files, the synthetic shop; not MovieLens or Instacart), a brand
embedding joins the item representation and log1p(price) / 5 with a known flag the fields. TransAct (Xia et al., KDD 2023): each action token = item representation +
action-type embedding + gap-bucket embedding, **early fusion** (the candidate's
representation concatenated to every token), a transformer encoder, output = max-pool over
the tokens ⊕ the ``last_tokens`` most recent tokens; in training a random time window of
the most recent actions is masked. The long-term user vector is projected and
concatenated. DCN-v2 (Wang et al., WWW 2021): cross layers ``x_{l+1} = x0 ⊙ (W x_l + b) + x_l``
(TFRS ``Cross``) with the deep tower stacked or parallel. DeepFM (Guo et al., IJCAI 2017):
FM second-order term over the fields' ``fm_dim`` projections, added to both logits.
ESMM (Ma et al., SIGIR 2018): pCTR = σ(ctr logit), pCVR = σ(cvr logit), pCTCVR = pCTR · pCVR.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from trainer.base import frozen_table
from trainer.ranker.config import CROSS, PARALLEL, RankerConfig
from trainer.ranker.data import ACTION_TYPES, MISSING_CREATED_AT, ItemTables

SECONDS_PER_DAY = 86400.0


def item_age(created_at: tf.Tensor, request_time: tf.Tensor) -> tf.Tensor:
    """[..., 2]: (log1p(age in days) / 5, known) of items created at ``created_at`` for a request at ``request_time``.

    Unknown (both zero) when the item has no creation time or the request none (<= 0); an item
    created after the request has age 0.
    """
    known = tf.not_equal(created_at, MISSING_CREATED_AT) & (request_time > 0)
    days = tf.cast(tf.maximum(request_time - created_at, 0), tf.float32) / SECONDS_PER_DAY
    age = tf.where(known, tf.math.log1p(days) / 5.0, 0.0)
    return tf.stack([age, tf.cast(known, tf.float32)], -1)


def price_feature(price: tf.Tensor) -> tf.Tensor:
    """[..., 2]: (log1p(price) / 5, known); an unknown (NaN) or negative price is (0, 0)."""
    known = tf.math.is_finite(price) & (price >= 0)
    return tf.stack([tf.where(known, tf.math.log1p(tf.where(known, price, 0.0)) / 5.0, 0.0),
                     tf.cast(known, tf.float32)], -1)


GAP_BUCKETS = 8  # gap buckets: 1, 2, 3-4, 5-8, ..., >= 65 orders (log2), 0 = padding
EPS = 1e-7


def gap_bucket(gap: tf.Tensor) -> tf.Tensor:
    """Orders before the request → bucket id (0 = padding, 1 = one order, then log2 buckets)."""
    g = tf.cast(tf.maximum(gap, 0), tf.float32)
    b = 1 + tf.cast(tf.math.ceil(tf.math.log(tf.maximum(g, 1.0)) / np.log(2.0)), tf.int32)
    return tf.where(gap > 0, tf.minimum(b, GAP_BUCKETS - 1), 0)


def time_window_mask(gap: tf.Tensor, valid: tf.Tensor, max_window: int) -> tf.Tensor:
    """TransAct's random time-window mask: drops the actions with ``gap <= w``, w ~ U{0..max_window} per row.

    Never drops every action of a row: if the window would empty it, the row keeps its actions.
    """
    b = tf.shape(gap)[0]
    w = tf.random.uniform([b, 1], 0, max_window + 1, dtype=tf.int32)
    keep = valid & (gap > w)
    any_left = tf.reduce_any(keep, axis=1, keepdims=True)
    return tf.where(any_left, keep, valid)


class TransAct(tf.keras.layers.Layer):
    """Early-fused transformer over the recent actions; returns [B, N, (1 + last_tokens) * dim]."""

    def __init__(self, config: RankerConfig, **kwargs):
        super().__init__(**kwargs)
        self.c = config
        d = config.transact_dim
        self.type_embedding = tf.keras.layers.Embedding(len(ACTION_TYPES), d)
        self.gap_embedding = tf.keras.layers.Embedding(GAP_BUCKETS, d)
        self.token_proj = tf.keras.layers.Dense(d)
        self.fuse = tf.keras.layers.Dense(d)
        self.attention = [tf.keras.layers.MultiHeadAttention(config.transact_heads, d // config.transact_heads)
                          for _ in range(config.transact_layers)]
        self.ffn = [tf.keras.Sequential([tf.keras.layers.Dense(2 * d, activation="relu"), tf.keras.layers.Dense(d)])
                    for _ in range(config.transact_layers)]
        self.norm1 = [tf.keras.layers.LayerNormalization() for _ in range(config.transact_layers)]
        self.norm2 = [tf.keras.layers.LayerNormalization() for _ in range(config.transact_layers)]

    def call(self, action_repr, action_type, action_gap, candidate_repr, training=False):
        c = self.c
        valid = action_type > 0                                               # [B, A]
        if training and c.time_window > 0:
            valid = time_window_mask(action_gap, valid, c.time_window)
        tokens = (self.token_proj(action_repr) + self.type_embedding(action_type)
                  + self.gap_embedding(gap_bucket(action_gap)))               # [B, A, d]
        b, n, a = tf.shape(candidate_repr)[0], tf.shape(candidate_repr)[1], tf.shape(tokens)[1]
        tok = tf.broadcast_to(tokens[:, None], [b, n, a, c.transact_dim])
        cand = tf.broadcast_to(candidate_repr[:, :, None], [b, n, a, candidate_repr.shape[-1]])
        x = self.fuse(tf.concat([tok, cand], -1))                             # early fusion [B, N, A, d]
        x = tf.reshape(x, [b * n, a, c.transact_dim])
        mask = tf.reshape(tf.broadcast_to(valid[:, None], [b, n, a]), [b * n, a])
        attn_mask = mask[:, None, :] & mask[:, :, None]
        for att, ffn, n1, n2 in zip(self.attention, self.ffn, self.norm1, self.norm2):
            x = n1(x + att(x, x, attention_mask=attn_mask, training=training))
            x = n2(x + ffn(x))
        m = tf.cast(mask, x.dtype)[..., None]
        pooled = tf.reduce_max(x * m + (m - 1.0) * 1e4, axis=1)               # max over the kept actions
        pooled = tf.where(tf.reduce_any(mask, axis=1, keepdims=True), pooled, tf.zeros_like(pooled))
        last = tf.reshape(x[:, -c.last_tokens:] * m[:, -c.last_tokens:], [b * n, c.last_tokens * c.transact_dim])
        return tf.reshape(tf.concat([pooled, last], -1), [b, n, (1 + c.last_tokens) * c.transact_dim])


class Ranker(tf.keras.Model):
    def __init__(self, config: RankerConfig, items: ItemTables, feature_mean: np.ndarray, feature_std: np.ndarray,
                 **kwargs):
        super().__init__(**kwargs)
        self.c = config
        num_items = items.content.shape[0] - 1
        reg = tf.keras.regularizers.l2(config.l2) if config.l2 else None
        self.id_embedding = tf.keras.layers.Embedding(num_items + 1, config.id_dim, embeddings_regularizer=reg)
        self.content = frozen_table(items.content, tf.float32)
        self.item_category = frozen_table(items.category, tf.int32)
        self.content_proj = tf.keras.layers.Dense(config.content_dim)
        self.category_embedding = tf.keras.layers.Embedding(items.num_categories + 1, config.category_dim)
        self.created_at = frozen_table(items.created_at, tf.int64)
        levels = items.codes.shape[1]
        # one table for every level: level l's code c (or unknown = code_size) is row l * (code_size + 1) + c
        self.codes = frozen_table(items.codes + np.arange(levels, dtype=np.int32) * (items.code_size + 1), tf.int32)
        self.code_embedding = (tf.keras.layers.Embedding(levels * (items.code_size + 1), config.code_dim)
                               if config.semantic_ids and levels else None)
        # brand and price only where the catalogue has them: absent, the model is exactly the one without
        self.item_brand = frozen_table(items.brand, tf.int32) if items.brand is not None else None
        self.brand_embedding = (tf.keras.layers.Embedding(items.num_brands + 1, config.brand_dim)
                                if config.brand and items.brand is not None else None)
        self.price = frozen_table(items.price, tf.float32) if items.price is not None else None
        self.use_price = bool(config.price and items.price is not None)
        self.mean = tf.constant(feature_mean, tf.float32)
        self.std = tf.constant(np.maximum(feature_std, 1e-6), tf.float32)
        # a feature constant in training (e.g. a candidate source the training exposures lacked) stays 0
        # whatever a request sends: its weights were never trained, and x / 1e-6 would swamp the rest
        self.live = tf.constant(np.asarray(feature_std) > 1e-6)
        self.user_proj = tf.keras.layers.Dense(config.user_dim)
        self.transact = TransAct(config) if config.transact else None
        if config.interaction == CROSS:
            self.cross = [tfrs.layers.dcn.Cross(projection_dim=config.projection_dim or None,
                                                kernel_initializer="glorot_uniform")
                          for _ in range(config.cross_layers)]
        else:
            n_fields = (5 + int(self.code_embedding is not None) + int(config.item_age) + int(config.transact)
                        + int(self.brand_embedding is not None) + int(self.use_price))
            self.fields = [tf.keras.layers.Dense(config.fm_dim, use_bias=False) for _ in range(n_fields)]
        self.deep = tf.keras.Sequential(
            [layer for u in config.deep_units for layer in (tf.keras.layers.Dense(u, activation="relu"),
                                                              tf.keras.layers.Dropout(config.dropout))])
        self.ctr_head = tf.keras.layers.Dense(1)
        self.cvr_head = tf.keras.layers.Dense(1)

    def code_repr(self, items: tf.Tensor) -> tf.Tensor:
        """Sum over the levels of the items' Semantic-ID code embeddings [..., code_dim]."""
        return tf.reduce_sum(self.code_embedding(tf.gather(self.codes, items)), -2)

    def item_parts(self, items: tf.Tensor) -> dict:
        """The item representation's parts by name (id, content, category, code, brand when present)."""
        parts = {"id": self.id_embedding(items), "content": self.content_proj(tf.gather(self.content, items)),
                 "category": self.category_embedding(tf.gather(self.item_category, items))}
        if self.code_embedding is not None:
            parts["code"] = self.code_repr(items)
        if self.brand_embedding is not None:
            parts["brand"] = self.brand_embedding(tf.gather(self.item_brand, items))
        return parts

    def item_repr(self, items: tf.Tensor) -> tf.Tensor:
        return tf.concat(list(self.item_parts(items).values()), -1)

    def call(self, inputs: dict, training: bool = False) -> dict:
        c = self.c
        items = inputs["items"]
        n = tf.shape(items)[1]
        parts = self.item_parts(items)                                         # each [B, N, d], computed once
        dense = tf.where(self.live, (inputs["features"] - self.mean) / self.std, 0.0)  # [B, N, F]
        user = self.user_proj(inputs["user_vector"])                            # [B, du]
        user = tf.broadcast_to(user[:, None], [tf.shape(items)[0], n, c.user_dim])
        fields = [parts["id"], parts["content"], parts["category"], dense, user]
        if "code" in parts:
            fields.append(parts["code"])
        if c.item_age:
            fields.append(item_age(tf.gather(self.created_at, items), inputs["request_time"][:, None]))
        if "brand" in parts:
            fields.append(parts["brand"])
        if self.use_price:
            fields.append(price_feature(tf.gather(self.price, items)))
        if self.transact is not None:
            cand = tf.concat(list(parts.values()), -1)                         # [B, N, dc]
            fields.append(self.transact(self.item_repr(inputs["actions"]), inputs["action_type"],
                                        inputs["action_gap"], cand, training=training))
        x0 = tf.concat(fields, -1)
        fm = 0.0
        if c.interaction == CROSS:
            x = x0
            for layer in self.cross:
                x = layer(x0, x)
            h = self.deep(tf.concat([x, x0], -1) if c.structure == PARALLEL else x, training=training)
            if c.structure == PARALLEL:
                h = tf.concat([h, x], -1)
        else:
            v = tf.stack([proj(f) for proj, f in zip(self.fields, fields)], axis=-2)  # [B, N, fields, k]
            fm = 0.5 * tf.reduce_sum(tf.square(tf.reduce_sum(v, -2)) - tf.reduce_sum(tf.square(v), -2), -1)
            h = self.deep(x0, training=training)
        ctr_logit = tf.squeeze(self.ctr_head(h), -1) + fm
        cvr_logit = tf.squeeze(self.cvr_head(h), -1) + fm
        pctr, pcvr = tf.sigmoid(ctr_logit), tf.sigmoid(cvr_logit)
        return {"ctr_logit": ctr_logit, "cvr_logit": cvr_logit, "pctr": pctr, "pcvr": pcvr, "pctcvr": pctr * pcvr}


def esmm_loss(out: dict, click: tf.Tensor, conversion: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """BCE(click, pCTR) + BCE(conversion, pCTR x pCVR), averaged over the real exposures."""
    m = tf.cast(mask, tf.float32)
    ctr = tf.nn.sigmoid_cross_entropy_with_logits(labels=click, logits=out["ctr_logit"])
    p = tf.clip_by_value(out["pctcvr"], EPS, 1.0 - EPS)
    ctcvr = -(conversion * tf.math.log(p) + (1.0 - conversion) * tf.math.log(1.0 - p))
    return tf.reduce_sum((ctr + ctcvr) * m) / tf.maximum(tf.reduce_sum(m), 1.0)


def final_score(pctr, pcvr, cvr_power: float):
    """The served score: pCTR x pCVR ** cvr_power (cvr_power chosen on validation)."""
    return pctr * tf.pow(tf.maximum(pcvr, EPS), cvr_power) if cvr_power else pctr
