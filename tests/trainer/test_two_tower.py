"""Two-tower model: config validation, padding, learning a known pattern, SavedModel round trip."""
import numpy as np
import pytest
import tensorflow as tf

from trainer import base, two_tower


def test_config_rejects_unknown_and_bad_values():
    with pytest.raises(ValueError, match="Unknown two-tower hyperparameters"):
        two_tower.TwoTowerConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="epochs must be positive"):
        two_tower.TwoTowerConfig.from_dict({"epochs": 0})
    assert two_tower.TwoTowerConfig.from_dict({"epochs": 3}).epochs == 3


def test_pad_histories_keeps_the_most_recent_items():
    out = base.pad_histories([np.array([1, 2, 3, 4]), np.array([7]), np.array([], dtype=int)], 3, pad=9)
    assert out.tolist() == [[2, 3, 4], [7, 9, 9], [9, 9, 9]]


def _cyclic_arrays(n_items=20, n=4000, seed=0):
    """Histories of consecutive items; the target is always the next one (mod n_items)."""
    rng = np.random.default_rng(seed)
    last = rng.integers(0, n_items, n)
    hist = np.stack([(last - 2) % n_items, (last - 1) % n_items, last], axis=1).astype(np.int32)
    target = ((last + 1) % n_items).astype(np.int32)
    return base.SequenceArrays(hist, target, (target % 2).astype(np.int32), np.ones(n, np.float32),
                               np.full(n, n / n_items, np.float32), np.arange(n, dtype=np.int32))


def test_learns_a_deterministic_next_item_pattern():
    n_items = 20
    arrays = _cyclic_arrays(n_items)
    config = two_tower.TwoTowerConfig(embedding_dim=16, hidden_dim=32, max_history=3, epochs=15, batch_size=128,
                                      learning_rate=0.01)
    tf.keras.utils.set_random_seed(0)
    model = two_tower.TwoTowerModel(n_items, 2, config)
    model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
    model.fit(two_tower._dataset(arrays, 128, 0, True, logq_correction=True), epochs=config.epochs, verbose=0)
    items = model.item_tower(tf.range(n_items), tf.range(n_items) % 2).numpy()
    test = _cyclic_arrays(n_items, n=200, seed=1)
    top1 = np.argmax(model.query_tower(tf.constant(test.history)).numpy() @ items.T, axis=1)
    assert np.mean(top1 == test.target) > 0.9


def test_validation_hit_rate_in_blocks_and_on_a_sample(monkeypatch):
    """The per-epoch HR@10: scored a block of rows at a time (the same figure as one [rows, items] product), and
    on ``val_rows`` rows drawn once when asked."""
    from recsys.evaluation import metrics

    n_items = 40
    config = two_tower.TwoTowerConfig(embedding_dim=8, hidden_dim=8, max_history=3, epochs=1, batch_size=32)
    tf.keras.utils.set_random_seed(0)
    model = two_tower.TwoTowerModel(n_items, 2, config)
    val = _cyclic_arrays(n_items, n=300, seed=2)
    cats = (np.arange(n_items) % 2).astype(np.int32)
    items = model.item_tower(tf.range(n_items), tf.constant(cats)).numpy()
    users = model.query_tower(tf.constant(val.history)).numpy()
    top = np.argpartition(-(users @ items.T), 10, axis=1)[:, :10]
    expected = float(np.mean(np.any(top == val.target[:, None], axis=1)))
    monkeypatch.setattr(metrics, "SCORE_BLOCK", 7 * n_items)  # 7 rows per block
    whole = two_tower.ValidationHitRate(model, val, cats)
    assert whole.hit_rate() == expected and 0 < expected < 1
    sampled = two_tower.ValidationHitRate(model, val, cats, val_rows=50, seed=3)
    rows = sampled._rows
    assert len(rows) == 50 == len(set(rows.tolist())) and rows.tolist() == sorted(rows.tolist())
    assert sampled.hit_rate() == float(np.mean(np.any(top[rows] == val.target[rows, None], axis=1)))
    assert two_tower.ValidationHitRate(model, val, cats, val_rows=50, seed=3)._rows.tolist() == rows.tolist()
    with pytest.raises(ValueError, match="val_users must be >= 0"):
        two_tower.TwoTowerConfig(val_users=-1)


def test_towers_round_trip_in_a_fresh_process(tmp_path, fresh_process):
    config = two_tower.TwoTowerConfig(embedding_dim=8, hidden_dim=8, max_history=3, epochs=1)
    model = two_tower.TwoTowerModel(10, 3, config)
    hist = np.array([[1, 2, 11], [11, 11, 11]], np.int32)  # 11 = padding
    model.query_tower(tf.constant(hist))
    model.item_tower(tf.constant([0]), tf.constant([0]))
    path = str(tmp_path / "towers")
    tf.io.gfile.makedirs(path + "/assets.extra")
    two_tower.save_towers(model, config, path, train_log=[])
    expected_q = model.query_tower(tf.constant(hist)).numpy()
    expected_i = model.item_tower(tf.constant([0, 10]), tf.constant([1, 3])).numpy()
    got = fresh_process(f"""
        import tensorflow as tf
        m = tf.saved_model.load({path!r})
        q = m.signatures["query_embedding"](history=tf.constant({hist.tolist()}, tf.int32))["embedding"]
        i = m.signatures["item_embedding"](item=tf.constant([0, 10]), category=tf.constant([1, 3]))["embedding"]
        result = {{"q": q.numpy().tolist(), "i": i.numpy().tolist(), "sigs": sorted(m.signatures.keys())}}
    """)
    assert got["sigs"] == ["item_embedding", "query_embedding"]
    np.testing.assert_allclose(got["q"], expected_q, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["i"], expected_i, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(expected_q, axis=1), 1.0, rtol=1e-5)  # L2-normalised


def test_max_steps_per_epoch_stops_each_epoch_after_that_many_batches(monkeypatch):
    """Scale probes (issue 14): ``max_steps_per_epoch`` > 0 fits each epoch on the first N batches of its
    reshuffled order; 0 (default) on every batch."""
    arrays = _cyclic_arrays(20, n=512)  # 4 batches of 128
    monkeypatch.setattr(two_tower.base, "load_sequence_arrays", lambda *a, **k: arrays)
    monkeypatch.setattr(two_tower.base, "split_files", lambda files: files)
    vocab = type("V", (), {"num_items": 20, "categories": ["a", "b"], "item_pad": 20})()
    for cap, steps in ((0, 8), (3, 6), (5, 8)):
        config = two_tower.TwoTowerConfig(embedding_dim=8, hidden_dim=8, max_history=3, epochs=2, batch_size=128,
                                          max_steps_per_epoch=cap)
        model, _ = two_tower.train(["t"], ["v"], vocab, config)
        assert int(model.optimizer.iterations) == steps, cap
    with pytest.raises(ValueError, match="max_steps_per_epoch"):
        two_tower.TwoTowerConfig(max_steps_per_epoch=-1)


def test_ragged_tail_places_each_rows_last_values():
    rows, cols, at = base.ragged_tail(np.array([3, 1, 0, 2]), 2)
    assert (rows.tolist(), cols.tolist(), at.tolist()) == ([0, 0, 1, 3, 3], [0, 1, 0, 0, 1], [1, 2, 3, 4, 5])
    out = base.tail_matrix(np.array([10, 11, 12, 20, 40, 41]), np.array([3, 1, 0, 2]), 2, pad=-1)
    assert out.tolist() == [[11, 12], [20, -1], [-1, -1], [40, 41]]
