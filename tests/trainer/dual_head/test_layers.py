"""TransformerBlock: Keras config round trip."""
import numpy as np
import tensorflow as tf

from trainer import dual_head as D


def test_transformer_block_config_round_trip_gives_the_same_outputs():
    tf.keras.utils.set_random_seed(0)
    block = D.TransformerBlock(8, 2, 16, 0.1, name="block")
    x = tf.random.normal([2, 3, 8])
    mask = tf.constant([[[True, True, False]] * 3, [[True, True, True]] * 3])
    want = block(x, mask).numpy()
    config = block.get_config()
    assert {k: config[k] for k in ("d_model", "num_heads", "ff_dim", "dropout", "name")} == {
        "d_model": 8, "num_heads": 2, "ff_dim": 16, "dropout": 0.1, "name": "block"}
    clone = D.TransformerBlock.from_config(config)
    clone(x, mask)
    clone.set_weights(block.get_weights())
    np.testing.assert_array_equal(clone(x, mask).numpy(), want)
