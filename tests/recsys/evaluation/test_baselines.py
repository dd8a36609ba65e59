"""Popularity / ItemCF / ItemKNN / UserMostFrequent on tiny hand-computed examples and numpy oracles."""
import ast
import importlib.util
import math
import pathlib

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.evaluation.baselines import ItemCF, ItemKNN, Popularity, UserMostFrequent, knn_cosine_similarity
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


def test_itemcf_similarity_built_in_row_blocks_is_the_same_matrix():
    """Issue 14: the similarity is built ``block_size`` rows at a time; the stored matrix is bit-identical."""
    whole = ItemCF().fit(BASKETS, num_items=5).sim
    for block in (1, 2, 4):
        got = ItemCF(block_size=block).fit(BASKETS, num_items=5).sim
        assert got.dtype == whole.dtype and got.has_sorted_indices
        for part in ("indptr", "indices", "data"):
            assert np.array_equal(getattr(got, part), getattr(whole, part)), (block, part)
    with pytest.raises(ValueError, match="block_size"):
        ItemCF(block_size=0)


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


# ItemKNN (RecBole 1.2.1): five training users over 5 items, user 3 bought item 0 twice, so
#   X = [[1,1,1,0,0], [1,1,0,0,0], [0,1,1,1,0], [2,0,0,1,0], [0,1,0,0,1]]
#   Σ_u X_ui² = [6, 4, 2, 2, 1];  c01 = 2, c02 = 1, c03 = 2, c12 = 2, c13 = 1, c14 = 1, c23 = 1
KNN_TRAIN = [a(0, 1, 2), a(0, 1), a(1, 2, 3), a(0, 0, 3), a(4, 1)]


def knn_sim(c, sq_i, sq_j, shrink):
    return c / (math.sqrt(sq_i * sq_j) + shrink + 1e-6)


def test_itemknn_hand_computed_shrinkage_and_top_k():
    shrink = 1.0
    s01, s02, s03 = knn_sim(2, 6, 4, shrink), knn_sim(1, 6, 2, shrink), knn_sim(2, 6, 2, shrink)  # .339 .224 .448
    s12, s13, s14 = knn_sim(2, 4, 2, shrink), knn_sim(1, 4, 2, shrink), knn_sim(1, 4, 1, shrink)  # .522 .261 .333
    s23 = knn_sim(1, 2, 2, shrink)  # .333
    model = ItemKNN(k=2, shrink=shrink).fit(KNN_TRAIN, num_items=5)
    assert sp.issparse(model.sim) and model.sim.dtype == np.float32
    # W[j, i]: the 2 most similar items j != i of each column i:
    #   column 0 keeps 3 (.448), 1 (.339), drops 2 (.224); column 1 keeps 2 (.522), 0 (.339),
    #   drops 4 (.333), 3 (.261); column 2 keeps 1, 3, drops 0; column 3 keeps 0, 2, drops 1;
    #   column 4 has a single non-zero neighbour (1). Row 4 is empty: W is not symmetric.
    expected = np.array(
        [
            [0, s01, 0, s03, 0],
            [s01, 0, s12, 0, s14],
            [0, s12, 0, s23, 0],
            [s03, 0, s23, 0, 0],
            [0, 0, 0, 0, 0],
        ]
    )
    np.testing.assert_allclose(model.sim.toarray(), expected, rtol=1e-6)
    scores = model.score(np.arange(3), [a(0), a(3, 3, 4), a()])
    assert scores.dtype == np.float32 and scores.shape == (3, 5)
    np.testing.assert_allclose(scores[0], [0, s01, 0, s03, 0], rtol=1e-6)
    np.testing.assert_allclose(scores[1], [2 * s03, 0, 2 * s23, 0, 0], rtol=1e-6)  # repeats add up
    assert not scores[2].any()  # empty history
    # Without shrinkage column 1 prefers item 4 (1/2 = .5) to item 0 (2/sqrt(24) = .408).
    plain = ItemKNN(k=2).fit(KNN_TRAIN, num_items=5).sim.toarray()
    assert np.flatnonzero(plain[:, 1]).tolist() == [2, 4]
    np.testing.assert_allclose(plain[4, 1], 1 / (2 + 1e-6), rtol=1e-6)


def test_itemknn_k_larger_than_item_count_keeps_every_neighbour():
    x = np.zeros((5, 5))
    for u, hist in enumerate(KNN_TRAIN):
        np.add.at(x[u], hist, 1.0)
    c = x.T @ x
    np.fill_diagonal(c, 0.0)
    norms = np.sqrt((x**2).sum(axis=0))
    full = c / (np.outer(norms, norms) + 0.5 + 1e-6)
    model = ItemKNN(k=100, shrink=0.5).fit(KNN_TRAIN, num_items=5)
    np.testing.assert_allclose(model.sim.toarray(), full, rtol=1e-6)
    assert model.sim.nnz == np.count_nonzero(full)  # zeros (and the diagonal) are not stored
    np.testing.assert_allclose(model.score(np.arange(5), KNN_TRAIN), x @ full, rtol=1e-5)  # RecBole's X @ W


def test_itemknn_ties_at_the_kth_place_keep_the_lower_item_id():
    # All pairs co-occur once with equal norms: every similarity is 1 / (1 + 1e-6).
    w = ItemKNN(k=1).fit([a(0, 1, 2, 3)], num_items=4).sim.toarray()
    assert [np.flatnonzero(w[:, i]).tolist() for i in range(4)] == [[1], [0], [0], [0]]
    w2 = ItemKNN(k=2).fit([a(0, 1, 2, 3)], num_items=4).sim.toarray()
    assert [np.flatnonzero(w2[:, i]).tolist() for i in range(4)] == [[1, 2], [0, 2], [0, 1], [0, 1]]


