"""The trained graph retriever on disk: served vectors, content map, config and training log.

``graph_model.npz``: ``user_ids`` [U], ``user_vectors`` [U, D], ``item_ids`` [N],
``item_vectors`` [N, D], ``query_vectors`` [N, D] (what an item adds to a session or anonymous
query, ``training.query_item_vectors``), ``content_map`` [Dc, D] (empty without semantic init),
``content_scale`` (LightGCN's layer mean divides a new item's vector by layers + 1).
``train_info.json``: config, per-epoch log, best epoch, timing, session-shift weight and item query
self-weight.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from trainer.graph.config import LIGHTGCN, GraphConfig
from transform import fileio

VECTORS_FILE = "graph_model.npz"
INFO_FILE = "train_info.json"


@dataclass(frozen=True)
class TrainedGraph:
    user_ids: np.ndarray
    user_vectors: np.ndarray
    item_ids: np.ndarray
    item_vectors: np.ndarray
    query_vectors: np.ndarray  # [N, D] item vectors as queries (session shift, anonymous history)
    content_map: np.ndarray   # [Dc, D] or [0, D]
    content_scale: float
    info: dict

    @property
    def session_weight(self) -> float:
        return float(self.info["session_weight"])


def save_trained(result, graph, config: GraphConfig, out_dir: str, extra: dict | None = None) -> TrainedGraph:
    fileio.makedirs(out_dir)
    model = result.model
    cmap = model.content_map.numpy() if model.semantic else np.zeros((0, config.embedding_dim), np.float32)
    scale = 1.0 / (config.layers + 1) if config.variant == LIGHTGCN else 1.0
    fileio.save_npz(os.path.join(out_dir, VECTORS_FILE), user_ids=graph.user_ids.astype(str),
                    user_vectors=result.users.astype(np.float32), item_ids=graph.item_ids.astype(str),
                    item_vectors=result.items.astype(np.float32), query_vectors=result.query_items.astype(np.float32),
                    content_map=cmap.astype(np.float32),
                    content_scale=np.float32(scale))
    info = {"model": "graph_retrieval", "config": asdict(config), "best_epoch": result.best_epoch,
            "best_validation": result.best_val, "log": result.log, "seconds_per_epoch": round(result.seconds_per_epoch, 3),
            "wall_s": round(result.wall_s, 1), "session_weight": result.session_weight,
            "query_self_weight": result.query_self_weight, "session_validation_ndcg": result.session_val, **(extra or {})}
    fileio.write_json(os.path.join(out_dir, INFO_FILE), info, indent=1)
    return load_trained(out_dir)


def load_trained(out_dir: str) -> TrainedGraph:
    arrays = fileio.load_npz(os.path.join(out_dir, VECTORS_FILE))
    info = fileio.read_json(os.path.join(out_dir, INFO_FILE))
    return TrainedGraph(arrays["user_ids"].astype(object), arrays["user_vectors"], arrays["item_ids"].astype(object),
                        arrays["item_vectors"], arrays["query_vectors"], arrays["content_map"], float(arrays["content_scale"]), info)
