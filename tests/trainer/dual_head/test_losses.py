"""The objectives' exact values."""
import numpy as np
import pytest
import tensorflow as tf

from trainer import dual_head as D


def test_multi_positive_infonce_exact_value():
    logits = tf.constant([[2.0, 1.0, 0.0, -1.0]])
    is_pos = tf.constant([[True, True, False, False]])
    valid = tf.constant([[True, True, True, False]])  # the last column is padding
    got = float(D.multi_positive_infonce(logits, is_pos, valid))
    neg = np.log(np.exp(0.0))  # the only valid negative
    want = np.mean([np.log1p(np.exp(neg - 2.0)), np.log1p(np.exp(neg - 1.0))])
    assert got == pytest.approx(want, rel=1e-6)


def test_infonce_skips_rows_without_positive():
    logits = tf.constant([[2.0, 0.0], [5.0, 1.0]])
    is_pos = tf.constant([[True, False], [False, False]])
    got = float(D.multi_positive_infonce(logits, is_pos, tf.ones([2, 2], tf.bool)))
    assert got == pytest.approx(np.log1p(np.exp(-2.0)), rel=1e-6)


def test_listmle_exact_value_and_kl_zero_on_agreement():
    teacher = tf.constant([[0.0, 3.0, 1.0]])
    student = tf.constant([[0.5, 1.0, 2.0]])
    # teacher order: 1, 2, 0 → student scores 1.0, 2.0, 0.5
    s = np.array([1.0, 2.0, 0.5])
    want = np.mean([np.log(np.exp(s[i:]).sum()) - s[i] for i in range(3)])
    assert float(D.listmle(teacher, student)) == pytest.approx(want, rel=1e-6)
    assert float(D.distillation_kl(student * 2.0, student, 2.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(D.distillation_kl(teacher, student, 1.0)) > 0.0
