"""Saving and loading a trained ranker: config, tables and weights (the exporter rebuilds the model)."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from trainer.ranker.config import RankerConfig
from trainer.ranker.data import ItemTables
from trainer.ranker.model import Ranker
from transform import fileio

CONFIG_FILE, TABLES_FILE, WEIGHTS = "ranker_config.json", "ranker_tables.npz", "weights/ranker"


@dataclass
class TrainedRanker:
    model: Ranker
    config: RankerConfig
    item_ids: np.ndarray       # str [I] catalogue order (index I = padding/unknown)
    popularity: np.ndarray     # int64 [I] training interactions of the served retrievers' data
    cvr_power: float
    info: dict


def dummy_inputs(num_items: int, features: int, actions: int, user_dim: int) -> dict:
    return {"items": tf.fill([1, 2], num_items), "features": tf.zeros([1, 2, features]),
            "actions": tf.fill([1, actions], num_items), "action_type": tf.zeros([1, actions], tf.int32),
            "action_gap": tf.zeros([1, actions], tf.int32), "user_vector": tf.zeros([1, user_dim]),
            "request_time": tf.zeros([1], tf.int64)}


def save_trained(model: Ranker, config: RankerConfig, item_ids, popularity, categories, items: ItemTables,
                 cvr_power: float, user_dim: int, info: dict, export_dir: str) -> None:
    fileio.makedirs(export_dir)
    model.save_weights(os.path.join(export_dir, WEIGHTS))
    brand = {} if items.brand is None else {"brand": np.asarray(items.brand, np.int32),
                                             "num_brands": np.int64(items.num_brands)}
    price = {} if items.price is None else {"price": np.asarray(items.price, np.float32)}
    fileio.save_npz(os.path.join(export_dir, TABLES_FILE), item_ids=np.asarray(item_ids, dtype=object).astype(str),
                    popularity=np.asarray(popularity, np.int64),
                    categories=np.asarray(categories, dtype=object).astype(str),
                    item_category=np.asarray(items.category, np.int32), content=np.asarray(items.content, np.float32),
                    codes=np.asarray(items.codes, np.int32), code_size=np.int64(items.code_size),
                    created_at=np.asarray(items.created_at, np.int64), mean=model.mean.numpy(), std=model.std.numpy(),
                    **brand, **price)
    fileio.write_json(os.path.join(export_dir, CONFIG_FILE),
                             {"config": asdict(config), "cvr_power": cvr_power, "user_dim": user_dim, "info": info},
                             indent=1, default=float)


def load_trained(export_dir: str) -> TrainedRanker:
    meta = fileio.read_json(os.path.join(export_dir, CONFIG_FILE))
    config = RankerConfig.from_dict(meta["config"])
    t = fileio.load_npz(os.path.join(export_dir, TABLES_FILE))
    items = ItemTables(t["content"], t["item_category"], len(t["categories"]), t["codes"], int(t["code_size"]),
                              t["created_at"], t["brand"] if "brand" in t else None,
                              int(t["num_brands"]) if "num_brands" in t else 0, t["price"] if "price" in t else None)
    model = Ranker(config, items, t["mean"], t["std"])
    model(dummy_inputs(t["content"].shape[0] - 1, t["mean"].shape[0], config.actions, meta["user_dim"]))
    model.load_weights(os.path.join(export_dir, WEIGHTS)).expect_partial()
    return TrainedRanker(model, config, t["item_ids"], t["popularity"], float(meta["cvr_power"]),
                                dict(meta["info"], categories=t["categories"].tolist(), user_dim=meta["user_dim"]))
