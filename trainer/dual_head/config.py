"""Every hyperparameter of the dual-head model and of its ablation variants (``DualHeadConfig``)."""
from __future__ import annotations

from dataclasses import dataclass

from recsys import features as F
from trainer import base

EVENT_TYPES = ("",) + tuple(F.INTERACTION_TYPES)  # index 0 = unknown
VARIANTS = ("dual_head", "sasrec")
MONITORS = ("student", "teacher")
TEACHERS = ("own", "frozen")


@dataclass(frozen=True)
class DualHeadConfig:
    """Every hyperparameter of the dual-head model (and of its ablation variants)."""

    d_model: int = 64
    num_heads: int = 2
    encoder_layers: int = 2
    decoder_layers: int = 2
    ff_dim: int = 128
    dropout: float = 0.1
    max_history: int = 30          # the dual head reads the latest 30 items (the two-tower 50): CPU budget
    max_orders: int = 64            # order positions further back share the last embedding
    memory_tokens: int = 4          # encoder summaries the decoder attends to
    memory_recent: int = 0          # + the encoder states of the latest R history items
    epochs: int = 4                 # what the ablation and the measured `make run` used (2-core budget)
    batch_size: int = 256
    learning_rate: float = 1e-3
    temperature: float = 0.1
    logq_correction: bool = True
    max_positives: int = 16         # positives per row used by the multi-positive loss
    positive_candidates: bool = True  # every positive of a row is a candidate (False: only if another row's anchor)
    debias_targets: bool = True     # draw targets ∝ 1/sqrt(frequency)
    hard_negatives_category: int = 1
    hard_negatives_history: int = 1
    generative_weight: float = 1.0  # 0 = retrieval head alone
    distill_weight: float = 1.0     # KL term; 0 = no distillation
    listwise_weight: float = 0.5    # ListMLE term (only with distillation)
    distill_candidates: int = 20
    distill_temperature: float = 1.0
    distill_warmup_epochs: int = 1  # the teacher trains alone first: an untrained teacher only adds noise
    distill_from: str = "own"       # "own": this model's generative head; "frozen": a trained model passed to train()
    id_residual: bool = True        # free ID embedding added to known items' representations
    id_dropout: float = 0.2         # share of training items whose ID residual is dropped per step
    order_positions: bool = True    # False: positions count items (SASRec)
    beam_width: int = 20
    variant: str = "dual_head"      # the item block: see ``trainer.dual_head.items.ITEM_BLOCKS``
    early_stopping_patience: int = 2
    monitor: str = "student"        # the head whose validation NDCG@10 picks the best epoch: MONITORS
    validate_teacher: bool = False  # also score the teacher on validation every epoch (beam search; logged)
    val_users: int = 0              # > 0: per-epoch validation on that many users, drawn as the evaluators draw
    max_steps_per_epoch: int = 0    # > 0: each epoch stops after that many batches (scale probes; 0 = every batch)
    seed: int = 0

    def __post_init__(self) -> None:
        for f in ("d_model", "num_heads", "encoder_layers", "ff_dim", "max_history", "max_orders",
                  "memory_tokens", "epochs", "batch_size", "max_positives", "distill_candidates", "beam_width"):
            if getattr(self, f) <= 0:
                raise ValueError(f"DualHeadConfig.{f} must be positive, got {getattr(self, f)}")
        for f in ("hard_negatives_category", "hard_negatives_history", "decoder_layers", "distill_warmup_epochs",
                  "memory_recent", "val_users", "max_steps_per_epoch"):
            if getattr(self, f) < 0:
                raise ValueError(f"DualHeadConfig.{f} must be >= 0, got {getattr(self, f)}")
        for f in ("generative_weight", "distill_weight", "listwise_weight"):
            if getattr(self, f) < 0:
                raise ValueError(f"DualHeadConfig.{f} must be >= 0, got {getattr(self, f)}")
        if self.temperature <= 0 or self.learning_rate <= 0 or self.distill_temperature <= 0:
            raise ValueError("temperature, distill_temperature and learning_rate must be positive")
        if not 0 <= self.dropout < 1 or not 0 <= self.id_dropout <= 1:
            raise ValueError(f"dropout must be in [0, 1) and id_dropout in [0, 1], got {self.dropout}, {self.id_dropout}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by num_heads {self.num_heads}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {MONITORS}, got {self.monitor!r}")
        if self.monitor == "teacher" and not self.has_generative_head:
            raise ValueError("monitor='teacher' needs a generative head (variant 'dual_head', generative_weight > 0, "
                             "decoder_layers > 0)")
        if self.distill_from not in TEACHERS:
            raise ValueError(f"distill_from must be one of {TEACHERS}, got {self.distill_from!r}")
        if self.distill_from == "frozen" and self.distill_weight <= 0:
            raise ValueError("distill_from='frozen' needs distill_weight > 0")
        if (self.distill_from == "own" and self.distill_weight > 0
                and (self.generative_weight <= 0 or self.decoder_layers == 0)):
            raise ValueError("distillation needs a trained generative head (generative_weight > 0, decoder_layers > 0)")

    @property
    def has_generative_head(self) -> bool:
        return self.variant == "dual_head" and self.generative_weight > 0 and self.decoder_layers > 0

    @property
    def teacher_per_epoch(self) -> bool:
        """Whether training scores the teacher on validation every epoch (asked for, or monitored)."""
        return self.has_generative_head and (self.validate_teacher or self.monitor == "teacher")

    @classmethod
    def from_dict(cls, values: dict | None) -> "DualHeadConfig":
        return base.config_from_dict(cls, values, "dual-head")


#: the SASRec-style model on the same code (``variant="sasrec"``): free ID embeddings only, positions
#: count items, full softmax over the catalogue, no generative head, no data tricks. The ablation's
#: ``sasrec`` row and the pipeline's ``sequential_retrieval`` both start from it.
#: Patience 5, not the default 2: its validation NDCG@10 moves by about 0.005 between epochs, and on MovieLens
#: patience 2 stopped at epoch 6 (best epoch 4, validation 0.1176, test 0.0859) where patience 5 trains on to a
#: best epoch 8 (validation 0.1245, test 0.1003; benchmarks/dual_head_ablation.py --variants sasrec --epochs 30
#: --set early_stopping_patience=5, docs/results/movielens-100k.sasrec_patience5.json).
SASREC = dict(variant="sasrec", generative_weight=0.0, distill_weight=0.0, id_residual=False, order_positions=False,
              debias_targets=False, hard_negatives_category=0, hard_negatives_history=0, early_stopping_patience=5)


def sasrec_config(values: dict | None = None) -> DualHeadConfig:
    """``DualHeadConfig`` of the SASRec preset (``SASREC``) with ``values`` on top; values that would make it
    another model (``variant``, a generative head, distillation) are refused."""
    values = dict(values or {})
    clash = {k: v for k, v in values.items() if k in ("variant", "generative_weight", "distill_weight")
             and v != SASREC[k]}
    if clash:
        raise ValueError(f"the SASRec-style model is {SASREC}; these settings would make it another model: {clash}")
    return DualHeadConfig.from_dict(dict(SASREC, **values))

