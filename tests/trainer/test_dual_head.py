"""Dual-head transformer: config, order positions, losses (exact values), sampling, teacher/beam consistency."""
import numpy as np
import pytest
import tensorflow as tf

from trainer import dual_head as D
from trainer.semantic_ids import disambiguate

SMALL = dict(d_model=16, num_heads=2, encoder_layers=1, decoder_layers=1, ff_dim=32, max_history=6,
             memory_tokens=2, batch_size=8, epochs=1, beam_width=12, distill_candidates=5, dropout=0.0)


def _items(n=12, seed=0):
    rng = np.random.default_rng(seed)
    codes = disambiguate(rng.integers(0, 3, (n, 2)))
    return D.ItemSpace(np.array([f"i{j}" for j in range(n)], dtype=object), codes.astype(np.int32),
                       rng.normal(size=(n, 8)).astype(np.float32), (np.arange(n) % 3).astype(np.int32),
                       np.where(np.arange(n) < n - 2, 5.0, 0.0).astype(np.float32))


def _data(items, rows=20, seed=1):
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


def test_config_validation():
    with pytest.raises(ValueError, match="Unknown dual-head hyperparameters"):
        D.DualHeadConfig.from_dict({"layers": 2})
    with pytest.raises(ValueError, match="divisible"):
        D.DualHeadConfig(d_model=10, num_heads=3)
    with pytest.raises(ValueError, match="distillation needs a trained generative head"):
        D.DualHeadConfig(generative_weight=0.0, distill_weight=1.0)
    with pytest.raises(ValueError, match="variant"):
        D.DualHeadConfig(variant="bert4rec")
    assert not D.DualHeadConfig(variant="sasrec", distill_weight=0).has_generative_head


def test_relative_orders_count_orders_not_items():
    assert D.relative_orders(np.array([0, 0, 1, 3]), 4, 64).tolist() == [4, 4, 3, 1]
    assert D.relative_orders(np.array([0, 99]), 100, 8).tolist() == [7, 1]  # clipped to max_orders - 1


def test_multi_positive_infonce_exact_value():
    logits = tf.constant([[2.0, 1.0, 0.0, -1.0]])
    is_pos = tf.constant([[True, True, False, False]])
    valid = tf.constant([[True, True, True, False]])  # the last column is padding
    got = float(D.multi_positive_infonce(logits, is_pos, valid))
    neg = np.log(np.exp(0.0))  # the only valid negative
    want = np.mean([np.log1p(np.exp(neg - 2.0)), np.log1p(np.exp(neg - 1.0))])
    assert got == pytest.approx(want, rel=1e-6)


def test_infonce_skips_rows_without_positive():
    logits = tf.constant([[2.0, 0.0], [5.0, 1.0]])
    is_pos = tf.constant([[True, False], [False, False]])
    got = float(D.multi_positive_infonce(logits, is_pos, tf.ones([2, 2], tf.bool)))
    assert got == pytest.approx(np.log1p(np.exp(-2.0)), rel=1e-6)


