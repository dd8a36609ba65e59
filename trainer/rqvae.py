"""RQ-VAE Semantic IDs: an item's content embedding compressed into a short tuple of codes.

An MLP encoder maps an item embedding x [B, input_dim] to a latent z [B, latent_dim]; a
residual quantizer writes z as a sum of L codebook entries, one per level, coarse first:

    r_0 = z,    c_l = argmin_k ||r_l - e^l_k||²,    r_{l+1} = r_l - e^l_{c_l},    ẑ = Σ_l e^l_{c_l}

and an MLP decoder maps ẑ back to x̂. The tuple (c_0, ..., c_{L-1}) is the item's Semantic ID
(Rajput et al. 2023, "Recommender Systems with Generative Retrieval" (TIGER); residual VQ from
Zeghidour et al. 2021, SoundStream, and Lee et al. 2022, "Autoregressive Image Generation using
Residual Quantization").

Choices, and why:

* **Codebooks learn by gradient**, not EMA: the VQ-VAE codebook loss ||sg[r_l] - e||² and the
  commitment loss β||r_l - sg[e]||², summed over levels (as TIGER). The residual passed to the next
  level is r_l - sg[e_{c_l}], so commitment losses move only the encoder and codebook losses only
  the codebooks.
* **k-means initialisation**: each level's codebook is set by k-means (k-means++ seeding, Lloyd
  iterations) on that level's residuals of a first batch (``kmeans_init_size`` random rows), so
  every code starts on the data (TIGER). Until then the model trains as a plain autoencoder
  (ẑ = z): ``train_rqvae`` runs ``warmup_epochs`` such epochs first. Why: once quantized, the
  first-level partition barely moves (codebook and latents move together; on the synthetic
  clusters of the tests the level-0 perplexity was identical after 30 and 100 epochs), so it is
  fixed by the latent k-means sees. After a warm-up that latent already follows the content (and
  the category head); on 14,000 × 512-d synthetic items 3 warm-up epochs halved the collision rate
  (0.13 -> 0.06) and ended dead-code churn at level 0.
* **Dead codes** (used fewer than ``dead_code_threshold`` times in an epoch) are re-seeded at the end
  of each epoch but the last, from random current residuals of their level.
* **Reconstruction loss**: relative squared error Σ||x - x̂||² / Σ||x||² over the batch. For
  unit-norm embeddings (sentence encoders) this is TIGER's ||x - x̂||² per item; the denominator
  keeps its balance with the latent-space VQ losses independent of the input's scale (with the
  plain sum, inputs of norm ~25 let the reconstruction term swamp them and the latents drifted
  away from the codebooks). Reported as ``reconstruction``.
* **Category head on the quantized latent** ẑ (straight-through): the Semantic ID is what downstream
  models see, so the category must be readable from the codes themselves; through the
  straight-through estimator the cross-entropy's gradient still reaches the encoder (and during
  the warm-up, when ẑ = z, it shapes the latent the codebooks are initialised on). Items with
  label < 0 are skipped.

Shapes: embeddings float32 [B, input_dim]; latent float32 [B, latent_dim]; codes int32 [B, L].
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from trainer.semantic_ids import collision_rate

CONFIG_FILE = "rqvae_config.json"
WEIGHTS_PREFIX = "weights/rqvae"


@dataclass(frozen=True)
class RQVAEConfig:
    """Architecture and training hyperparameters of the RQ-VAE.

    ``epochs`` quantized epochs follow ``warmup_epochs`` autoencoder epochs (see the module
    docstring). ``dead_code_threshold``: a code used fewer times than this during an epoch is
    re-seeded at the epoch's end (0 disables re-seeding). ``kmeans_init_size``: rows sampled for the
    k-means initialisation of the codebooks (at least ``codebook_size``).
    """

    input_dim: int
    latent_dim: int = 32
    hidden_dims: tuple[int, ...] = (512, 256, 128)
    num_levels: int = 3
    codebook_size: int = 256
    commitment_beta: float = 0.25
    category_loss_weight: float = 0.1
    num_categories: int = 0
    learning_rate: float = 1e-3
    epochs: int = 30
    batch_size: int = 256
    warmup_epochs: int = 3
    kmeans_init_size: int = 4096
    kmeans_iterations: int = 20
    dead_code_threshold: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_dims", tuple(self.hidden_dims))
        for name in ("input_dim", "latent_dim", "num_levels", "epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"RQVAEConfig.{name} must be a positive integer, got {value!r}")
        if any(not isinstance(h, (int, np.integer)) or h <= 0 for h in self.hidden_dims):
            raise ValueError(f"RQVAEConfig.hidden_dims must be positive integers, got {self.hidden_dims!r}")
        if self.codebook_size < 2:
            raise ValueError(f"RQVAEConfig.codebook_size must be at least 2, got {self.codebook_size!r}")
        if self.num_categories < 0:
            raise ValueError(f"RQVAEConfig.num_categories must be >= 0 (0 = no category head), "
                             f"got {self.num_categories!r}")
        for name in ("commitment_beta", "category_loss_weight", "dead_code_threshold"):
            if getattr(self, name) < 0:
                raise ValueError(f"RQVAEConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"RQVAEConfig.learning_rate must be positive, got {self.learning_rate!r}")
        if self.warmup_epochs < 0:
            raise ValueError(f"RQVAEConfig.warmup_epochs must be >= 0, got {self.warmup_epochs!r}")
        if self.kmeans_iterations < 0:
            raise ValueError(f"RQVAEConfig.kmeans_iterations must be >= 0, got {self.kmeans_iterations!r}")
        if self.kmeans_init_size < self.codebook_size:
            raise ValueError(f"RQVAEConfig.kmeans_init_size must be at least codebook_size "
                             f"({self.codebook_size}) so k-means has a point per code, got {self.kmeans_init_size!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RQVAEConfig":
        """Config from a dict (e.g. JSON); unknown keys are an error, not ignored."""
        from trainer.base import config_from_dict

        if "input_dim" not in values:
            raise ValueError("RQVAEConfig needs input_dim (the dimension of the item embeddings)")
        return config_from_dict(cls, values, "RQ-VAE")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``from_dict(to_dict())`` gives back an equal config."""
        out = asdict(self)
        out["hidden_dims"] = list(self.hidden_dims)
        return out


