"""save_trained / load_trained: an exact round trip, and a config that does not fit the weights is refused."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from trainer import dual_head as D

from .helpers import SASREC, SMALL, encode, make_data, make_items, make_model


def _save(tmp_path, **over):
    items = make_items()
    model = make_model(items, **over)
    out = str(tmp_path / "trained")
    D.save_trained(D.TrainResult(model, [{"epoch": 1}], 1), items, model.config, out, {"default_event": "purchase"})
    return model, items, out


@pytest.mark.parametrize("over", [{}, SASREC], ids=["dual_head", "sasrec"])
def test_round_trip_restores_every_weight(tmp_path, over):
    model, items, out = _save(tmp_path, **over)
    loaded, loaded_items, info = D.load_trained(out)
    assert info["default_event"] == "purchase" and info["best_epoch"] == 1 and loaded.config == model.config
    assert loaded_items.item_ids.tolist() == items.item_ids.tolist()
    assert len(loaded.weights) == len(model.weights)
    for got, want in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)
    data = make_data(items, rows=3)
    np.testing.assert_array_equal(loaded.user_vector(*encode(loaded, data)).numpy(),
                                  model.user_vector(*encode(model, data)).numpy())


@pytest.mark.parametrize("change, message", [
    ({"encoder_layers": 2}, r"not in the checkpoint \(16\): encoder/1/attention/"),
    ({"id_residual": False}, r"in the checkpoint but not in the model \(1\): item_block/id_embedding/embeddings"),
    ({"decoder_layers": 0, "distill_weight": 0.0}, r"in the checkpoint but not in the model \(\d+\): generative_head/"),
    ({"ff_dim": 64}, r"shape mismatch \(\d+\): encoder/0/ff/layer_with_weights-0/bias: saved \[32\], model \[64\]"),
], ids=["more_layers", "no_id_residual", "no_generative_head", "wider_feed_forward"])
def test_a_config_that_does_not_fit_the_weights_is_refused_naming_them(tmp_path, change, message):
    _, _, out = _save(tmp_path)
    path = os.path.join(out, D.TRAIN_INFO)
    info = json.load(open(path))
    info["config"].update(change)
    json.dump(info, open(path, "w"))
    with pytest.raises(D.WeightsMismatchError, match=message):
        D.load_trained(out)


def test_config_changes_that_need_no_other_weights_still_load(tmp_path):
    model, _, out = _save(tmp_path)
    path = os.path.join(out, D.TRAIN_INFO)
    info = json.load(open(path))
    info["config"].update(memory_recent=1, beam_width=5)
    json.dump(info, open(path, "w"))
    loaded, _, _ = D.load_trained(out)
    assert loaded.config.memory_recent == 1
    for got, want in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)