def test_listmle_exact_value_and_kl_zero_on_agreement():
    teacher = tf.constant([[0.0, 3.0, 1.0]])
    student = tf.constant([[0.5, 1.0, 2.0]])
    # teacher order: 1, 2, 0 → student scores 1.0, 2.0, 0.5
    s = np.array([1.0, 2.0, 0.5])
    want = np.mean([np.log(np.exp(s[i:]).sum()) - s[i] for i in range(3)])
    assert float(D.listmle(teacher, student)) == pytest.approx(want, rel=1e-6)
    assert float(D.distillation_kl(student * 2.0, student, 2.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(D.distillation_kl(teacher, student, 1.0)) > 0.0


def test_pair_sampler_debiased_law_and_hard_negatives_are_never_positives():
    items = _items()
    data = _data(items)
    cfg = D.DualHeadConfig(**SMALL)
    sampler = D.PairSampler(data, items, cfg)
    counts = np.bincount(sampler.pair_target, minlength=items.num_items)
    w = 1.0 / np.sqrt(counts[sampler.pair_target])
    np.testing.assert_allclose(sampler.pair_prob, w / w.sum())
    for _ in range(20):
        b = sampler.batch(sampler.epoch()[:cfg.batch_size])
        assert b["hard"].shape == (cfg.batch_size, 2)
        for row in range(cfg.batch_size):
            pos = set(b["positives"][row].tolist()) - {-1}
            assert b["anchor"][row] in pos
            assert not (set(b["hard"][row].tolist()) & pos)
    plain = D.PairSampler(data, items, D.DualHeadConfig(**dict(SMALL, debias_targets=False)))
    assert sorted(plain.epoch().tolist()) == list(range(len(plain.pair_target)))


def _model(items, **over):
    tf.keras.utils.set_random_seed(0)
    model = D.DualHeadModel(items, D.DualHeadConfig(**dict(SMALL, **over)))
    D._build(model, items)
    return model


def test_beam_search_scores_equal_teacher_forced_likelihoods_and_wide_beam_is_exhaustive():
    items = _items()
    data = _data(items, rows=3)
    model = _model(items)
    states, mask = model.encode(tf.constant(data.history), tf.constant(data.order_rel), tf.constant(data.events))
    memory = model.memory(states, mask)
    all_items = tf.tile(tf.range(items.num_items)[None], [3, 1])
    exact = model.code_log_likelihood(memory, all_items).numpy()                    # [3, N]
    assert np.all(exact < 0) and np.all(np.exp(exact).sum(axis=1) <= 1.0 + 1e-5)  # IDs are a subset of all tuples
    allowed = np.ones((3, items.num_items), bool)
    allowed[0, 0] = False
    top, scores = model.beam_search(memory, tf.constant(allowed), beam_width=items.num_items)
    for r in range(3):
        order = [i for i in np.argsort(-exact[r], kind="stable") if allowed[r, i]]
        assert top.numpy()[r, : len(order)].tolist() == order
        np.testing.assert_allclose(scores.numpy()[r, : len(order)], exact[r, order], rtol=1e-4, atol=1e-5)


def test_recent_memory_holds_the_latest_item_states():
    items = _items()
    data = _data(items, rows=3)
    model = _model(items, memory_recent=2)
    states, mask = model.encode(tf.constant(data.history), tf.constant(data.order_rel), tf.constant(data.events))
    memory = model.memory(states, mask).numpy()
    assert memory.shape == (3, SMALL["memory_tokens"] + 2, SMALL["d_model"])
    for r in range(3):
        n = int((data.history[r] < items.num_items).sum())
        want = states.numpy()[r, [max(n - 2, 0), n - 1]]
        np.testing.assert_allclose(memory[r, -2:], want, rtol=1e-6)
    top, scores = model.beam_search(model.memory(states, mask), tf.ones([3, items.num_items], tf.bool), 4)
    assert top.shape == (3, 4) and np.all(np.isfinite(scores.numpy()))


def test_training_step_updates_both_heads_and_reduces_the_loss():
    items = _items()
    data = _data(items, rows=40)
    cfg = D.DualHeadConfig(**dict(SMALL, learning_rate=0.01))
    sampler = D.PairSampler(data, items, cfg)
    model = D.DualHeadModel(items, cfg)
    trainer = D.Trainer(model, cfg)
    batch = {k: tf.constant(v) for k, v in sampler.batch(np.arange(cfg.batch_size)).items()}
    first = trainer.train_step(batch, distill=True)
    assert set(first) == {"retrieval", "generative", "distill_kl", "distill_listwise", "total"}
    for _ in range(30):
        last = trainer.train_step(batch, distill=True)
    assert float(last["total"]) < float(first["total"])
    assert set(trainer.train_step(batch, distill=False)) == {"retrieval", "generative", "total"}


def test_cold_items_are_embedded_from_content_alone():
    items = _items()
    model = _model(items)
    vec = model.item_vectors(tf.constant([items.num_items - 1])).numpy()       # never trained: no ID residual
    mapped = model.map_content(tf.constant(items.content[-1:])).numpy()
    np.testing.assert_allclose(vec, mapped, atol=1e-6)
    known = model.item_vectors(tf.constant([0])).numpy()
    assert not np.allclose(known, model.map_content(tf.constant(items.content[:1])).numpy(), atol=1e-4)


def test_sasrec_variant_scores_with_free_ids():
    items = _items()
    model = _model(items, variant="sasrec", distill_weight=0.0, generative_weight=0.0)
    assert not model.generative and model.mapping is None
    cfg = model.config
    sampler = D.PairSampler(_data(items), items, cfg)
    losses = D.Trainer(model, cfg).losses({k: tf.constant(v) for k, v in sampler.batch(np.arange(8)).items()})
    assert set(losses) == {"retrieval"}