# --------------------------------------------------------------------------- losses and metrics


def squared_distances(points: tf.Tensor, centres: tf.Tensor) -> tf.Tensor:
    """||p_i - c_k||² for points [N, D] and centres [K, D] -> [N, K]."""
    return (tf.reduce_sum(tf.square(points), axis=1, keepdims=True)
            - 2.0 * tf.matmul(points, centres, transpose_b=True)
            + tf.reduce_sum(tf.square(centres), axis=1)[None, :])


def codebook_loss(residual: tf.Tensor, chosen: tf.Tensor) -> tf.Tensor:
    """VQ-VAE codebook loss mean_b ||sg[r_b] - e_b||² (moves only the codebook); [B, D] -> scalar."""
    return tf.reduce_mean(tf.reduce_sum(tf.square(tf.stop_gradient(residual) - chosen), axis=1))


def commitment_loss(residual: tf.Tensor, chosen: tf.Tensor, beta: float) -> tf.Tensor:
    """Commitment loss β · mean_b ||r_b - sg[e_b]||² (moves only the encoder); [B, D] -> scalar."""
    return beta * tf.reduce_mean(tf.reduce_sum(tf.square(residual - tf.stop_gradient(chosen)), axis=1))


def reconstruction_loss(x: tf.Tensor, reconstruction: tf.Tensor) -> tf.Tensor:
    """Relative squared error Σ_b ||x_b - x̂_b||² / Σ_b ||x_b||²; [B, D] -> scalar.

    For unit-norm embeddings this is TIGER's mean_b ||x_b - x̂_b||²; the denominator (a constant
    of the batch) keeps the term's balance with the latent VQ losses independent of the input scale.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    return tf.reduce_sum(tf.square(x - reconstruction)) / tf.maximum(tf.reduce_sum(tf.square(x)), 1e-12)


def masked_category_loss(logits: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Softmax cross-entropy averaged over items with a category (label >= 0).

    logits [B, C], labels int [B] (-1 = unknown) -> (mean CE over labelled items (0 if none), count).
    """
    labels = tf.cast(labels, tf.int32)
    mask = tf.cast(labels >= 0, tf.float32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(labels, 0), logits=logits)
    count = tf.reduce_sum(mask)
    return tf.reduce_sum(ce * mask) / tf.maximum(count, 1.0), count


