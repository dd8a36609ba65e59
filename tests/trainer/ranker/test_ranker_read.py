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
