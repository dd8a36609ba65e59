"""The training loop: one optimiser step over both heads per batch, per-epoch validation, best epoch kept."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import tensorflow as tf

from trainer.dual_head.config import DualHeadConfig
from trainer.dual_head.data import ItemSpace, SequenceData, sample_users
from trainer.dual_head.evaluation import evaluate
from trainer.dual_head.losses import distillation_kl, listmle
from trainer.dual_head.model import DualHeadModel
from trainer.dual_head.sampler import PairSampler


class Trainer:
    """Custom training loop: one optimiser step per batch over both heads.

    ``shared_teacher`` (default): the distillation's teacher scores come from
    ``GenerativeHead.shared_code_log_likelihood`` (a row's memory/BOS decoder states computed once for its
    candidates), equal to the full teacher-forced decode up to float summation order; False keeps the full
    decode per candidate (the path measured before, kept for ``benchmarks/dual_head_speed.py`` and the tests).
    ``jit_teacher`` (default, with ``shared_teacher``): that scoring is one XLA cluster (``jit_compile``); it is
    inference only (no dropout, no random ops, stop-gradient), so XLA changes only float rounding there (tested
    to 1e-5); the rest of the step stays on the TF executor (XLA did not speed it up on CPU, and its dropout
    would draw other random numbers).
    ``teacher`` (with ``config.distill_from == "frozen"``): a trained model over the same catalogue whose
    generative head teaches instead of the model's own; it reads each batch's history itself and is never
    trained here.
    """

    def __init__(self, model: DualHeadModel, config: DualHeadConfig, shared_teacher: bool = True,
                 jit_teacher: bool = True, teacher: DualHeadModel | None = None):
        self.model, self.config = model, config
        self.shared_teacher, self.jit_teacher = shared_teacher, jit_teacher and shared_teacher
        self.optimizer = tf.keras.optimizers.Adam(config.learning_rate)
        self._steps: dict = {}
        self._teacher_score = None
        self.teacher = teacher
        if (teacher is not None) != (config.distill_from == "frozen"):
            raise ValueError("a frozen teacher model is passed exactly when config.distill_from == 'frozen' "
                             f"(distill_from={config.distill_from!r}, teacher given: {teacher is not None})")
        if teacher is not None:
            if not teacher.generative:
                raise ValueError("the frozen teacher has no generative head")
            if teacher.num_items != model.num_items:
                raise ValueError(f"the frozen teacher knows {teacher.num_items} items, the model {model.num_items}")
        source = teacher if teacher is not None else model
        if source.generative:
            head = source.generative_head
            if not shared_teacher:
                self._teacher_score = lambda memory, items: head.code_log_likelihood(memory, items, training=False)
            elif self.jit_teacher:
                self._teacher_score = tf.function(head.shared_code_log_likelihood, jit_compile=True)
            else:
                self._teacher_score = head.shared_code_log_likelihood

    def losses(self, batch: dict, training: bool = True, distill: bool = True) -> dict:
        """The loss terms of one ``PairSampler`` batch: retrieval (the item block's), generative, distillation."""
        m, cfg = self.model, self.config
        states, mask = m.encode(batch["history"], batch["order_rel"], batch["events"], training=training)
        user = m.user_vector(states, mask)                                       # [B, D]
        out = {}
        out["retrieval"], cands = m.item_block.retrieval_loss(user, batch, training=training)
        memory = None
        if m.generative:
            head = m.generative_head
            memory = head.memory(states, mask)
            out["generative"] = head.loss(memory, batch["anchor"], training=training)
        if cfg.distill_weight > 0 and distill and self._teacher_score is not None:
            if cands is None:
                raise ValueError(f"the {m.item_block.variant!r} item block scores no candidates to distil on")
            if self.teacher is not None:  # the frozen teacher reads the history itself
                t_states, t_mask = self.teacher.encode(batch["history"], batch["order_rel"], batch["events"])
                memory = self.teacher.generative_head.memory(t_states, t_mask)
            masked = tf.where(cands.valid, cands.raw, -1e9)
            top = tf.math.top_k(tf.stop_gradient(masked),
                                tf.minimum(cfg.distill_candidates, tf.shape(cands.items)[0]))
            cand_items = tf.gather(cands.items, top.indices)                           # [B, c]
            # stop-gradient on the way in too: the tape then records no backward pass of the scoring
            teacher = tf.stop_gradient(self._teacher_score(tf.stop_gradient(memory), cand_items))
            student = tf.gather(cands.raw, top.indices, batch_dims=1)
            out["distill_kl"] = distillation_kl(teacher, student, cfg.distill_temperature)
            if cfg.listwise_weight > 0:
                out["distill_listwise"] = listmle(teacher, student)
        return out

    def total(self, losses: dict) -> tf.Tensor:
        cfg = self.config
        weights = {"retrieval": 1.0, "generative": cfg.generative_weight, "distill_kl": cfg.distill_weight,
                   "distill_listwise": cfg.distill_weight * cfg.listwise_weight}
        return tf.add_n([weights[k] * v for k, v in losses.items()])

    def train_step(self, batch: dict, distill: bool = True, autograph: bool = False) -> dict:
        """One optimiser step; ``distill`` (python bool) selects one of two traced graphs.

        Traced without AutoGraph: the step has no control flow on tensors (every loop and branch is over Python
        values), and AutoGraph's source conversion was most of the first step's cost (20 s against 93 s under
        load, the same losses to the bit: ``benchmarks/dual_head_trace_cost.py``). ``autograph=True`` keeps the
        converted trace (the benchmark's baseline); the flag is read when a graph is first traced.
        """
        fn = self._steps.get(distill)
        if fn is None:
            fn = self._steps[distill] = tf.function(lambda b: self._step(b, distill), reduce_retracing=True,
                                                    autograph=autograph)
        return fn(batch)

    def _step(self, batch, distill: bool):
        with tf.GradientTape() as tape:
            losses = self.losses(batch, training=True, distill=distill)
            loss = self.total(losses)
        variables = [v for group in self.model.variable_groups().values() for v in group]
        grads = tape.gradient(loss, variables)
        grads, _ = tf.clip_by_global_norm([g if g is not None else tf.zeros_like(v) for g, v in zip(grads, variables)], 5.0)
        self.optimizer.apply_gradients(zip(grads, variables))
        return dict(losses, total=loss)


@dataclass
class TrainResult:
    model: DualHeadModel
    log: list = field(default_factory=list)
    best_epoch: int = 0
    validation: dict = field(default_factory=dict)


def train(train_data: SequenceData, val_data: SequenceData, items: ItemSpace, config: DualHeadConfig,
          exclude_history: bool, label: str = "dual_head", teacher: DualHeadModel | None = None) -> TrainResult:
    """Trains with per-epoch validation; keeps the best epoch's weights by ``config.monitor``'s NDCG@10.

    Every epoch logs the student's validation HR@10/NDCG@10 (``val_*``) and, when ``config.teacher_per_epoch``,
    the teacher's by constrained beam search (``val_teacher_*``). ``teacher``: the frozen model that teaches
    when ``config.distill_from == "frozen"`` (``Trainer``). ``config.val_users`` > 0: that validation (and so the
    choice of the best epoch) is on that many users of ``val_data`` (``sample_users``, seed 0: the users the
    evaluators' ``--eval-users`` sample); 0 (default): every validation row.
    """
    every = len(val_data.history)
    val_data = sample_users(val_data, config.val_users)
    tf.keras.utils.set_random_seed(config.seed)
    sampler = PairSampler(train_data, items, config)
    model = DualHeadModel(items, config)
    trainer = Trainer(model, config, teacher=teacher)
    print(f"[{label}] {len(sampler.pair_target):,} training pairs from {len(train_data.history):,} rows, "
          f"{items.num_items:,} items, code sizes {model.sizes}, validation rows {len(val_data.history):,}"
          f"{f' (sampled of {every:,})' if len(val_data.history) < every else ''}", flush=True)
    start = time.time()
    log, best, best_weights, best_epoch, stale = [], -1.0, None, 0, 0
    for epoch in range(1, config.epochs + 1):
        pairs = sampler.epoch()
        sums: dict[str, float] = {}
        steps = len(pairs) // config.batch_size
        if config.max_steps_per_epoch:  # the first batches of this epoch's shuffled pairs
            steps = min(steps, config.max_steps_per_epoch)
        for s in range(steps):
            batch = sampler.batch(pairs[s * config.batch_size:(s + 1) * config.batch_size])
            values = trainer.train_step({k: tf.constant(v) for k, v in batch.items()},
                                        distill=epoch > config.distill_warmup_epochs)
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        val = evaluate(model, val_data, exclude_history, generative=config.teacher_per_epoch)
        entry = {"epoch": epoch, **{f"loss_{k}": round(v / max(steps, 1), 4) for k, v in sums.items()},
                 "val_HR@10": round(val["retrieval"]["HR@10"], 4), "val_NDCG@10": round(val["retrieval"]["NDCG@10"], 4)}
        if "generative" in val:
            entry.update({"val_teacher_HR@10": round(val["generative"]["HR@10"], 4),
                          "val_teacher_NDCG@10": round(val["generative"]["NDCG@10"], 4)})
        entry["elapsed_s"] = round(time.time() - start, 1)
        log.append(entry)
        print(f"[{label}] epoch {epoch}/{config.epochs}: " + " ".join(f"{k}={v}" for k, v in entry.items()
                                                                      if k != "epoch"), flush=True)
        score = val["generative" if config.monitor == "teacher" else "retrieval"]["NDCG@10"]
        if score > best:
            best, best_weights, best_epoch, stale = score, model.get_weights(), epoch, 0
        else:
            stale += 1
            if stale >= config.early_stopping_patience:
                print(f"[{label}] early stop: the {config.monitor}'s validation NDCG@10 has not improved for "
                      f"{stale} epochs", flush=True)
                break
    model.set_weights(best_weights)
    return TrainResult(model, log, best_epoch)