class RQVAELoss:
    """Total loss: recon + codebook + commitment + category_loss_weight · category CE.

    Kept apart from the model (as TFRS tasks are): the model produces the parts, this combines them.
    """

    def __init__(self, category_loss_weight: float):
        if category_loss_weight < 0:
            raise ValueError(f"category_loss_weight must be >= 0, got {category_loss_weight!r}")
        self.category_loss_weight = category_loss_weight

    def __call__(self, x: tf.Tensor, outputs: dict[str, tf.Tensor],
                 labels: tf.Tensor | None) -> dict[str, tf.Tensor]:
        parts = {
            "reconstruction": reconstruction_loss(x, outputs["reconstruction"]),
            "codebook": outputs["codebook_loss"],
            "commitment": outputs["commitment_loss"],
        }
        total = parts["reconstruction"] + parts["codebook"] + parts["commitment"]
        if "category_logits" in outputs and labels is not None:
            parts["category_ce"], parts["category_count"] = masked_category_loss(outputs["category_logits"], labels)
            total += self.category_loss_weight * parts["category_ce"]
        parts["loss"] = total
        return parts


def perplexity_from_counts(counts: tf.Tensor) -> tf.Tensor:
    """exp(H(p)) with p = counts / Σ counts (natural log); 0 when nothing was counted. [K] -> scalar."""
    total = tf.reduce_sum(counts)
    p = counts / tf.maximum(total, 1.0)
    entropy = -tf.reduce_sum(tf.where(p > 0, p * tf.math.log(tf.maximum(p, 1e-30)), 0.0))
    return tf.where(total > 0, tf.exp(entropy), 0.0)


class CodeUsage(tf.keras.metrics.Metric):
    """Usage counts of one codebook level; result() is the perplexity exp(H(p_code)).

    Perplexity K means every code is used equally, 1 means one code takes everything. Keras resets
    it at each epoch start, so at an epoch's end ``counts`` holds that epoch's usage.
    """

    def __init__(self, codebook_size: int, name: str = "perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        if codebook_size < 1:
            raise ValueError(f"codebook_size must be positive, got {codebook_size!r}")
        self.codebook_size = codebook_size
        self.counts = self.add_weight(name="counts", shape=(codebook_size,), initializer="zeros")

    def update_state(self, codes: tf.Tensor, sample_weight: tf.Tensor | None = None) -> None:
        del sample_weight
        self.counts.assign_add(tf.math.bincount(tf.cast(codes, tf.int32), minlength=self.codebook_size,
                                                maxlength=self.codebook_size, dtype=tf.float32))

    def result(self) -> tf.Tensor:
        return perplexity_from_counts(self.counts)

    def reset_state(self) -> None:
        self.counts.assign(tf.zeros_like(self.counts))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "codebook_size": self.codebook_size}


# --------------------------------------------------------------------------- k-means


@tf.function(reduce_retracing=True)
def kmeans(points: tf.Tensor, k: int, iterations: int, seed: tf.Tensor) -> tf.Tensor:
    """k-means++ seeding then ``iterations`` Lloyd steps; points [N, D] -> centres [k, D].

    Pure TF (runs eagerly or inside a graph); ``seed`` int [2] for stateless sampling. A centre
    that loses all its points keeps its position. Needs N >= k.
    """
    points = tf.convert_to_tensor(points, tf.float32)
    n = tf.shape(points)[0]
    tf.debugging.assert_greater_equal(n, k, message=f"k-means needs at least {k} points (one per code)")
    seed = tf.cast(seed, tf.int64)
    first = tf.random.stateless_uniform([], seed, minval=0, maxval=n, dtype=tf.int32)
    centres = tf.tensor_scatter_nd_update(tf.zeros([k, tf.shape(points)[1]]), [[0]], points[first][None])
    min_d2 = tf.maximum(squared_distances(points, points[first][None])[:, 0], 0.0)

    def add_centre(i, centres, min_d2):
        # sample the next centre with probability ∝ D², the squared distance to the nearest centre
        logits = tf.math.log(tf.maximum(min_d2, 1e-30))[None, :]
        step_seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(i, tf.int64))
        idx = tf.random.stateless_categorical(logits, 1, step_seed, dtype=tf.int32)[0, 0]
        centres = tf.tensor_scatter_nd_update(centres, [[i]], points[idx][None])
        min_d2 = tf.minimum(min_d2, tf.maximum(squared_distances(points, points[idx][None])[:, 0], 0.0))
        return i + 1, centres, min_d2

    _, centres, _ = tf.while_loop(lambda i, c, d: i < k, add_centre, (tf.constant(1), centres, min_d2))

    def lloyd(i, centres):
        assign = tf.argmin(squared_distances(points, centres), axis=1, output_type=tf.int32)
        sums = tf.math.unsorted_segment_sum(points, assign, k)
        counts = tf.math.unsorted_segment_sum(tf.ones([n]), assign, k)[:, None]
        return i + 1, tf.where(counts > 0, sums / tf.maximum(counts, 1.0), centres)

    _, centres = tf.while_loop(lambda i, c: i < iterations, lloyd, (tf.constant(0), centres))
    return centres


