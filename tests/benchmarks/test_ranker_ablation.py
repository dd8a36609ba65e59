"""The ranker ablation's data variant: exposures without one candidate source, exactly."""
import numpy as np

from benchmarks.ranker_ablation import without_source
from trainer.ranker.data import ExposureSet
from transform import exposures as X

PAD = 9


def _unit(rows: dict[int, dict[str, int]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """items [n] and features [n, F] for {item: {source: rank (0-based)}} in the given order."""
    feats = np.zeros((n, len(X.FEATURE_NAMES)), np.float32)
    items = np.full(n, PAD, np.int32)
    w = len(X.SOURCE_FEATURES)
    for c, (item, ranks) in enumerate(rows.items()):
        items[c] = item
        for s, r in ranks.items():
            i = X.SOURCES.index(s)
            feats[c, i * w:(i + 1) * w] = (1.0, 0.5, 1.0 / (r + 1))
        feats[c, -1] = item  # a user-item feature, kept as is
    return items, feats


def test_without_source_removes_its_only_candidates_zeroes_it_and_keeps_the_merged_order():
    # merged order with the student: 4 (student 0), 1 (graph 0), 2 (student 1, two_tower 3), 3 (two_tower 1), 5
    rows = {4: {"student": 0}, 1: {"graph": 0}, 2: {"student": 1, "two_tower": 3}, 3: {"two_tower": 1},
            5: {"popularity": 1, "student": 2}}
    items, feats = _unit(rows, 6)
    click = np.array([[1, 0, 1, 0, 0, 0]], np.float32)
    d = ExposureSet(["u"], items[None], feats[None], click, click * 0, (items != PAD)[None],
                    np.zeros((1, 2), np.int32), np.zeros((1, 2), np.int32), np.zeros((1, 2), np.int32),
                    np.zeros((1, 3), np.float32), [np.array([4, 2])], np.zeros(1, np.int64))
    got = without_source(d, "student", PAD)
    # without the student: 1 (graph 0), 3 (two_tower 1), 5 (popularity 1: ties after two_tower), 2 (two_tower 3)
    assert got.items[0].tolist() == [1, 3, 5, 2, PAD, PAD]
    assert got.mask[0].tolist() == [True] * 4 + [False] * 2
    assert got.click[0].tolist() == [0, 0, 0, 1, 0, 0]  # item 4's click is gone with it; item 2's kept
    s = X.SOURCES.index("student") * len(X.SOURCE_FEATURES)
    assert not got.features[..., s:s + len(X.SOURCE_FEATURES)].any()
    assert got.features[0, :4, -1].tolist() == [1, 3, 5, 2]
    assert got.targets[0].tolist() == [4, 2]  # a target the set lost is still a target (a miss)
    assert d.items[0].tolist() == [4, 1, 2, 3, 5, PAD]  # the input is not modified
