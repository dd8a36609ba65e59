"""Training the ranker: sampled negatives per unit, ESMM loss, early stopping on validation NDCG@10.

Each epoch draws ``negatives`` fresh negatives per training unit (every positive is kept);
after each epoch the validation units' **full** candidate lists are scored and the ranked
top-10 is evaluated end to end (targets outside the candidates count as misses), for every
``cvr_powers`` value of the served score; the best (epoch, power) by validation NDCG@10 is kept.
"""
from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import tensorflow as tf

from trainer.base import is_frozen_table
from trainer.ranker import metrics as M
from trainer.ranker.config import RankerConfig
from trainer.ranker.data import ExposureSet, ExposureStream, ItemTables, sample_training
from trainer.ranker.model import Ranker, esmm_loss

INPUTS = ("items", "features", "actions", "action_type", "action_gap", "user_vector", "request_time")


@dataclass
class TrainResult:
    model: Ranker
    best_epoch: int
    cvr_power: float
    best_val: dict[str, float]
    history: list[dict] = field(default_factory=list)
    seconds_per_epoch: float = 0.0
    wall_s: float = 0.0


def inputs_of(data: ExposureSet, rows=slice(None)) -> dict:
    return {"items": data.items[rows], "features": data.features[rows], "actions": data.actions[rows],
            "action_type": data.action_type[rows], "action_gap": data.action_gap[rows],
            "user_vector": data.user_vector[rows], "request_time": data.request_time[rows]}


def feature_moments(data: ExposureSet) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of every dense feature over the real training exposures."""
    x = data.features[data.mask]
    return x.mean(axis=0), x.std(axis=0)


def predict(model: Ranker, data: ExposureSet, batch_units: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(pCTR, pCVR) [U, N] for every candidate of every unit."""
    pctr = np.zeros(data.items.shape, np.float32)
    pcvr = np.zeros(data.items.shape, np.float32)
    for s in range(0, len(data), batch_units):
        out = _predict_fn(model)({k: tf.constant(v) for k, v in inputs_of(data, slice(s, s + batch_units)).items()})
        pctr[s:s + batch_units] = out["pctr"].numpy()
        pcvr[s:s + batch_units] = out["pcvr"].numpy()
    return pctr, pcvr


def _predict_fn(model: Ranker):
    if not hasattr(model, "_predict_fn"):
        model._predict_fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return model._predict_fn


def evaluate(model: Ranker, data: ExposureSet, num_items: int, cvr_powers, k: int = 10) -> dict[float, dict]:
    """End-to-end list metrics per cvr power, plus the exposure metrics (same for every power)."""
    pctr, pcvr = predict(model, data)
    exposure = M.exposure_metrics(data.user_ids, data.mask, data.click, data.conversion, pctr, pctr * pcvr)
    out = {}
    for power in cvr_powers:
        score = pctr * np.power(np.maximum(pcvr, 1e-7), power)
        out[power] = dict(M.list_metrics(data.items, data.mask, data.features, score, data.targets, num_items, k),
                          **exposure)
    return out


def _epoch_batches(train_set: ExposureSet | ExposureStream, epoch: int, config: RankerConfig,
                   rng: np.random.Generator, pad: int):
    """One epoch's training batches: each unit's positives and ``config.negatives`` fresh negatives, in
    batches of ``config.batch_size`` units (in memory: a permutation of every unit; a stream: its order), the
    first ``config.max_steps_per_epoch`` of them when that is set."""
    if config.max_steps_per_epoch:
        yield from itertools.islice(_epoch_batches(train_set, epoch, dataclasses.replace(config, max_steps_per_epoch=0),
                                                   rng, pad), config.max_steps_per_epoch)
        return
    if isinstance(train_set, ExposureStream):
        for batch in train_set.batches(epoch):
            yield sample_training(batch, config.negatives, rng, pad=pad)
        return
    sampled = sample_training(train_set, config.negatives, rng, pad=pad)
    order = rng.permutation(len(sampled))
    for s in range(0, len(order), config.batch_size):
        yield sampled.take(order[s:s + config.batch_size])


def train(train_set: ExposureSet | ExposureStream, val_set: ExposureSet, config: RankerConfig, items: ItemTables,
          log: Callable[[str], None] = print) -> TrainResult:
    """Trains to the best validation NDCG@10 (patience ``config.patience`` epochs), on exposures held in memory
    or read as a stream each epoch (``data.ExposureStream``)."""
    if config.semantic_ids and items.codes.shape[1] == 0:
        raise ValueError("RankerConfig.semantic_ids is on but the item tables hold no Semantic-ID codes "
                         "(give catalogue_tables the content space's table, or set semantic_ids=False)")
    tf.keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    num_items = items.content.shape[0] - 1
    mean, std = train_set.moments() if isinstance(train_set, ExposureStream) else feature_moments(train_set)
    model = Ranker(config, items, mean, std)
    optimizer = tf.keras.optimizers.Adam(config.learning_rate)

    @tf.function(reduce_retracing=True)
    def step(x, click, conversion, mask):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = esmm_loss(out, click, conversion, mask) + tf.add_n(model.losses or [tf.constant(0.0)])
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    best = (-1.0, 0, 0.0, {})
    best_weights = None
    history: list[dict] = []
    start = time.time()
    train_time = 0.0
    epoch = 0
    for epoch in range(1, config.max_epochs + 1):
        t0 = time.time()
        losses = []
        for batch in _epoch_batches(train_set, epoch, config, rng, num_items):
            x = {k: tf.constant(v) for k, v in inputs_of(batch).items()}
            losses.append(float(step(x, tf.constant(batch.click), tf.constant(batch.conversion),
                                     tf.constant(batch.mask))))
        train_time += time.time() - t0
        val = evaluate(model, val_set, num_items, config.cvr_powers)
        power = max(val, key=lambda p: (val[p]["NDCG@10"], -p))
        ndcg = val[power]["NDCG@10"]
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "cvr_power": power,
                        **{k: round(v, 5) for k, v in val[power].items()}, "seconds": round(time.time() - t0, 1)})
        log(f"[ranker] epoch {epoch}: loss {np.mean(losses):.4f}, validation NDCG@10 {ndcg:.4f} "
            f"HR@10 {val[power]['HR@10']:.4f} GAUC {val[power]['ctr_GAUC']:.4f} (cvr power {power}), "
            f"{time.time() - t0:.1f}s")
        if ndcg > best[0]:
            best = (ndcg, epoch, power, val[power])
            trained_weights = [w for w in model.weights if not is_frozen_table(w)]  # the item tables never change
            best_weights = [w.numpy().copy() for w in trained_weights]
        elif epoch - best[1] >= config.patience:
            break
    if best_weights is not None:
        for w, v in zip(trained_weights, best_weights):
            w.assign(v)
    return TrainResult(model, best[1], best[2], best[3], history, train_time / max(epoch, 1), time.time() - start)
