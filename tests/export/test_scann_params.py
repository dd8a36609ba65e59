"""default_scann_params: the ScaNN settings the exporter uses when none are tuned, exactly, per catalogue size.

benchmarks/scann_scale.py measures them (recall@10 against brute force, through the served SavedModel):
README "ScaNN at a million items", docs/results/scann_scale.json.
"""
import pytest

from export.retrieval import ScannParams, default_scann_params

K = 600  # IndexBuilder's max_k + max_exclude: the candidates ScaNN returns


@pytest.mark.parametrize("num_items, expected", [
    (16, ScannParams(4, 4, 600)),            # the smallest catalogue ScaNN accepts: every leaf
    (1_682, ScannParams(41, 41, 600)),       # MovieLens-100K: every leaf (a partial search only loses neighbours)
    (14_190, ScannParams(119, 119, 600)),    # the Instacart sample
    (50_000, ScannParams(224, 224, 600)),    # the last size searched in full (50,000 points)
    (100_000, ScannParams(316, 158, 600)),   # 50,000 of 100,000 points: half the leaves
    (1_000_000, ScannParams(1000, 50, 600)), # 5% of a million
    (10_000_000, ScannParams(2000, 10, 600)),  # leaves capped at 2,000 (of 5,000 points each)
])
def test_settings_per_catalogue_size(num_items, expected):
    assert default_scann_params(num_items, K) == expected


def test_every_returned_candidate_is_reordered_and_small_k_still_reorders_200():
    assert default_scann_params(1_000_000, 1_000).num_reordering_candidates == 1_000
    assert default_scann_params(1_000_000, 10).num_reordering_candidates == 200
