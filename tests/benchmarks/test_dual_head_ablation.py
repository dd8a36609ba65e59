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


def test_fused_vectors_give_each_part_its_share():
    from benchmarks.dual_head_ablation import fused_item_vectors

    content = np.array([[3.0, 4.0], [1.0, 0.0]])
    collab = np.array([[0.0, 2.0, 0.0], [5.0, 0.0, 0.0]])
    fused = fused_item_vectors(content, collab, 0.25)
    np.testing.assert_allclose(fused[0], [0.6 * np.sqrt(0.75), 0.8 * np.sqrt(0.75), 0, 0.5, 0], atol=1e-7)
    np.testing.assert_allclose(np.sum(fused[:, 2:] ** 2, axis=1), [0.25, 0.25], atol=1e-7)
    import pytest

    with pytest.raises(ValueError, match="share must be in"):
        fused_item_vectors(content, collab, 1.0)
    with pytest.raises(ValueError, match="differ in items"):
        fused_item_vectors(content, collab[:1], 0.5)


def test_collaborative_ids_replace_only_the_codes_with_unique_tuples():
    from benchmarks.dual_head_ablation import collaborative_ids

    n, rng = 40, np.random.default_rng(0)
    codes = np.stack([np.arange(n) % 7, np.arange(n)], 1).astype(np.int32)
    items = ItemSpace(np.array([f"i{k}" for k in range(n)]), codes, rng.normal(size=(n, 6)).astype(np.float32),
                      np.arange(n, dtype=np.int32) % 3, np.arange(n, dtype=np.float32))
    got, report = collaborative_ids(items, rng.normal(size=(n, 4)), 0.5,
                                    {"codebook_size": 4, "num_levels": 2, "latent_dim": 4, "hidden_dims": [8],
                                     "epochs": 2, "warmup_epochs": 1, "kmeans_init_size": 8, "batch_size": 16})
    assert len(set(map(tuple, got.codes.tolist()))) == n and got.codes.shape[0] == n
    assert report["collaborative_share"] == 0.5 and report["num_items"] == n and len(report["levels"]) == 2
    for name in ("item_ids", "content", "category", "train_count"):
        np.testing.assert_array_equal(getattr(got, name), getattr(items, name))


def test_variant_names_survive_the_comma_separated_variants_option():
    """``--variants`` splits on commas, so a name with a comma could never be asked for."""
    from benchmarks.dual_head_ablation import VARIANTS

    assert [name for name in VARIANTS if "," in name or name != name.strip()] == []


def test_make_ablation_converged_runs_known_variants_each_teacher_before_its_student():
    """``make ablation-converged`` runs its rows in order: every name must be a variant, and a variant that
    distils from a saved teacher must come after the row that trains (and saves) that teacher."""
    import os
    import re

    from benchmarks.dual_head_ablation import VARIANTS

    makefile = open(os.path.join(os.path.dirname(__file__), "..", "..", "Makefile")).read()
    block = re.search(r"^CONVERGED := (.*?)\n\n", makefile, re.S | re.M).group(1)
    rows = [r.split("|") for r in re.findall(r'"([^"]+)"', block)]
    variants = [r[0] for r in rows]
    assert len(variants) >= 12 and all(len(r) == 3 and r[2].isdigit() for r in rows)
    assert [v for v in variants if v not in VARIANTS] == []
    assert len({r[1] for r in rows}) == len(rows)  # one report per row
    for i, v in enumerate(variants):
        teacher = VARIANTS[v].get("teacher_from")
        if teacher:
            assert teacher in variants[:i], (v, teacher)