def test_itemknn_empty_inputs_and_validation():
    model = ItemKNN().fit([a(), a()], num_items=3)  # no training interactions at all
    assert model.sim.shape == (3, 3) and model.sim.nnz == 0
    assert not model.score(np.arange(2), [a(0, 1), a()]).any()
    with pytest.raises(ValueError):
        ItemKNN(k=0)
    with pytest.raises(ValueError):
        ItemKNN(shrink=-1.0)
    with pytest.raises(ValueError):
        ItemKNN().fit(KNN_TRAIN, num_items=4)  # item 4 out of range
    with pytest.raises(ValueError):
        ItemKNN().fit(KNN_TRAIN, num_items=5).score(np.arange(2), [a(0)])
    with pytest.raises(ValueError):
        knn_cosine_similarity(sp.csr_matrix(np.array([[1.0, -1.0]])))


def test_itemknn_is_deterministic_and_independent_of_block_size():
    rng = np.random.default_rng(3)
    train = [rng.integers(0, 40, size=rng.integers(0, 15)) for _ in range(60)]
    first, second = ItemKNN(k=5).fit(train, 40), ItemKNN(k=5).fit(train, 40)
    for w in (first.sim, second.sim):
        assert w.has_sorted_indices
    np.testing.assert_array_equal(first.sim.indptr, second.sim.indptr)
    np.testing.assert_array_equal(first.sim.indices, second.sim.indices)
    np.testing.assert_array_equal(first.sim.data, second.sim.data)
    hist = train[:10]
    np.testing.assert_array_equal(first.score(np.arange(10), hist), second.score(np.arange(10), hist))
    x = ItemKNN._counts(train, 40, "training")
    for block_size in (1, 7, 40):
        w = knn_cosine_similarity(x, k=5, block_size=block_size)
        assert (w != first.sim).nnz == 0


def recbole_compute_similarity_dense(x, k, shrink):
    """RecBole 1.2.1 ComputeSimilarity(method="item").compute_similarity() transcribed to a dense
    column loop (float32, same operation order); ties at the k-th place by lower id (stable sort)."""
    x = np.asarray(x, dtype=np.float32)
    n_items = x.shape[1]
    top = min(k, n_items)
    norms = np.sqrt((x**2).sum(axis=0))
    w = np.zeros((n_items, n_items), dtype=np.float32)
    for i in range(n_items):
        col = x.T.dot(x[:, i])
        col[i] = 0.0
        col = np.multiply(col, 1 / (norms[i] * norms + shrink + 1e-6))
        idx = np.argsort(-col, kind="stable")[:top]
        idx = idx[col[idx] != 0.0]
        w[idx, i] = col[idx]
    return w


@pytest.mark.parametrize("k, shrink", [(1, 0.0), (4, 0.0), (4, 2.5), (10, 0.0), (60, 1.0)])
def test_itemknn_matches_dense_transcription_of_recbole(k, shrink):
    rng = np.random.default_rng(7)
    num_items = 30
    train = [rng.integers(0, num_items, size=rng.integers(0, 10)) for _ in range(50)]  # with repeats
    model = ItemKNN(k=k, shrink=shrink).fit(train, num_items)
    x = ItemKNN._counts(train, num_items, "training").toarray()
    assert x.max() > 1  # counts, as RecBole's inter_matrix sums duplicate interactions
    oracle = recbole_compute_similarity_dense(x, k, shrink)
    np.testing.assert_array_equal(model.sim.toarray(), oracle)  # integer co-occurrences: bit-exact
    np.testing.assert_allclose(model.score(np.arange(50), train), x @ oracle, rtol=1e-5, atol=1e-7)


def _recbole_compute_similarity():
    """RecBole's own ComputeSimilarity class, compiled from the installed source (needs no torch)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("recbole is not installed")
    path = pathlib.Path(spec.submodule_search_locations[0]) / "model" / "general_recommender" / "itemknn.py"
    tree = ast.parse(path.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ComputeSimilarity")
    namespace = {"np": np, "sp": sp}
    exec(compile(ast.Module(body=[cls], type_ignores=[]), str(path), "exec"), namespace)
    return namespace["ComputeSimilarity"]


@pytest.mark.parametrize("k, shrink", [(3, 0.0), (8, 2.0), (100, 0.0)])
def test_itemknn_matches_recbole_source(k, shrink):
    compute_similarity = _recbole_compute_similarity()
    rng = np.random.default_rng(11)
    # Real-valued entries: no ties at the k-th place, so RecBole's argpartition choice is unique.
    x = sp.random(70, 45, density=0.15, random_state=5, format="csr", dtype=np.float64)
    x.data = rng.uniform(0.5, 3.0, size=x.nnz)
    _, expected = compute_similarity(x, topk=k, shrink=shrink, method="item").compute_similarity()
    got = knn_cosine_similarity(x, k=k, shrink=shrink)
    expected, got = expected.toarray(), got.toarray()
    np.testing.assert_array_equal(got != 0, expected != 0)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # Counts (ties possible): per column the same kept values, whichever tied items RecBole picks.
    train = [rng.integers(0, 45, size=rng.integers(0, 12)) for _ in range(70)]
    counts = ItemKNN._counts(train, 45, "training")
    _, expected = compute_similarity(counts, topk=k, shrink=shrink, method="item").compute_similarity()
    got = ItemKNN(k=k, shrink=shrink).fit(train, 45).sim.toarray()
    np.testing.assert_array_equal(np.sort(got, axis=0), np.sort(expected.toarray(), axis=0))
