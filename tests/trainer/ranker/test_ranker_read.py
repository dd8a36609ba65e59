"""read_exposures (batched tf.io parsing into flat arrays, issue 14) returns the former reader's arrays exactly."""
import math

import numpy as np
import pytest

from recsys import features as F
from trainer.ranker import data as D
from transform import exposures as X


def _write(path, examples):
    import tensorflow as tf

    path.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(path / "data_tfrecord-00000-of-00001.gz"), options="GZIP") as w:
        for e in examples:
            w.write(e)


def _units(rng, catalogue, count):
    units = []
    for u in range(count):
        n_hist = int(rng.integers(0, 30))
        pos = np.sort(rng.integers(0, 12, n_hist)).tolist()
        hist = [X.Action(p, str(rng.choice(catalogue)), str(rng.choice(["click", "purchase", "cart", "like"])))
                for p in pos]
        cands = {s: ([str(i) for i in rng.choice(catalogue, int(rng.integers(0, 12)), replace=False)], None)
                 for s in X.SOURCES if rng.random() < 0.7}
        cands = {s: (ids, rng.normal(size=len(ids)).tolist()) for s, (ids, _) in cands.items()}
        targets = [str(t) for t in rng.choice(catalogue, int(rng.integers(1, 4)))]
        vector = rng.normal(size=int(rng.choice([0, 3]))).astype(np.float32) if u % 7 else None
        units.append(X.Unit(f"u{u}", F.TRAIN, hist, targets, ["purchase"] * len(targets),
                            (pos[-1] if pos else 0) + 1, 1000 + u, cands, vector))
    return units


@pytest.mark.parametrize("max_actions, max_candidates, batch_size", [(20, 0, 1024), (4, 7, 5), (50, 3, 1)])
def test_read_exposures_equals_the_former_reader(tmp_path, max_actions, max_candidates, batch_size):
    rng = np.random.default_rng(0)
    catalogue = np.array([f"i{k}" for k in range(40)] + ["상품", "unknown1", "unknown2"])
    units = _units(rng, catalogue, 37)
    counts = {str(i): int(rng.integers(0, 9)) for i in catalogue[:40]}
    category = {str(i): f"c{k % 4}" for k, i in enumerate(catalogue)}
    rows = X.exposure_examples(units, X.unit_sources(units), X.ItemLookup(counts, category), X.MAX_ACTIONS)
    _write(tmp_path / "Split-train", [e for e, _ in rows])
    positions = {str(i): k for k, i in enumerate(catalogue[:41])}  # the "unknown" items are not in the catalogue
    new = D.read_exposures(str(tmp_path), "train", positions, max_actions, max_candidates, batch_size=batch_size)
    old = D.read_exposures_lists(str(tmp_path), "train", positions, max_actions, max_candidates)
    assert new.user_ids == old.user_ids and len(new) == 37
    for name in ("items", "features", "click", "conversion", "mask", "actions", "action_type", "action_gap",
                 "user_vector", "request_time"):
        a, b = getattr(new, name), getattr(old, name)
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), name
    assert len(new.targets) == len(old.targets)
    assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(new.targets, old.targets))
    assert new.mask.any() and (~new.mask).any() and (new.actions == len(positions)).any()
    assert math.isclose(float(new.features.sum()), float(old.features.sum()))


def test_read_exposures_refuses_an_unknown_action_type(tmp_path):
    unit = X.Unit("u", F.TRAIN, [X.Action(0, "a", "teleport")], ["a"], ["purchase"], 1, 5,
                  {"graph": (["a"], [1.0])}, None)
    rows = X.exposure_examples([unit], X.unit_sources([unit]), X.ItemLookup({}, {}), X.MAX_ACTIONS)
    _write(tmp_path / "Split-train", [e for e, _ in rows])
    for reader in (D.read_exposures, D.read_exposures_lists):
        with pytest.raises(KeyError):
            reader(str(tmp_path), "train", {"a": 0}, 5)


def _written_split(tmp_path, count=37, files=1):
    rng = np.random.default_rng(0)
    catalogue = np.array([f"i{k}" for k in range(40)] + ["unknown1"])
    units = _units(rng, catalogue, count)
    counts = {str(i): int(rng.integers(0, 9)) for i in catalogue[:40]}
    rows = X.exposure_examples(units, X.unit_sources(units), X.ItemLookup(counts, {}), X.MAX_ACTIONS)
    examples = [e for e, _ in rows]
    import tensorflow as tf

    (tmp_path / "Split-train").mkdir(parents=True)
    for f in range(files):
        with tf.io.TFRecordWriter(str(tmp_path / "Split-train" / f"data-{f:05d}.gz"), options="GZIP") as w:
            for e in examples[f::files]:
                w.write(e)
    return {str(i): k for k, i in enumerate(catalogue[:40])}


def _unit_rows(s: D.ExposureSet) -> dict:
    """unit (user, request time) → its arrays with the padding cut off (comparable across paddings)."""
    out = {}
    for r in range(len(s)):
        m = s.mask[r]
        out[(s.user_ids[r], int(s.request_time[r]))] = (
            s.items[r][m].tolist(), s.features[r][m].tolist(), s.click[r][m].tolist(), s.conversion[r][m].tolist(),
            s.actions[r].tolist(), s.action_type[r].tolist(), s.action_gap[r].tolist(), s.user_vector[r].tolist(),
            s.targets[r].tolist())
    return out


