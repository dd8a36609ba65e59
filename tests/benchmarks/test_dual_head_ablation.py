"""The dual-head ablation's random-ID control: the same ID tuples, dealt to the items at random."""
import numpy as np

from benchmarks.dual_head_ablation import random_ids
from trainer.dual_head.data import ItemSpace


def test_random_ids_permute_the_id_tuples_and_nothing_else():
    n = 50
    codes = np.stack([np.arange(n) % 7, np.arange(n) % 5, np.arange(n)], 1).astype(np.int32)  # unique tuples
    items = ItemSpace(np.array([f"i{k}" for k in range(n)]), codes, np.eye(n, 4, dtype=np.float32),
                      np.arange(n, dtype=np.int32) % 3, np.arange(n, dtype=np.float32))
    got = random_ids(items, seed=1)
    assert sorted(map(tuple, got.codes.tolist())) == sorted(map(tuple, codes.tolist()))  # same tuples, still unique
    assert (got.codes != codes).any(axis=1).mean() > 0.9  # nearly every item has another tuple
    for name in ("item_ids", "content", "category", "train_count"):
        np.testing.assert_array_equal(getattr(got, name), getattr(items, name))
    np.testing.assert_array_equal(random_ids(items, seed=1).codes, got.codes)  # seeded
    np.testing.assert_array_equal(items.codes, codes)  # the input is not modified
