"""Popularity / ItemCF / UserMostFrequent on tiny hand-computed examples and a numpy oracle."""
import math

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.evaluation.baselines import ItemCF, Popularity, UserMostFrequent
from recsys.evaluation.metrics import top_k


def a(*xs):
    return np.array(xs, dtype=np.int64)


TRAIN = [a(0, 1, 1), a(1, 2), a()]  # item counts: 0:1, 1:3, 2:1, 3:0, 4:0


def test_popularity():
    model = Popularity().fit(TRAIN, num_items=5)
    scores = model.score(np.array([7, 8]), [a(0), a()])
    assert scores.dtype == np.float32
    assert scores.tolist() == [[1, 3, 1, 0, 0], [1, 3, 1, 0, 0]]
    assert top_k(scores, 3).tolist() == [[1, 0, 2], [1, 0, 2]]


# Three baskets over 5 items (item 4 never seen):
#   n = [2, 3, 1, 1, 0];  C01 = 2, C02 = 1, C12 = 1, C13 = 1
S01, S02, S12, S13 = 2 / math.sqrt(2 * 3), 1 / math.sqrt(2 * 1), 1 / math.sqrt(3 * 1), 1 / math.sqrt(3 * 1)
BASKETS = [a(0, 1, 2), a(0, 1, 0), a(1, 3)]  # duplicate 0 in basket 2 counts once
SIM = np.array(
    [
        [0, S01, S02, 0, 0],
        [S01, 0, S12, S13, 0],
        [S02, S12, 0, 0, 0],
        [0, S13, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ]
)


def test_itemcf_cosine_similarity_hand_computed():
    model = ItemCF().fit(BASKETS, num_items=5)
    assert sp.issparse(model.sim)
    np.testing.assert_allclose(model.sim.toarray(), SIM, rtol=1e-6)
    raw = ItemCF().fit(BASKETS, num_items=5, normalize=None).sim.toarray()
    assert raw[0].tolist() == [0, 2, 1, 0, 0] and raw[1].tolist() == [2, 0, 1, 1, 0]


def test_itemcf_scores_sum_similarities_of_history():
    model = ItemCF().fit(BASKETS, num_items=5)
    scores = model.score(np.arange(4), [a(0), a(0, 3), a(), a(3, 3)])
    assert scores.dtype == np.float32 and scores.shape == (4, 5)
    np.testing.assert_allclose(scores[0], SIM[0], rtol=1e-6)
    np.testing.assert_allclose(scores[1], [0, S01 + S13, S02, 0, 0], rtol=1e-6)
    assert not scores[2].any()
    np.testing.assert_allclose(scores[3], [0, 2 * S13, 0, 0, 0], rtol=1e-6)  # repeats add up


def test_itemcf_recency_decay():
    model = ItemCF(recency_decay=0.5).fit(BASKETS, num_items=5)
    # history [0, 3]: weight of item 0 = 0.5^(2-1-0) = 0.5, of item 3 = 0.5^0 = 1.
    scores = model.score(np.arange(1), [a(0, 3)])
    np.testing.assert_allclose(scores[0], [0, 0.5 * S01 + S13, 0.5 * S02, 0, 0], rtol=1e-6)
    with pytest.raises(ValueError):
        ItemCF(recency_decay=0.0)


def _dense_oracle(baskets, histories, num_items, decay):
    b = np.zeros((len(baskets), num_items))
    for r, items in enumerate(baskets):
        b[r, items] = 1.0
    c = b.T @ b
    np.fill_diagonal(c, 0.0)
    n = b.sum(axis=0)
    denom = np.sqrt(np.outer(n, n))
    sim = np.divide(c, denom, out=np.zeros_like(c), where=denom > 0)
    out = np.zeros((len(histories), num_items))
    for u, hist in enumerate(histories):
        for pos, j in enumerate(hist):
            w = 1.0 if decay is None else decay ** (len(hist) - 1 - pos)
            out[u] += w * sim[:, j]
    return out


@pytest.mark.parametrize("decay", [None, 0.8])
def test_itemcf_matches_dense_numpy_oracle(decay):
    rng = np.random.default_rng(42)
    num_items = 60
    baskets = [rng.integers(0, num_items, size=rng.integers(1, 9)) for _ in range(200)]
    histories = [rng.integers(0, num_items, size=rng.integers(0, 12)) for _ in range(25)]
    model = ItemCF(recency_decay=decay).fit(baskets, num_items)
    assert (model.sim != model.sim.T).nnz == 0
    got = model.score(np.arange(25), histories)
    np.testing.assert_allclose(got, _dense_oracle(baskets, histories, num_items, decay), rtol=1e-5, atol=1e-6)


def test_user_most_frequent():
    model = UserMostFrequent().fit(TRAIN, num_items=5)  # popularity [1, 3, 1, 0, 0]
    history = a(2, 0, 2, 0, 3)  # L = 5
    scores = model.score(np.arange(2), [history, a()])
    assert scores.dtype == np.float32
    # freq + (last_pos + 1) / (L + 1); others: 1e-6 * pop / max(pop)
    expected = [2 + 4 / 6, 1e-6 * 3 / 3, 2 + 3 / 6, 1 + 5 / 6, 0.0]
    np.testing.assert_allclose(scores[0], expected, rtol=1e-6)
    np.testing.assert_allclose(scores[1], [1e-6 / 3, 1e-6, 1e-6 / 3, 0, 0], rtol=1e-6)
    assert top_k(scores, 5).tolist() == [[0, 2, 3, 1, 4], [1, 0, 2, 3, 4]]


def test_user_most_frequent_recency_breaks_frequency_ties():
    model = UserMostFrequent().fit(TRAIN, num_items=5)
    scores = model.score(np.arange(1), [a(4, 3, 3, 4, 2)])  # 3 and 4 twice, 4 more recent
    assert top_k(scores, 3).tolist() == [[4, 3, 2]]


def test_baselines_are_deterministic_and_validate_input():
    for model in (Popularity().fit(TRAIN, 5), ItemCF().fit(BASKETS, 5), UserMostFrequent().fit(TRAIN, 5)):
        hist = [a(0, 1), a(2)]
        np.testing.assert_array_equal(model.score(np.arange(2), hist), model.score(np.arange(2), hist))
        with pytest.raises(ValueError):
            model.score(np.arange(3), hist)
    with pytest.raises(ValueError):
        ItemCF().fit(BASKETS, 5).score(np.arange(1), [a(5)])
    with pytest.raises(ValueError):
        ItemCF().fit(BASKETS, 5, normalize="jaccard")
    with pytest.raises(ValueError):
        Popularity().fit([a(-1)], 5)
