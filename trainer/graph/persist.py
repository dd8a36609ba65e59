"""The trained graph retriever on disk: served vectors, content map, config and training log.

``graph_model.npz``: ``user_ids`` [U], ``user_vectors`` [U, D], ``item_ids`` [N],
``item_vectors`` [N, D], ``content_map`` [Dc, D] (empty without semantic init),
``content_scale`` (LightGCN's layer mean divides a new item's vector by layers + 1).
``train_info.json``: config, per-epoch log, best epoch, timing, session-shift weight.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import numpy as np

from trainer.graph.config import LIGHTGCN, GraphConfig

VECTORS_FILE = "graph_model.npz"
INFO_FILE = "train_info.json"


@dataclass(frozen=True)
class TrainedGraph:
    user_ids: np.ndarray
    user_vectors: np.ndarray
    item_ids: np.ndarray
    item_vectors: np.ndarray
    content_map: np.ndarray   # [Dc, D] or [0, D]
    content_scale: float
    info: dict

    @property
    def session_weight(self) -> float:
        return float(self.info["session_weight"])


def save_trained(result, graph, config: GraphConfig, out_dir: str, extra: dict | None = None) -> TrainedGraph:
    os.makedirs(out_dir, exist_ok=True)
    model = result.model
    cmap = model.content_map.numpy() if model.semantic else np.zeros((0, config.embedding_dim), np.float32)
    scale = 1.0 / (config.layers + 1) if config.variant == LIGHTGCN else 1.0
    np.savez(os.path.join(out_dir, VECTORS_FILE), user_ids=graph.user_ids.astype(str),
             user_vectors=result.users.astype(np.float32), item_ids=graph.item_ids.astype(str),
             item_vectors=result.items.astype(np.float32), content_map=cmap.astype(np.float32),
             content_scale=np.float32(scale))
    info = {"model": "graph_retrieval", "config": asdict(config), "best_epoch": result.best_epoch,
            "best_validation": result.best_val, "log": result.log, "seconds_per_epoch": round(result.seconds_per_epoch, 3),
            "wall_s": round(result.wall_s, 1), "session_weight": result.session_weight,
            "session_validation_ndcg": result.session_val, **(extra or {})}
    with open(os.path.join(out_dir, INFO_FILE), "w") as f:
        json.dump(info, f, indent=1)
    return load_trained(out_dir)


def load_trained(out_dir: str) -> TrainedGraph:
    with np.load(os.path.join(out_dir, VECTORS_FILE), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    with open(os.path.join(out_dir, INFO_FILE)) as f:
        info = json.load(f)
    return TrainedGraph(arrays["user_ids"].astype(object), arrays["user_vectors"], arrays["item_ids"].astype(object),
                        arrays["item_vectors"], arrays["content_map"], float(arrays["content_scale"]), info)
