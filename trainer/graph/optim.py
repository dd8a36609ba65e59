"""``LazyAdam``: Adam whose moments and updates touch only the rows a sparse gradient names.

Keras's Adam decays both moments and moves **every** row of an embedding table at every step, even when
the gradient is an ``IndexedSlices`` over a batch's rows: a step costs O(table rows), an epoch
O(edges x (users + items)). LazyAdam (TF1's ``tf.contrib.opt.LazyAdamOptimizer``, TF Addons'
``LazyAdam``) updates a row's moments and value only on the steps whose gradient names it, so a step
costs O(batch). On dense gradients it is Keras's Adam exactly (same bias correction and epsilon).
"""
from __future__ import annotations

import tensorflow as tf


class LazyAdam(tf.Module):
    def __init__(self, learning_rate: float, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7):
        super().__init__()
        self.learning_rate, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self._slots: dict[int, tuple[tf.Variable, tf.Variable]] = {}

    def build(self, variables) -> None:
        for v in variables:
            if id(v) not in self._slots:
                self._slots[id(v)] = (tf.Variable(tf.zeros_like(v), trainable=False, name=f"{v.name.split(':')[0]}_m"),
                                      tf.Variable(tf.zeros_like(v), trainable=False, name=f"{v.name.split(':')[0]}_v"))

    def apply_gradients(self, grads_and_vars) -> None:
        step = tf.cast(self.iterations.assign_add(1), tf.float32)
        b1, b2 = self.beta_1, self.beta_2
        alpha = self.learning_rate * tf.sqrt(1.0 - tf.pow(b2, step)) / (1.0 - tf.pow(b1, step))
        for grad, var in grads_and_vars:
            if grad is None:
                continue
            m, v = self._slots[id(var)]
            if isinstance(grad, tf.IndexedSlices):
                rows, at = tf.unique(grad.indices)                       # duplicates summed, as a dense gradient
                g = tf.math.unsorted_segment_sum(grad.values, at, tf.shape(rows)[0])
                m_rows = b1 * tf.gather(m, rows) + (1.0 - b1) * g
                v_rows = b2 * tf.gather(v, rows) + (1.0 - b2) * tf.square(g)
                m.scatter_update(tf.IndexedSlices(m_rows, rows))
                v.scatter_update(tf.IndexedSlices(v_rows, rows))
                var.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))
            else:
                m.assign(b1 * m + (1.0 - b1) * grad)
                v.assign(b2 * v + (1.0 - b2) * tf.square(grad))
                var.assign_sub(alpha * m / (tf.sqrt(v) + self.epsilon))
