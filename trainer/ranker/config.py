"""``RankerConfig``: every hyperparameter of the ranker family, validated."""
from __future__ import annotations

from dataclasses import dataclass

from trainer import base

CROSS = "cross"    # DCN-v2 cross network
DEEPFM = "deepfm"  # factorisation-machine interaction (DeepFM)
INTERACTIONS = (CROSS, DEEPFM)
STACKED, PARALLEL = "stacked", "parallel"


@dataclass(frozen=True)
class RankerConfig:
    """Hyperparameters.

    * ``interaction``: ``cross`` (DCN-v2: ``cross_layers`` TFRS ``Cross`` layers, low-rank
      ``projection_dim`` when > 0, the deep tower ``stacked`` on them or ``parallel`` to them) or
      ``deepfm`` (pairwise FM over the feature fields + the deep tower).
    * ``transact``: the TransAct block over the user's ``actions`` most recent actions (early fusion
      of the candidate into every token, ``transact_layers`` transformer layers, output = max-pool +
      the ``last_tokens`` most recent tokens); ``time_window`` > 0 masks, in training, every action
      within a random window of 0..``time_window`` orders before the request (never the whole history).
    * ``semantic_ids``: the item representation adds the sum of one ``code_dim`` embedding per
      Semantic-ID level; ``item_age``: the item's age at the request (log1p days, known flag);
      ``brand`` (a ``brand_dim`` embedding) and ``price`` (log1p, known flag): used where the
      catalogue has any brand / price, absent otherwise.
    * ``negatives``: negatives sampled per training unit each epoch (every positive is kept).
    * ESMM: losses BCE(click, pCTR) + BCE(conversion, pCTR x pCVR); the served score is
      pCTR x pCVR ** ``cvr_power`` with the power chosen on validation from ``cvr_powers``.
    * ``stream_above_mb``: ``RankerTrainer`` reads the training exposures as a stream
      (``data.ExposureStream``: a ``shuffle_buffer``-unit shuffle buffer instead of a permutation of all
      units) when the train split's records exceed this many MB on disk (gzip; the padded arrays in memory
      are about 12x that); below it (MovieLens, Instacart) every unit is held in memory. 0 = always stream.
    * ``val_users``: > 0 validates each epoch (and so picks the best one) on the units of that many users
      drawn as the evaluators' ``--eval-users`` draws them (``examples_io.sampled_users``); 0 = every unit.
    """

    interaction: str = CROSS
    cross_layers: int = 2
    projection_dim: int = 0
    structure: str = STACKED
    deep_units: tuple[int, ...] = (128, 64)
    id_dim: int = 32
    content_dim: int = 32
    category_dim: int = 16
    user_dim: int = 32
    semantic_ids: bool = True
    code_dim: int = 16
    item_age: bool = True
    brand: bool = True
    brand_dim: int = 8
    price: bool = True
    transact: bool = False  # default DCN-v2 alone: TransAct is no better beyond noise, at ~10x the cost
    actions: int = 20
    transact_dim: int = 64
    transact_heads: int = 2
    transact_layers: int = 1
    last_tokens: int = 3
    time_window: int = 2
    fm_dim: int = 16
    dropout: float = 0.1
    negatives: int = 40
    batch_size: int = 64
    learning_rate: float = 3e-4
    l2: float = 1e-6
    max_epochs: int = 30
    patience: int = 4
    cvr_powers: tuple[float, ...] = (0.0, 0.5, 1.0)
    seed: int = 0
    stream_above_mb: float = 512.0
    shuffle_buffer: int = 4096
    val_users: int = 0
    max_steps_per_epoch: int = 0  # > 0: each epoch stops after that many batches (scale probes; 0 = every batch)

    def __post_init__(self) -> None:
        if self.interaction not in INTERACTIONS:
            raise ValueError(f"RankerConfig.interaction must be one of {INTERACTIONS}, got {self.interaction!r}")
        if self.structure not in (STACKED, PARALLEL):
            raise ValueError(f"RankerConfig.structure must be {STACKED!r} or {PARALLEL!r}, got {self.structure!r}")
        for f in ("cross_layers", "id_dim", "content_dim", "category_dim", "user_dim", "code_dim", "brand_dim", "actions", "transact_dim",
                  "transact_heads", "transact_layers", "last_tokens", "fm_dim", "negatives", "batch_size",
                  "max_epochs", "patience", "shuffle_buffer"):
            if getattr(self, f) <= 0:
                raise ValueError(f"RankerConfig.{f} must be positive, got {getattr(self, f)}")
        if self.last_tokens > self.actions:
            raise ValueError(f"RankerConfig.last_tokens ({self.last_tokens}) exceeds actions ({self.actions})")
        for f in ("projection_dim", "time_window", "l2", "stream_above_mb", "val_users", "max_steps_per_epoch"):
            if getattr(self, f) < 0:
                raise ValueError(f"RankerConfig.{f} must be >= 0, got {getattr(self, f)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"RankerConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.learning_rate <= 0:
            raise ValueError(f"RankerConfig.learning_rate must be positive, got {self.learning_rate}")
        if not self.cvr_powers or min(self.cvr_powers) < 0:
            raise ValueError(f"RankerConfig.cvr_powers must be non-empty and >= 0, got {self.cvr_powers}")

    @classmethod
    def from_dict(cls, values: dict | None) -> "RankerConfig":
        values = dict(values or {})
        for f in ("deep_units", "cvr_powers"):
            if f in values:
                values[f] = tuple(values[f])
        return base.config_from_dict(cls, values, "ranker")