# --------------------------------------------------------------------------- layers


class ResidualQuantizer(tf.keras.layers.Layer):
    """Residual vector quantizer: L codebooks [K, latent_dim], coarse level first.

    ``call(z [B, D], training) -> (quantized [B, D], codes int32 [B, L], losses)``::

        r_0 = z;  c_l = argmin_k ||r_l - e^l_k||²;  r_{l+1} = r_l - sg[e^l_{c_l}]
        quantized = z + sg[Σ_l e^l_{c_l} - z]                  (straight-through: dq/dz = I)
        losses = {"codebook": Σ_l mean ||sg[r_l] - e^l_{c_l}||²,
                  "commitment": β Σ_l mean ||r_l - sg[e^l_{c_l}]||²}

    ``initialize(z)`` sets each level's codebook by k-means on that level's residuals of z and sets
    ``initialized`` (the model quantizes only once it is True). Ties in argmin go to the lower code.
    """

    def __init__(self, num_levels: int, codebook_size: int, commitment_beta: float = 0.25,
                 kmeans_iterations: int = 20, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_levels, (int, np.integer)) or num_levels < 1:
            raise ValueError(f"num_levels must be a positive integer, got {num_levels!r}")
        if not isinstance(codebook_size, (int, np.integer)) or codebook_size < 2:
            raise ValueError(f"codebook_size must be an integer >= 2, got {codebook_size!r}")
        if commitment_beta < 0:
            raise ValueError(f"commitment_beta must be >= 0, got {commitment_beta!r}")
        if kmeans_iterations < 0:
            raise ValueError(f"kmeans_iterations must be >= 0, got {kmeans_iterations!r}")
        self.num_levels = int(num_levels)
        self.codebook_size = int(codebook_size)
        self.commitment_beta = float(commitment_beta)
        self.kmeans_iterations = int(kmeans_iterations)
        self.seed = int(seed)

    def build(self, input_shape: tf.TensorShape) -> None:
        latent_dim = tf.TensorShape(input_shape)[-1]
        if latent_dim is None:
            raise ValueError(f"ResidualQuantizer needs a known last dimension, got input shape {input_shape}")
        self.codebooks = [
            self.add_weight(name=f"codebook_{level}", shape=(self.codebook_size, latent_dim),
                            initializer=tf.keras.initializers.RandomNormal(stddev=1.0, seed=self.seed + level))
            for level in range(self.num_levels)]
        self.initialized = self.add_weight(name="initialized", shape=(), dtype=tf.bool,
                                           initializer="zeros", trainable=False)
        super().build(input_shape)

    def call(self, z: tf.Tensor, training: bool | None = None
             ) -> tuple[tf.Tensor, tf.Tensor, dict[str, tf.Tensor]]:
        residual = z
        codes, total_codebook, total_commitment = [], 0.0, 0.0
        for codebook in self.codebooks:
            code = tf.argmin(squared_distances(residual, codebook), axis=1, output_type=tf.int32)
            chosen = tf.gather(codebook, code)
            total_codebook += codebook_loss(residual, chosen)
            total_commitment += commitment_loss(residual, chosen, self.commitment_beta)
            residual = residual - tf.stop_gradient(chosen)
            codes.append(code)
        # z - residual_L = Σ_l e_{c_l}; written as z + sg[Σ e - z] the gradient passes straight to z
        quantized = z - tf.stop_gradient(residual)
        return quantized, tf.stack(codes, axis=1), {"codebook": total_codebook, "commitment": total_commitment}

    def lookup(self, codes: tf.Tensor) -> tf.Tensor:
        """Σ_l e^l_{codes[:, l]}: codes int [B, L] -> quantized latent [B, D]."""
        codes = tf.convert_to_tensor(codes, tf.int32)
        return tf.add_n([tf.gather(cb, codes[:, level]) for level, cb in enumerate(self.codebooks)])

    def residuals(self, z: tf.Tensor) -> list[tf.Tensor]:
        """[r_0, ..., r_{L-1}], the residual each level quantizes; z [B, D] -> L × [B, D]."""
        out, residual = [], tf.convert_to_tensor(z, tf.float32)
        for codebook in self.codebooks:
            out.append(residual)
            code = tf.argmin(squared_distances(residual, codebook), axis=1, output_type=tf.int32)
            residual = residual - tf.gather(codebook, code)
        return out

    def initialize(self, z: tf.Tensor) -> tf.Tensor:
        """Sets every level's codebook by k-means on that level's residuals of z [B, D] (B >= K)."""
        residual = tf.convert_to_tensor(z, tf.float32)
        if not self.built:
            self.build(residual.shape)
        for level, codebook in enumerate(self.codebooks):
            centres = kmeans(residual, self.codebook_size, self.kmeans_iterations,
                             tf.constant([self.seed, level], tf.int64))
            codebook.assign(centres)
            code = tf.argmin(squared_distances(residual, centres), axis=1, output_type=tf.int32)
            residual = residual - tf.gather(centres, code)
        self.initialized.assign(True)
        return tf.constant(True)

    def reseed_dead_codes(self, z: tf.Tensor | np.ndarray, usage: np.ndarray, threshold: float,
                          seed: int) -> list[int]:
        """Moves every code with usage[l, k] < threshold onto a random residual of its level.

        Eager, level by level: level l's residuals are computed with levels < l already re-seeded.
        z [B, D] are current latents; usage [L, K] counts (e.g. one epoch's). Returns how many codes
        were re-seeded per level. Residuals are drawn without replacement while there are enough.
        """
        usage = np.asarray(usage, dtype=np.float64)
        if usage.shape != (self.num_levels, self.codebook_size):
            raise ValueError(f"usage must have shape {(self.num_levels, self.codebook_size)}, got {usage.shape}")
        rng = np.random.default_rng(seed)
        residual = np.asarray(z, dtype=np.float32)
        reseeded = []
        for level, codebook in enumerate(self.codebooks):
            dead = np.flatnonzero(usage[level] < threshold)
            values = codebook.numpy()
            if len(dead):
                rows = rng.choice(len(residual), size=len(dead), replace=len(dead) > len(residual))
                values[dead] = residual[rows]
                codebook.assign(values)
            reseeded.append(int(len(dead)))
            code = np.argmin(squared_distances(tf.constant(residual), tf.constant(values)).numpy(), axis=1)
            residual = residual - values[code]
        return reseeded

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_levels": self.num_levels, "codebook_size": self.codebook_size,
                "commitment_beta": self.commitment_beta, "kmeans_iterations": self.kmeans_iterations,
                "seed": self.seed}


