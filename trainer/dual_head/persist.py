"""Saving a trained model (weights + config + item space) and rebuilding it, every weight checked."""
from __future__ import annotations

import os
from dataclasses import asdict

import tensorflow as tf

from trainer.dual_head.config import DualHeadConfig
from trainer.dual_head.data import ItemSpace
from trainer.dual_head.model import DualHeadModel
from trainer.dual_head.training import TrainResult
from transform import fileio

TRAIN_INFO = "dual_head.json"
WEIGHTS = "weights"
ITEMS_FILE = "items.npz"
_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"


class WeightsMismatchError(ValueError):
    """The saved weights do not fit the model rebuilt from the saved config."""


def save_trained(result: TrainResult, items: ItemSpace, config: DualHeadConfig, out_dir: str, extra: dict) -> None:
    """Weights + config + item space: everything ``load_trained`` needs to rebuild the model."""
    fileio.makedirs(out_dir)
    result.model.save_weights(os.path.join(out_dir, WEIGHTS, "model"))
    fileio.save_npz(os.path.join(out_dir, ITEMS_FILE), item_ids=items.item_ids.astype(str), codes=items.codes,
                    content=items.content, category=items.category, train_count=items.train_count)
    fileio.write_json(os.path.join(out_dir, TRAIN_INFO),
                      {"config": asdict(config), "log": result.log, "best_epoch": result.best_epoch, **extra}, indent=1)


def load_trained(out_dir: str) -> tuple[DualHeadModel, ItemSpace, dict]:
    """(model with its trained weights, item space, the saved info); ``WeightsMismatchError`` unless
    every weight of the rebuilt model is restored and every saved weight is used."""
    info = fileio.read_json(os.path.join(out_dir, TRAIN_INFO))
    z = fileio.load_npz(os.path.join(out_dir, ITEMS_FILE))
    items = ItemSpace(z["item_ids"].astype(object), z["codes"], z["content"], z["category"], z["train_count"])
    model = DualHeadModel(items, DualHeadConfig.from_dict(info["config"]))
    restore_weights(model, os.path.join(out_dir, WEIGHTS, "model"))
    return model, items, info


def _weights_of(prefix: str) -> dict[str, list]:
    """Checkpoint variable path → shape (the object-graph path, e.g. ``encoder/0/ff/layer_with_weights-0/kernel``)."""
    return {name[: -len(_VALUE)]: shape for name, shape in tf.train.list_variables(prefix) if name.endswith(_VALUE)}


def expected_weights(model: DualHeadModel) -> dict[str, list]:
    """What a checkpoint of ``model`` (built) holds: variable path → shape."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        model.save_weights(os.path.join(tmp, "model"))
        return _weights_of(os.path.join(tmp, "model"))


def _listing(what: str, entries: list, show: int = 12) -> str:
    if not entries:
        return ""
    more = f", ... and {len(entries) - show} more" if len(entries) > show else ""
    return f"\n  {what} ({len(entries)}): " + "; ".join(entries[:show]) + more


def restore_weights(model: DualHeadModel, prefix: str) -> None:
    """Builds ``model`` and restores the checkpoint ``prefix`` into it, checking that the checkpoint holds
    exactly the model's weights (same paths, same shapes) and that every one was restored."""
    model.build_variables()
    want, have = expected_weights(model), _weights_of(prefix)
    missing = sorted(set(want) - set(have))
    unused = sorted(set(have) - set(want))
    shapes = sorted(f"{k}: saved {have[k]}, model {want[k]}" for k in set(want) & set(have) if have[k] != want[k])
    if missing or unused or shapes:
        raise WeightsMismatchError(
            f"the weights in {prefix} do not fit the model rebuilt from its config "
            f"(variant {model.config.variant!r}, {len(want)} weights):"
            + _listing("not in the checkpoint", missing) + _listing("in the checkpoint but not in the model", unused)
            + _listing("shape mismatch", shapes))
    status = model.load_weights(prefix)
    try:
        status.assert_consumed()  # every model variable got a value, every saved value found its variable
    except AssertionError as e:
        raise WeightsMismatchError(f"restoring {prefix} left weights unmatched: {e}") from e