def test_the_stream_yields_every_unit_once_per_epoch_in_a_seeded_shuffled_order(tmp_path):
    positions = _written_split(tmp_path, files=3)
    whole = D.read_exposures(str(tmp_path), "train", positions, 20)
    stream = D.ExposureStream(str(tmp_path), "train", positions, 20, batch_units=8, shuffle_buffer=16, seed=3)
    assert (len(stream), stream.exposures, stream.clicks) == (37, int(whole.mask.sum()), int(whole.click.sum()))
    assert stream.user_dim == whole.user_vector.shape[1] == 3
    orders = []
    for epoch in (1, 1, 2):
        batches = list(stream.batches(epoch))
        assert [len(b) for b in batches] == [8, 8, 8, 8, 5]
        assert all(b.user_vector.shape[1] == 3 for b in batches)  # every batch the same user width
        got = {}
        for b in batches:
            got.update(_unit_rows(b))
        assert got == _unit_rows(whole)  # the same units, exactly, whatever a batch's padding
        orders.append([u for b in batches for u in b.user_ids])
    assert orders[0] == orders[1] and orders[0] != orders[2]  # an epoch's order is fixed by (seed, epoch)
    assert orders[0] != whole.user_ids  # shuffled


def test_the_streams_feature_moments_equal_the_in_memory_ones(tmp_path):
    from trainer.ranker.training import feature_moments

    positions = _written_split(tmp_path)
    mean, std = D.ExposureStream(str(tmp_path), "train", positions, 20, batch_units=8).moments()
    want_mean, want_std = feature_moments(D.read_exposures(str(tmp_path), "train", positions, 20))
    assert mean.dtype == std.dtype == np.float32
    np.testing.assert_allclose(mean, want_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, want_std, rtol=1e-5, atol=1e-6)


def test_split_bytes_is_the_splits_size_on_disk(tmp_path):
    import os

    _written_split(tmp_path, files=2)
    files = sorted((tmp_path / "Split-train").iterdir())
    assert D.split_bytes(str(tmp_path), "train") == sum(os.path.getsize(f) for f in files) > 0


@pytest.mark.parametrize("stream", [False, True])
def test_training_runs_on_the_exposures_in_memory_or_streamed(tmp_path, stream):
    from trainer.ranker import RankerConfig, train

    positions = _written_split(tmp_path, count=60, files=2)
    n = len(positions)
    rng = np.random.default_rng(1)
    items = D.ItemTables(np.vstack([rng.normal(size=(n, 4)), np.zeros((1, 4))]).astype(np.float32),
                         np.array([k % 3 for k in range(n)] + [3], np.int32), 3, np.zeros((n + 1, 0), np.int32), 0,
                         np.full(n + 1, D.MISSING_CREATED_AT, np.int64))
    config = RankerConfig(semantic_ids=False, id_dim=4, content_dim=4, category_dim=2, user_dim=3, deep_units=(8,),
                          negatives=5, batch_size=16, max_epochs=3, patience=3)
    train_set = (D.ExposureStream(str(tmp_path), "train", positions, config.actions, config.batch_size, 32)
                 if stream else D.read_exposures(str(tmp_path), "train", positions, config.actions))
    val_set = D.read_exposures(str(tmp_path), "train", positions, config.actions)
    result = train(train_set, val_set, config, items, log=lambda m: None)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert all(np.isfinite(h["loss"]) for h in result.history)
    assert result.history[-1]["loss"] < result.history[0]["loss"]  # it learns
    assert round(result.best_val["NDCG@10"], 5) == max(h["NDCG@10"] for h in result.history)


def test_the_trainer_streams_a_split_larger_than_stream_above_mb(tmp_path):
    from trainer.ranker import RankerConfig

    positions = _written_split(tmp_path)
    mb = D.split_bytes(str(tmp_path), "train") / 2 ** 20
    held, about = D.training_exposures(str(tmp_path), positions, RankerConfig(stream_above_mb=mb))
    assert isinstance(held, D.ExposureSet) and about["how"] == "in memory" and not about["streamed"]
    streamed, about_s = D.training_exposures(str(tmp_path), positions, RankerConfig(stream_above_mb=mb * 0.99))
    assert isinstance(streamed, D.ExposureStream) and about_s["streamed"]
    assert {k: about[k] for k in ("units", "exposures", "clicks", "user_dim")} == \
        {k: about_s[k] for k in ("units", "exposures", "clicks", "user_dim")} == \
        {"units": 37, "exposures": int(held.mask.sum()), "clicks": int(held.click.sum()), "user_dim": 3}
    with pytest.raises(ValueError, match="stream_above_mb"):
        RankerConfig(stream_above_mb=-1)
    with pytest.raises(ValueError, match="shuffle_buffer"):
        RankerConfig(shuffle_buffer=0)


def test_a_user_sample_reads_exactly_those_users_units(tmp_path):
    from recsys.evaluation.metrics import sample_rows
    from transform import examples_io

    positions = _written_split(tmp_path, files=2)
    files = examples_io.split_files(str(tmp_path), "train")
    everyone = D.read_exposures(str(tmp_path), "train", positions, 20)
    ids = examples_io.user_ids(files)
    assert sorted(ids) == sorted(everyone.user_ids)
    users = examples_io.sampled_users(files, 10)
    assert users == {ids[i] for i in sample_rows(ids, 10)} and len(users) == 10
    some = D.read_exposures(str(tmp_path), "train", positions, 20, users=users)
    assert sorted(some.user_ids) == sorted(users)
    whole = _unit_rows(everyone)
    assert _unit_rows(some) == {k: v for k, v in whole.items() if k[0] in users}
    assert examples_io.sampled_users(files, 0) is None and examples_io.sampled_users(files, 37) is None
    assert len(D.read_exposures(str(tmp_path), "train", positions, 20, users=frozenset())) == 0
    with pytest.raises(ValueError, match=">= 0"):
        examples_io.sampled_users(files, -1)
