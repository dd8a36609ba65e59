"""``GraphConfig``: every hyperparameter of the graph retriever, validated."""
from __future__ import annotations

from dataclasses import dataclass

from recsys import features as F
from trainer import base

ULTRAGCN = "ultragcn"
LIGHTGCN = "lightgcn"
VARIANTS = (ULTRAGCN, LIGHTGCN)
L2_SCOPES = ("all", "batch")
OPTIMIZERS = ("adam", "lazy_adam")


@dataclass(frozen=True)
class GraphConfig:
    """Hyperparameters. ``variant`` switches the objective on the same graph and item space.

    Defaults were chosen on MovieLens-100K **validation** NDCG@10 (``docs/graph_retrieval.md``):
    the official UltraGCN ML-1M setting (``w1 = w3 = 1e-7``, 200 negatives x 200, item weight
    1e-3, lr 1e-3) reached 0.0622 after 22 epochs at lr 1e-2; 50 negatives per edge at lr 1e-2
    0.0815 at epoch 14 (one seed; 0.0713 mean of 3 seeds with smoothed selection). Then, over 3 seeds:
    200 negatives shared by the batch at lr 3e-3 0.0763 (50 shared at lr 3e-3 0.0725, at lr 1e-2
    0.0691; 200 with negative weight 30 0.0769, not kept: no clear gain for one more change). L2 on the rows a
    step touches (``l2_scope="batch"``) 0.0766 against 0.0763 over every row: kept, because a step then costs
    the same on any graph size (``benchmarks/graph_epoch_cost.py``).
    ``count_weight`` 1.0 was chosen on Instacart validation (0.2411 against 0.1754 without; MovieLens has
    one event per edge, so it changes nothing there).

    * ``ultragcn``: constraint loss (weights ``w1 + w2 * beta`` on positives, ``w3 + w4 * beta``
      on ``negatives`` uniform negatives times ``negative_weight``), item–item constraint
      (``item_weight``), L2 (``l2``); one edge stream over every behaviour in ``behaviours``,
      auxiliary behaviours scored through a learned diagonal relation and weighted ``aux_weight``.
    * ``lightgcn``: ``layers`` rounds of symmetric-normalised propagation over all edges (behaviours
      collapsed, binary), layer mean, BPR with one uniform negative, L2 ``l2`` on the batch's layer-0
      embeddings (LightGCN, He et al. SIGIR 2020; RecBole's defaults).
    * ``semantic_init``: items = learned linear map of their content embedding + a free residual
      (zero at start); users start as the mean of their items. Off: free embeddings, N(0, init_std).
    """

    variant: str = ULTRAGCN
    embedding_dim: int = 128
    behaviours: tuple[str, ...] = F.INTERACTION_TYPES  # edge types used (the target is always used)
    aux_weight: float = 1.0
    target_aligned: bool = True  # False: every behaviour is scored by the same dot product (no relations)
    count_weight: float = 1.0  # edge weight x (1 + c * log(events on the edge)): repeat purchases count more
    recency_weight: float = 0.8  # edge weight = (1 - r) + r * mean recency of the edge's events (0: binary edges)
    semantic_init: bool = True
    init_std: float = 1e-3
    # UltraGCN
    negatives: int = 200
    shared_negatives: bool = True  # one uniform negative set per batch (one [B, D] x [D, M] matmul) instead of per edge
    negative_weight: float = 10.0
    w1: float = 1.0
    w2: float = 1.0
    w3: float = 1.0
    w4: float = 1.0
    item_weight: float = 1.0
    neighbours: int = 10
    l2: float = 1e-4
    l2_scope: str = "batch"  # "batch": the rows the step touches; "all": every table row each step (UltraGCN's code)
    # LightGCN
    layers: int = 2
    # optimisation
    learning_rate: float = 3e-3
    optimizer: str = "adam"  # "lazy_adam": moments and updates only on the rows a step touches (O(batch) a step)
    batch_size: int = 1024
    max_epochs: int = 200
    patience: int = 8
    select_window: int = 3  # epochs are compared by the mean validation NDCG@10 of the last this many evaluations
    eval_every: int = 1
    session_items: int = 5  # recent items the session-shift default is tuned with
    # validation users that model selection ranks the catalogue for (every evaluated epoch and the 18 session-shift
    # settings): 0 = every one; > 0 a uniform sample of that many (``data.sample_eval_rows``; issue 14: at 8,756
    # users × 20,000 items the session grid alone took minutes, and it grows with users × items)
    val_users: int = 0
    max_steps_per_epoch: int = 0  # > 0: each epoch stops after that many batches (scale probes; 0 = every batch)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"GraphConfig.variant must be one of {VARIANTS}, got {self.variant!r}")
        unknown = set(self.behaviours) - set(F.INTERACTION_TYPES)
        if unknown:
            raise ValueError(f"GraphConfig.behaviours: unknown {sorted(unknown)}; known {F.INTERACTION_TYPES}")
        if F.TARGET_BEHAVIOUR not in self.behaviours:
            raise ValueError(f"GraphConfig.behaviours must include the target behaviour {F.TARGET_BEHAVIOUR!r}")
        for f in ("embedding_dim", "negatives", "batch_size", "max_epochs", "patience", "eval_every", "layers",
                  "session_items", "select_window"):
            if getattr(self, f) <= 0:
                raise ValueError(f"GraphConfig.{f} must be positive, got {getattr(self, f)}")
        if not 0.0 <= self.recency_weight <= 1.0:
            raise ValueError(f"GraphConfig.recency_weight must be in [0, 1], got {self.recency_weight}")
        for f in ("aux_weight", "count_weight", "init_std", "negative_weight", "w1", "w2", "w3", "w4", "item_weight", "l2"):
            if getattr(self, f) < 0:
                raise ValueError(f"GraphConfig.{f} must be >= 0, got {getattr(self, f)}")
        if self.l2_scope not in L2_SCOPES:
            raise ValueError(f"GraphConfig.l2_scope must be one of {L2_SCOPES}, got {self.l2_scope!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"GraphConfig.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.val_users < 0:
            raise ValueError(f"GraphConfig.val_users must be >= 0 (0 = every validation user), got {self.val_users}")
        if self.max_steps_per_epoch < 0:
            raise ValueError(f"GraphConfig.max_steps_per_epoch must be >= 0 (0 = every batch), "
                             f"got {self.max_steps_per_epoch}")
        if self.learning_rate <= 0:
            raise ValueError(f"GraphConfig.learning_rate must be positive, got {self.learning_rate}")

    @classmethod
    def from_dict(cls, values: dict | None) -> "GraphConfig":
        values = dict(values or {})
        if "behaviours" in values:
            values["behaviours"] = tuple(values["behaviours"])
        return base.config_from_dict(cls, values, "graph")