def mlp(hidden_dims: tuple[int, ...], output_dim: int, name: str) -> tf.keras.Sequential:
    """Dense(h, relu) for each h in hidden_dims, then a linear Dense(output_dim)."""
    return tf.keras.Sequential([tf.keras.layers.Dense(h, activation="relu") for h in hidden_dims]
                               + [tf.keras.layers.Dense(output_dim)], name=name)


# --------------------------------------------------------------------------- model


class RQVAE(tf.keras.Model):
    """MLP encoder -> ResidualQuantizer -> MLP decoder, with an optional category head on ẑ.

    Quantizes only after ``initialize_codebooks`` (before that ẑ = z and codes are 0: the warm-up);
    ``model.fit`` alone never initialises them, ``train_rqvae`` does. ``encode`` always quantizes.

    ``call(x [B, input_dim]) -> dict``: latent [B, latent_dim], quantized [B, latent_dim] (straight-
    through), codes int32 [B, L], reconstruction [B, input_dim], codebook_loss, commitment_loss,
    and category_logits [B, num_categories] when num_categories > 0.
    Training data: x, or (x, category int [B], -1 = unknown).
    """

    def __init__(self, config: RQVAEConfig, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(config, RQVAEConfig):
            raise TypeError(f"RQVAE needs an RQVAEConfig, got {type(config).__name__}")
        self.config = config
        self.encoder = mlp(config.hidden_dims, config.latent_dim, name="encoder")
        self.quantizer = ResidualQuantizer(config.num_levels, config.codebook_size, config.commitment_beta,
                                           config.kmeans_iterations, config.seed, name="quantizer")
        self.decoder = mlp(tuple(reversed(config.hidden_dims)), config.input_dim, name="decoder")
        self.category_head = (tf.keras.layers.Dense(config.num_categories, name="category_head")
                              if config.num_categories > 0 else None)
        self.loss_fn = RQVAELoss(config.category_loss_weight)
        names = ["loss", "reconstruction", "codebook", "commitment"] + (["category_ce"] if self.category_head else [])
        self.loss_trackers = {n: tf.keras.metrics.Mean(name=n) for n in names}
        self.usage = [CodeUsage(config.codebook_size, name=f"perplexity_{level}")
                      for level in range(config.num_levels)]

    def call(self, x: tf.Tensor, training: bool | None = None) -> dict[str, tf.Tensor]:
        z = self.encoder(x, training=training)
        if not self.quantizer.built:
            self.quantizer.build(z.shape)
        # until initialize_codebooks has run the model is a plain autoencoder (warm-up): ẑ = z
        quantized, codes, vq = tf.cond(
            self.quantizer.initialized, lambda: self.quantizer(z, training=training),
            lambda: (z, tf.zeros([tf.shape(z)[0], self.config.num_levels], tf.int32),
                     {"codebook": tf.constant(0.0), "commitment": tf.constant(0.0)}))
        out = {"latent": z, "quantized": quantized, "codes": codes,
               "reconstruction": self.decoder(quantized, training=training),
               "codebook_loss": vq["codebook"], "commitment_loss": vq["commitment"]}
        if self.category_head is not None:
            out["category_logits"] = self.category_head(quantized, training=training)
        return out

    @property
    def metrics(self) -> list[tf.keras.metrics.Metric]:
        return list(self.loss_trackers.values()) + self.usage

    def _forward_and_losses(self, data: Any, training: bool) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
        x, labels, _ = tf.keras.utils.unpack_x_y_sample_weight(data)
        out = self(x, training=training)
        return out, self.loss_fn(x, out, labels)

    def _update_metrics(self, out: dict[str, tf.Tensor], parts: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        for name, tracker in self.loss_trackers.items():
            if name in parts:
                # the category CE is a mean over labelled items only: weight batches by that count
                tracker.update_state(parts[name], sample_weight=parts.get("category_count") if name == "category_ce"
                                     else None)
        for level, usage in enumerate(self.usage):
            usage.update_state(out["codes"][:, level])
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            out, parts = self._forward_and_losses(data, training=True)
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(parts["loss"], variables), variables))
        return self._update_metrics(out, parts)

    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        return self._update_metrics(*self._forward_and_losses(data, training=False))

    def initialize_codebooks(self, x: tf.Tensor | np.ndarray) -> None:
        """k-means-initialises the codebooks on the latents of x [N, input_dim] (N >= K)."""
        self.quantizer.initialize(self.encoder(tf.convert_to_tensor(x, tf.float32), training=False))

    def code_usage(self) -> np.ndarray:
        """Usage counts [L, K] since the metrics were last reset (in fit: this epoch)."""
        return np.stack([u.counts.numpy() for u in self.usage])

    def encode(self, x: tf.Tensor | np.ndarray) -> tf.Tensor:
        """Semantic ID codes int32 [N, L] of embeddings x [N, input_dim] (graph-safe)."""
        return self.quantizer(self.encoder(tf.convert_to_tensor(x, tf.float32), training=False))[1]

    def decode_codes(self, codes: tf.Tensor | np.ndarray) -> tf.Tensor:
        """x̂ [N, input_dim] from codes int [N, L] (not the disambiguated [N, L+1] IDs)."""
        codes = tf.convert_to_tensor(codes, tf.int32)
        if codes.shape.rank != 2 or codes.shape[-1] != self.config.num_levels:
            raise ValueError(f"codes must have shape [N, {self.config.num_levels}], got {codes.shape}; "
                             "drop the disambiguation code first")
        return self.decoder(self.quantizer.lookup(codes), training=False)

    def reconstruct(self, x: tf.Tensor | np.ndarray) -> tf.Tensor:
        """decode(quantize(encode(x))): x [N, input_dim] -> x̂ [N, input_dim]."""
        return self(tf.convert_to_tensor(x, tf.float32), training=False)["reconstruction"]

    def build_for_input(self) -> "RQVAE":
        """Creates every weight by calling the model once on zeros (before loading weights)."""
        self(tf.zeros([1, self.config.input_dim]), training=False)
        return self

    def get_config(self) -> dict[str, Any]:
        return {"config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> "RQVAE":
        return cls(RQVAEConfig.from_dict(config["config"]))


class SemanticIdEncoder(tf.Module):
    """Serving wrapper: ``codes_from_embedding(embedding float32 [B, input_dim]) -> int32 [B, L]``.

    Save it on its own or attach it to another module (e.g. an item encoder text -> embedding ->
    codes) and call it from that module's tf.function; it holds the RQ-VAE's variables.
    """

    def __init__(self, model: RQVAE, name: str | None = None):
        super().__init__(name=name)
        self.model = model.build_for_input()
        self.codes_from_embedding = tf.function(
            self._codes, input_signature=[tf.TensorSpec([None, model.config.input_dim], tf.float32, name="embedding")])

    def _codes(self, embedding: tf.Tensor) -> tf.Tensor:
        return self.model.encode(embedding)


# --------------------------------------------------------------------------- saving


def _checkpoint(model: RQVAE) -> tf.train.Checkpoint:
    parts = {"encoder": model.encoder, "quantizer": model.quantizer, "decoder": model.decoder}
    if model.category_head is not None:
        parts["category_head"] = model.category_head
    return tf.train.Checkpoint(**parts)


def save_rqvae(model: RQVAE, directory: str) -> None:
    """Writes ``rqvae_config.json`` and the weights (a TF checkpoint, no optimizer state) to directory."""
    model.build_for_input()
    tf.io.gfile.makedirs(os.path.join(directory, os.path.dirname(WEIGHTS_PREFIX)))
    with tf.io.gfile.GFile(os.path.join(directory, CONFIG_FILE), "w") as f:
        json.dump({"model": "rqvae", "config": model.config.to_dict()}, f, indent=1)
    _checkpoint(model).write(os.path.join(directory, WEIGHTS_PREFIX))


def load_rqvae(directory: str) -> RQVAE:
    """Rebuilds the model saved by ``save_rqvae``; every saved weight must match."""
    path = os.path.join(directory, CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"No {CONFIG_FILE} in {directory}: not a directory written by save_rqvae")
    with tf.io.gfile.GFile(path) as f:
        model = RQVAE(RQVAEConfig.from_dict(json.load(f)["config"])).build_for_input()
    _checkpoint(model).read(os.path.join(directory, WEIGHTS_PREFIX)).assert_consumed()
    return model


# --------------------------------------------------------------------------- training


class DeadCodeReseeder(tf.keras.callbacks.Callback):
    """At the end of every epoch but the last, re-seeds codes used < threshold times that epoch.

    New entries are random current residuals of ``sample_size`` random rows of ``embeddings``.
    Writes ``reseeded_<level>`` counts into the epoch's logs.
    """

    def __init__(self, embeddings: np.ndarray, threshold: float, epochs: int, sample_size: int, seed: int):
        super().__init__()
        self.embeddings = embeddings
        self.threshold = threshold
        self.epochs = epochs
        self.sample_size = sample_size
        self.seed = seed

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        model: RQVAE = self.model
        if self.threshold <= 0 or epoch + 1 >= self.epochs or not bool(model.quantizer.initialized.numpy()):
            return
        rng = np.random.default_rng([self.seed, epoch])
        rows = rng.choice(len(self.embeddings), size=min(self.sample_size, len(self.embeddings)), replace=False)
        z = model.encoder(self.embeddings[np.sort(rows)], training=False)
        counts = model.quantizer.reseed_dead_codes(z, model.code_usage(), self.threshold, seed=self.seed + epoch)
        if logs is not None:
            logs.update({f"reseeded_{level}": n for level, n in enumerate(counts)})


class CodebookInitializer(tf.keras.callbacks.Callback):
    """k-means-initialises the codebooks at the start of epoch ``at_epoch`` (after the warm-up) on
    ``sample_size`` random rows of ``embeddings``."""

    def __init__(self, embeddings: np.ndarray, at_epoch: int, sample_size: int, seed: int):
        super().__init__()
        self.embeddings = embeddings
        self.at_epoch = at_epoch
        self.sample_size = sample_size
        self.seed = seed

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.at_epoch:
            rng = np.random.default_rng(self.seed)
            rows = rng.choice(len(self.embeddings), size=min(self.sample_size, len(self.embeddings)), replace=False)
            self.model.initialize_codebooks(self.embeddings[np.sort(rows)])


class EpochProgress(tf.keras.callbacks.Callback):
    """Prints one line per epoch (loss parts, per-level perplexity, re-seeded codes, elapsed) and
    keeps the same figures in ``history``. Given ``embeddings``, also encodes them all at each
    quantized epoch's end (after re-seeding) and reports ``collision_rate``, the share of items
    whose code tuple is shared."""

    def __init__(self, epochs: int, warmup_epochs: int = 0, embeddings: np.ndarray | None = None):
        super().__init__()
        self.epochs = epochs
        self.warmup_epochs = warmup_epochs
        self.embeddings = embeddings
        self.history: list[dict[str, float]] = []
        self._start = time.time()
        self._epoch_start = self._start

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._start = time.time()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start = time.time()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if self.embeddings is not None and bool(self.model.quantizer.initialized.numpy()):
            logs["collision_rate"] = collision_rate(predict_codes(self.model, self.embeddings))
        now = time.time()
        entry = {"epoch": epoch + 1, **logs, "epoch_s": round(now - self._epoch_start, 2),
                 "elapsed_s": round(now - self._start, 1)}
        self.history.append(entry)
        levels = sorted(k for k in logs if k.startswith("perplexity_"))
        perplexity = " ".join(f"{logs[k]:.1f}" for k in levels)
        reseeded = [int(logs[k]) for k in sorted(k for k in logs if k.startswith("reseeded_"))]
        parts = " ".join(f"{k}={logs[k]:.4f}" for k in ("loss", "reconstruction", "codebook", "commitment",
                                                         "category_ce") if k in logs)
        stage = " (warm-up, not quantized)" if epoch < self.warmup_epochs else ""
        print(f"[rqvae] epoch {epoch + 1}/{self.epochs}{stage}: {parts} perplexity=[{perplexity}]"
              + (f" reseeded={reseeded}" if reseeded else "")
              + (f" collisions={logs['collision_rate']:.3f}" if "collision_rate" in logs else "")
              + f" elapsed={entry['elapsed_s']}s", flush=True)


def predict_codes(model: RQVAE, embeddings: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """``model.encode`` in batches: embeddings [N, input_dim] -> codes int32 [N, L] (numpy)."""
    x = np.asarray(embeddings, dtype=np.float32)
    parts = [model.encode(x[start:start + batch_size]).numpy() for start in range(0, len(x), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, model.config.num_levels), np.int32)


def _check_inputs(embeddings: np.ndarray, categories: np.ndarray | None,
                  config: RQVAEConfig) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != config.input_dim:
        raise ValueError(f"embeddings must have shape [N, {config.input_dim}] (config.input_dim), got {x.shape}")
    if len(x) < config.codebook_size:
        raise ValueError(f"need at least codebook_size={config.codebook_size} items to initialise the "
                         f"codebooks, got {len(x)}; lower codebook_size")
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        raise ValueError(f"embeddings contain NaN/inf in {len(bad)} rows, first rows {bad[:5].tolist()}")
    if categories is None:
        return x, np.full(len(x), -1, np.int32)
    cats = np.asarray(categories)
    if cats.shape != (len(x),) or not np.issubdtype(cats.dtype, np.integer):
        raise ValueError(f"categories must be integers of shape [{len(x)}], got {cats.dtype} {cats.shape}")
    if config.num_categories == 0 and (cats >= 0).any():
        raise ValueError("categories were given but config.num_categories is 0 (no category head); "
                         "set num_categories or pass categories=None")
    if (cats >= config.num_categories).any():
        raise ValueError(f"category indices must be < num_categories={config.num_categories} "
                         f"(-1 = unknown), got max {int(cats.max())}")
    return x, cats.astype(np.int32)


def train_rqvae(embeddings: np.ndarray, categories: np.ndarray | None,
                config: RQVAEConfig) -> tuple[RQVAE, list[dict[str, float]]]:
    """Trains an RQ-VAE on item embeddings [N, input_dim] with optional categories [N] (-1 = unknown).

    Adam for ``warmup_epochs`` as a plain autoencoder, then k-means initialisation of the codebooks
    on ``kmeans_init_size`` random rows and ``epochs`` quantized epochs, re-seeding dead codes
    between them. Prints a line per epoch (loss parts, per-level perplexity, re-seeded codes,
    collision rate over all items, elapsed). Returns the model and the per-epoch log (the same
    figures plus ``epoch_s``).
    """
    x, labels = _check_inputs(embeddings, categories, config)
    tf.keras.utils.set_random_seed(config.seed)
    model = RQVAE(config)
    model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
    data = (tf.data.Dataset.from_tensor_slices((x, labels))
            .shuffle(len(x), seed=config.seed, reshuffle_each_iteration=True)
            .batch(config.batch_size).prefetch(tf.data.AUTOTUNE))
    print(f"[rqvae] {len(x):,} items x {config.input_dim}-d, {int((labels >= 0).sum()):,} with a category; "
          f"L={config.num_levels} K={config.codebook_size} latent={config.latent_dim}", flush=True)
    total = config.warmup_epochs + config.epochs
    callbacks = [CodebookInitializer(x, config.warmup_epochs, config.kmeans_init_size, config.seed),
                 DeadCodeReseeder(x, config.dead_code_threshold, total, config.kmeans_init_size, config.seed),
                 EpochProgress(total, config.warmup_epochs, x)]
    model.fit(data, epochs=total, verbose=0, callbacks=callbacks)
    return model, callbacks[-1].history
