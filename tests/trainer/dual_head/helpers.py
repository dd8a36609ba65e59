"""Tiny item spaces, splits and models for the dual-head unit tests."""
import numpy as np
import tensorflow as tf

from trainer import dual_head as D
from trainer.semantic_ids import disambiguate

SMALL = dict(d_model=16, num_heads=2, encoder_layers=1, decoder_layers=1, ff_dim=32, max_history=6,
             memory_tokens=2, batch_size=8, epochs=1, beam_width=12, distill_candidates=5, dropout=0.0)
SASREC = dict(variant="sasrec", distill_weight=0.0, generative_weight=0.0)


def make_items(n=12, seed=0, codes=None, content=None):
    """n items in 3 categories (j % 3), the last two never trained (no ID residual)."""
    rng = np.random.default_rng(seed)
    codes = disambiguate(rng.integers(0, 3, (n, 2))) if codes is None else codes
    content = rng.normal(size=(n, 8)).astype(np.float32) if content is None else content
    return D.ItemSpace(np.array([f"i{j}" for j in range(n)], dtype=object), codes.astype(np.int32), content,
                       (np.arange(n) % 3).astype(np.int32),
                       np.where(np.arange(n) < n - 2, 5.0, 0.0).astype(np.float32))


def make_data(items, rows=20, seed=1):
    """Rows of 1-6 history items (each its own order) and 1-3 positives, all among the trained items."""
    rng = np.random.default_rng(seed)
    hist = np.full((rows, 6), items.pad, np.int32)
    rel = np.zeros((rows, 6), np.int32)
    ev = np.zeros((rows, 6), np.int32)
    positives, full = [], []
    for r in range(rows):
        n = int(rng.integers(1, 7))
        hist[r, :n] = rng.integers(0, items.num_items - 2, n)
        rel[r, :n] = np.arange(n, 0, -1)
        ev[r, :n] = 4
        positives.append(np.unique(rng.integers(0, items.num_items - 2, int(rng.integers(1, 4)))))
        full.append(hist[r, :n].astype(np.int64))
    return D.SequenceData(hist, rel, ev, positives, full, [f"u{r}" for r in range(rows)])


def make_model(items, **over):
    """A built model (every variable created) of the SMALL config with ``over``, seed 0."""
    tf.keras.utils.set_random_seed(0)
    model = D.DualHeadModel(items, D.DualHeadConfig(**dict(SMALL, **over)))
    model.build_variables()
    return model


def batch_of(sampler, pairs):
    return {k: tf.constant(v) for k, v in sampler.batch(np.asarray(pairs)).items()}


def encode(model, data):
    return model.encode(tf.constant(data.history), tf.constant(data.order_rel), tf.constant(data.events))
