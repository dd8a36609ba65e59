"""DualHeadModel: Keras config round trip and its variable groups."""
import json

import numpy as np
import pytest
import tensorflow as tf

from trainer import dual_head as D

from .helpers import SASREC, SMALL, encode, make_data, make_items, make_model


def _outputs(model, data):
    states, mask = encode(model, data)
    out = {"user": model.user_vector(states, mask), "items": model.item_vectors(tf.range(model.num_items))}
    if model.generative:
        out["teacher"] = model.code_log_likelihood(model.memory(states, mask),
                                                   tf.tile(tf.range(model.num_items)[None], [len(data.history), 1]))
    return {k: v.numpy() for k, v in out.items()}


@pytest.mark.parametrize("over", [{}, {"memory_recent": 2, "id_residual": False}, SASREC],
                         ids=["dual_head", "no_residual_recent_memory", "sasrec"])
def test_get_config_from_config_round_trip_gives_the_same_outputs(over):
    items = make_items()
    data = make_data(items, rows=4)
    model = make_model(items, **over)
    config = json.loads(json.dumps(model.get_config()))  # plain JSON
    tf.keras.utils.set_random_seed(1)  # other initial values: only set_weights makes the outputs equal
    clone = D.DualHeadModel.from_config(config)
    assert clone.config == model.config and type(clone.item_block) is type(model.item_block)
    assert clone.get_config() == config
    clone.build_variables()
    want = _outputs(model, data)
    assert not np.allclose(_outputs(clone, data)["user"], want["user"])
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]
    clone.set_weights(model.get_weights())
    got = _outputs(clone, data)
    assert set(got) == ({"user", "items", "teacher"} if model.generative else {"user", "items"})
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_variable_groups_partition_the_trainable_variables():
    model = make_model(make_items())
    groups = model.variable_groups()
    assert list(groups) == ["item_input", "encoder", "user_head", "item_head", "generative_head"]
    assert all(groups.values())
    assert sum(len(g) for g in groups.values()) == len(model.trainable_variables)
    block, head = model.item_block, model.generative_head
    assert {id(v) for v in groups["item_head"]} == {id(v) for v in block.mapping.trainable_variables}
    assert {id(v) for v in groups["generative_head"]} == {id(v) for v in head.trainable_variables}
    assert {id(v) for v in groups["user_head"]} == {id(v) for v in model.user_mlp.trainable_variables}


def test_the_item_block_can_be_passed_as_a_class_and_is_recorded_by_name():
    items = make_items()
    config = D.DualHeadConfig(**{**SMALL, **SASREC})
    model = D.DualHeadModel(items, config, item_block=D.FreeIdItems)
    assert isinstance(model.item_block, D.FreeIdItems) and model.get_config()["item_block"] == "sasrec"
    assert isinstance(D.DualHeadModel(items, config, item_block="sasrec").item_block, D.FreeIdItems)
    with pytest.raises(ValueError, match="unknown item block 'bert4rec'"):
        D.DualHeadModel.from_config(dict(model.get_config(), item_block="bert4rec"))
