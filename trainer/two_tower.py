"""Two-tower retriever (TFRS) with in-batch softmax: the baseline later models must beat.

Query tower: the user's most recent ``max_history`` items (shared item
embeddings) → masked mean and last-item vectors → MLP → L2-normalised vector.
Item tower: item id and category embeddings → MLP → L2-normalised vector.
Loss: in-batch sampled softmax with temperature (TFRS ``Retrieval`` task),
accidental hits (the same item twice in a batch) removed.

Shapes: history int32 [batch, max_history] right-padded with ``pad``;
item / category int32 [batch]; embeddings float32 [batch, embedding_dim].
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from trainer import base, distribute

_log = logging.getLogger("recsys.trainer")


@dataclass(frozen=True)
class TwoTowerConfig:
    embedding_dim: int = 64
    hidden_dim: int = 128
    max_history: int = 50
    epochs: int = 6
    batch_size: int = 1024
    learning_rate: float = 0.003
    temperature: float = 0.1
    logq_correction: bool = True
    seed: int = 0
    distribution_strategy: str = "none"  # trainer.distribute.STRATEGIES: none, mirrored, multiworker
    max_steps_per_epoch: int = 0  # > 0: each epoch stops after that many batches (scale probes; 0 = every batch)
    val_users: int = 0  # > 0: the per-epoch HR@10 on that many validation rows (a seeded draw); 0 = every row

    def __post_init__(self) -> None:
        for f in ("embedding_dim", "hidden_dim", "max_history", "epochs", "batch_size"):
            if getattr(self, f) <= 0:
                raise ValueError(f"TwoTowerConfig.{f} must be positive, got {getattr(self, f)}")
        if self.temperature <= 0 or self.learning_rate <= 0:
            raise ValueError(f"temperature and learning_rate must be positive, got {self.temperature}, {self.learning_rate}")
        if self.val_users < 0:
            raise ValueError(f"TwoTowerConfig.val_users must be >= 0 (0 = every validation row), got {self.val_users}")
        if self.max_steps_per_epoch < 0:
            raise ValueError(f"TwoTowerConfig.max_steps_per_epoch must be >= 0 (0 = every batch), "
                             f"got {self.max_steps_per_epoch}")
        if self.distribution_strategy not in distribute.STRATEGIES:
            raise ValueError(f"TwoTowerConfig.distribution_strategy must be one of {distribute.STRATEGIES}, "
                             f"got {self.distribution_strategy!r}")

    @classmethod
    def from_dict(cls, values: dict | None) -> "TwoTowerConfig":
        """Config from a (possibly partial) dict; unknown keys are an error, not ignored."""
        return base.config_from_dict(cls, values, "two-tower")


class QueryTower(tf.keras.layers.Layer):
    """History [B, L] → user vector [B, D]: masked mean and last item, then an MLP."""

    def __init__(self, item_embedding: tf.keras.layers.Embedding, pad: int, hidden_dim: int, output_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.item_embedding = item_embedding
        self.pad = pad
        self.mlp = tf.keras.Sequential([
            tf.keras.layers.Dense(hidden_dim, activation="relu"),
            tf.keras.layers.Dense(output_dim),
        ])

    def call(self, history: tf.Tensor) -> tf.Tensor:
        mask = tf.cast(tf.not_equal(history, self.pad), tf.float32)                 # [B, L]
        emb = self.item_embedding(tf.where(history == self.pad, 0, history))         # [B, L, E]
        count = tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)
        mean = tf.reduce_sum(emb * mask[..., None], axis=1) / count                  # [B, E]
        last_idx = tf.maximum(tf.cast(tf.reduce_sum(mask, axis=1), tf.int32) - 1, 0)
        last = tf.gather(emb, last_idx, batch_dims=1) * tf.minimum(count, 1.0)       # [B, E]
        return tf.math.l2_normalize(self.mlp(tf.concat([mean, last], axis=1)), axis=1)


class ItemTower(tf.keras.layers.Layer):
    """(item [B], category [B]) → item vector [B, D]."""

    def __init__(self, item_embedding: tf.keras.layers.Embedding, num_categories: int, hidden_dim: int,
                 output_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.item_embedding = item_embedding
        self.category_embedding = tf.keras.layers.Embedding(num_categories, item_embedding.output_dim)
        self.mlp = tf.keras.Sequential([
            tf.keras.layers.Dense(hidden_dim, activation="relu"),
            tf.keras.layers.Dense(output_dim),
        ])

    def call(self, item: tf.Tensor, category: tf.Tensor) -> tf.Tensor:
        x = tf.concat([self.item_embedding(item), self.category_embedding(category)], axis=1)
        return tf.math.l2_normalize(self.mlp(x), axis=1)


class TwoTowerModel(tfrs.Model):
    """Query and item towers over one shared item-embedding table, in-batch softmax loss."""

    def __init__(self, num_items: int, num_categories: int, config: TwoTowerConfig):
        super().__init__()
        # num_items + OOV + padding rows
        self.item_embedding = tf.keras.layers.Embedding(num_items + 2, config.embedding_dim)
        self.pad = num_items + 1
        self.query_tower = QueryTower(self.item_embedding, self.pad, config.hidden_dim, config.embedding_dim)
        self.item_tower = ItemTower(self.item_embedding, num_categories + 1, config.hidden_dim, config.embedding_dim)
        self.task = tfrs.tasks.Retrieval(temperature=config.temperature, remove_accidental_hits=True)

    def compute_loss(self, features: dict, training: bool = False) -> tf.Tensor:
        # under a tf.distribute strategy every replica scores its queries against the whole global
        # batch's candidates (its own first: TFRS's labels are the diagonal), as on one device
        query = self.query_tower(features["history"])
        candidate = distribute.gather_replicas(self.item_tower(features["target"], features["target_category"]))
        probability = features.get("sampling_probability")
        return self.task(query, candidate, candidate_ids=distribute.gather_replicas(features["target"]),
                         candidate_sampling_probability=None if probability is None else
                         distribute.gather_replicas(probability), compute_metrics=False)


def _dataset(arrays: base.SequenceArrays, batch_size: int, seed: int, shuffle: bool,
             logq_correction: bool) -> tf.data.Dataset:
    columns = {"history": arrays.history, "target": arrays.target, "target_category": arrays.target_category}
    if logq_correction:
        # In-batch negatives are drawn in proportion to popularity; subtracting log q
        # (Yi et al., RecSys 2019) stops the softmax from simply demoting popular items.
        pop = np.maximum(arrays.target_popularity, 1.0)
        columns["sampling_probability"] = (pop / pop.sum()).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        ds = ds.shuffle(len(arrays.target), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=shuffle).prefetch(tf.data.AUTOTUNE)


class ValidationHitRate(tf.keras.callbacks.Callback):
    """Per-epoch progress: loss, HR@10 on validation rows (ranked over training items), elapsed time.

    ``val_rows`` > 0 ranks that many rows, drawn once with ``seed`` (every row otherwise); the scores are made
    ``metrics.score_batch_size`` rows at a time, so a million items never need a [rows, items] matrix.
    """

    def __init__(self, model: TwoTowerModel, val: base.SequenceArrays, item_categories: np.ndarray, k: int = 10,
                 val_rows: int = 0, seed: int = 0):
        super().__init__()
        self._m = model
        self._val = val
        n = len(val.target)
        self._rows = (np.sort(np.random.default_rng(seed).choice(n, val_rows, replace=False))
                      if 0 < val_rows < n else np.arange(n))
        self._cats = item_categories
        self._k = k
        self._start = time.time()
        self.history: list[dict] = []

    def hit_rate(self) -> float:
        from recsys.evaluation.metrics import score_batch_size

        n = len(self._cats)
        items = self._m.item_tower(tf.range(n), tf.constant(self._cats)).numpy()
        rows = self._rows
        users = self._m.query_tower(tf.constant(self._val.history[rows])).numpy()
        targets = self._val.target[rows]
        b = score_batch_size(n)
        hits = 0
        for s in range(0, len(rows), b):
            top = np.argpartition(-(users[s:s + b] @ items.T), self._k, axis=1)[:, : self._k]
            hits += int(np.any(top == targets[s:s + b, None], axis=1).sum())
        return hits / len(rows)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        hr = self.hit_rate() if len(self._rows) else float("nan")
        entry = {"epoch": epoch + 1, "loss": float((logs or {}).get("loss", np.nan)), "val_HR@10": hr,
                 "elapsed_s": round(time.time() - self._start, 1)}
        self.history.append(entry)
        _log.info("epoch %(epoch)d  loss %(loss).4f  val HR@10 (training items) %(val_HR@10).4f  %(elapsed_s).1fs", entry)
        print(f"[two_tower] epoch {entry['epoch']}: loss={entry['loss']:.4f} "
              f"val_pair_HR@10={hr:.4f} elapsed={entry['elapsed_s']}s", flush=True)


def item_categories_from_training(arrays: base.SequenceArrays, num_items: int, oov_category: int) -> np.ndarray:
    """Category index of each training item, read off the training targets."""
    cats = np.full(num_items + 1, oov_category, dtype=np.int32)
    cats[arrays.target] = arrays.target_category
    return cats[:num_items]


def compiled_model(num_items: int, num_categories: int, config: TwoTowerConfig) -> TwoTowerModel:
    """A compiled two-tower model whose variables live under ``config.distribution_strategy``'s scope
    (``model.fit`` then runs each step on every replica; ``trainer.distribute``)."""
    strategy = distribute.strategy(config.distribution_strategy)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(f"batch_size {config.batch_size} must be a multiple of the {replicas} replicas of "
                         f"{config.distribution_strategy!r} (each replica takes an equal share of every batch)")
    with strategy.scope():
        model = TwoTowerModel(num_items, num_categories, config)
        model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
    if replicas > 1:
        print(f"[two_tower] {config.distribution_strategy}: {replicas} replicas, "
              f"{config.batch_size // replicas} examples each per step", flush=True)
    return model


def train(train_files: list[str], eval_files: list[str], vocab: base.Vocabularies,
          config: TwoTowerConfig) -> tuple[TwoTowerModel, list[dict]]:
    """Trains the two-tower model; returns it and the per-epoch log."""
    tf.keras.utils.set_random_seed(config.seed)
    train_arrays = base.load_sequence_arrays(base.split_files(train_files), config.max_history, vocab.item_pad)
    val_arrays = base.load_sequence_arrays(base.split_files(eval_files), config.max_history, vocab.item_pad)
    if len(train_arrays.target) == 0:
        raise ValueError("No training pairs: every user has fewer than two interactions in the training split.")
    print(f"[two_tower] {len(train_arrays.target):,} training pairs, {len(val_arrays.target):,} validation pairs, "
          f"{vocab.num_items:,} items, {len(vocab.categories):,} categories", flush=True)
    model = compiled_model(vocab.num_items, len(vocab.categories), config)
    cats = item_categories_from_training(train_arrays, vocab.num_items, len(vocab.categories))
    progress = ValidationHitRate(model, val_arrays, cats, val_rows=config.val_users, seed=config.seed)
    data = _dataset(train_arrays, config.batch_size, config.seed, shuffle=True, logq_correction=config.logq_correction)
    if config.max_steps_per_epoch:  # the first batches of each epoch's reshuffled order
        data = data.take(config.max_steps_per_epoch)
    model.fit(data, epochs=config.epochs, verbose=0, callbacks=[progress])
    return model, progress.history


class Towers(tf.Module):
    """The trained towers as a SavedModel: the Trainer's output, input of the index builder."""

    def __init__(self, model: TwoTowerModel, max_history: int):
        super().__init__()
        self.model = model
        self.max_history = max_history

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="history")])
    def query_embedding(self, history):
        return {"embedding": self.model.query_tower(history)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="item"),
                                  tf.TensorSpec([None], tf.int32, name="category")])
    def item_embedding(self, item, category):
        return {"embedding": self.model.item_tower(item, category)}


def save_towers(model: TwoTowerModel, config: TwoTowerConfig, export_dir: str, train_log: list[dict]) -> None:
    towers = Towers(model, config.max_history)
    tf.saved_model.save(towers, export_dir, signatures={
        "query_embedding": towers.query_embedding, "item_embedding": towers.item_embedding})
    with tf.io.gfile.GFile(os.path.join(export_dir, "assets.extra", "train_config.json"), "w") as f:
        json.dump({"model": "two_tower", "config": asdict(config), "log": train_log}, f, indent=1)


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (GenericExecutor)."""
    config = TwoTowerConfig.from_dict((fn_args.custom_config or {}).get("two_tower"))
    vocab = base.load_vocabularies(fn_args.transform_output)
    model, log = train(fn_args.train_files, fn_args.eval_files, vocab, config)
    out = distribute.save_dir(model.distribute_strategy, fn_args.serving_model_dir)  # multi-worker: chief's is the model
    tf.io.gfile.makedirs(os.path.join(out, "assets.extra"))
    save_towers(model, config, out, log)
    if out != fn_args.serving_model_dir:
        tf.io.gfile.rmtree(out)
