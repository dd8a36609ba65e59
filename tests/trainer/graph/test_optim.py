"""LazyAdam: Keras's Adam on dense gradients; on sparse ones only the named rows move."""
import numpy as np
import tensorflow as tf

from trainer.graph.optim import LazyAdam


def _run(opt, grads):
    var = tf.Variable(np.arange(12, dtype=np.float32).reshape(4, 3) / 7)
    opt.build([var])
    for g in grads:
        opt.apply_gradients([(g, var)])
    return var.numpy()


def test_dense_gradients_follow_keras_adam_exactly():
    rng = np.random.default_rng(0)
    grads = [tf.constant(rng.normal(size=(4, 3)).astype(np.float32)) for _ in range(5)]
    np.testing.assert_allclose(_run(LazyAdam(0.01), grads), _run(tf.keras.optimizers.Adam(0.01), grads), rtol=1e-5,
                               atol=1e-7)


def test_sparse_gradients_move_only_the_named_rows_and_sum_duplicates():
    rng = np.random.default_rng(1)
    start = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    values = [rng.normal(size=(3, 3)).astype(np.float32) for _ in range(4)]
    # every step names row 1 twice and row 3 once: rows 0 and 2 never move
    sparse = [tf.IndexedSlices(tf.constant(v), tf.constant([1, 3, 1])) for v in values]
    got = _run(LazyAdam(0.01), sparse)
    np.testing.assert_array_equal(got[[0, 2]], start[[0, 2]])
    # rows named at every step move as Adam does on the dense sum of their gradients
    dense = [tf.constant(np.stack([np.zeros(3), v[0] + v[2], np.zeros(3), v[1]]).astype(np.float32)) for v in values]
    want = _run(tf.keras.optimizers.Adam(0.01), dense)
    np.testing.assert_allclose(got[[1, 3]], want[[1, 3]], rtol=1e-5, atol=1e-7)
