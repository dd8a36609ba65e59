"""The training objectives (pure functions of score tensors): multi-positive InfoNCE, distillation KL, ListMLE."""
from __future__ import annotations

import tensorflow as tf


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
