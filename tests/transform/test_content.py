"""Content embeddings for textless items and validation of precomputed vectors."""
import numpy as np
import pandas as pd
import pytest

from transform import content


def test_category_onehots_one_column_per_level_prefix():
    out = content.category_onehots(["a > x", "a > y", "b > x", ""])
    # columns in first-seen order: a, a > x, a > y, b, b > x
    assert out.tolist() == [[1, 1, 0, 0, 0], [1, 0, 1, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0]]


def _baskets(spec):
    return [np.array(b) for b in spec]


def _cos(emb, a, b):
    return float(emb[a] @ emb[b] / np.linalg.norm(emb[a]) / np.linalg.norm(emb[b]))


def _random_baskets(seed=7, num_items=60, n=300):
    rng = np.random.default_rng(seed)
    return [rng.choice(num_items, size=rng.integers(2, 7), replace=False) for _ in range(n)]


def _positive_part(ppmi, rank):
    """Best rank-``rank`` positive semi-definite approximation of a symmetric matrix (numpy's own eigh)."""
    values, vectors = np.linalg.eigh(ppmi)
    top = np.argsort(-values)[:rank]
    top = top[values[top] > 0]
    return (vectors[:, top] * values[top]) @ vectors[:, top].T


# Two pairs bought together 20 times each, with rarer bridges (0-2, 1-3-4). Its PPMI has
# eigenvalues ±1.658, ±1.313, 0, 0: with a truncated SVD (all four singular values tied in
# pairs) cos(0, 1) came out anywhere between -0.33 and +0.005 depending on the start vector.
TWO_PAIRS = [[0, 1]] * 20 + [[2, 3]] * 20 + [[0, 2]] * 2 + [[1, 3, 4]]

# (baskets, number of items, triples (a, b, c) meaning cos(a, b) > cos(a, c): b was bought with a, c never).
HAND_MADE = {
    "two pairs with bridges": (TWO_PAIRS, 6, [(0, 1, 3), (2, 3, 1), (1, 0, 2), (3, 2, 0)]),
    "three triples": ([[0, 1, 2]] * 5 + [[3, 4, 5]] * 5 + [[6, 7, 8]] * 5 + [[2, 3], [5, 6]], 10,
                      [(0, 1, 3), (0, 2, 6), (4, 5, 0), (4, 3, 8), (7, 8, 1), (8, 6, 2)]),
    # (0 and 2 are never bought together but share partner 1: bought with the same things, they may be close.)
    "chain": ([[0, 1]] * 10 + [[1, 2]] * 10 + [[2, 3]] * 10 + [[3, 4]] * 10 + [[5, 6]] * 4, 8,
              [(0, 1, 3), (0, 1, 4), (2, 3, 5), (4, 3, 1), (5, 6, 0), (6, 5, 3)]),
    "popular item in every basket": ([[0, 1, 2]] * 6 + [[0, 3, 4]] * 6 + [[0, 5, 6]] * 6 + [[1, 2], [3, 4], [5, 6]],
                                     7, [(1, 2, 3), (3, 4, 5), (5, 6, 1), (2, 1, 6)]),
}


def test_copurchase_puts_items_bought_together_close():
    for dim in (3, 64):
        emb = content.copurchase_embeddings(_baskets(TWO_PAIRS), num_items=6, dim=dim)
        assert emb.shape == (6, dim)
        assert not emb[5].any()  # never bought: zero vector
        assert cos_gap(emb, 0, 1, 3) > 0.5 and cos_gap(emb, 2, 3, 1) > 0.5


def cos_gap(emb, a, b, c):
    return _cos(emb, a, b) - _cos(emb, a, c)


@pytest.mark.parametrize("name", sorted(HAND_MADE))
@pytest.mark.parametrize("dim", [3, 8, 64])  # at least one dimension per group of items
def test_items_bought_together_are_closer_than_items_never_bought_together(name, dim):
    spec, num_items, triples = HAND_MADE[name]
    emb = content.copurchase_embeddings(_baskets(spec), num_items=num_items, dim=dim)
    assert emb.shape == (num_items, dim) and emb.dtype == np.float32
    bought = {i for b in spec for i in b}
    for i in range(num_items):
        assert emb[i].any() == (i in bought), i  # zero exactly for items never co-purchased
    for a, b, c in triples:
        assert _cos(emb, a, b) > _cos(emb, a, c) + 0.1, (a, b, c, _cos(emb, a, b), _cos(emb, a, c))


def test_isolated_pairs_have_cosine_one_not_zero():
    """The negative eigen-direction of a pair must not count as similarity.

    An isolated pair i-j has PPMI [[0, p], [p, 0]]: eigenvalue +p on (1, 1) and -p on (1, -1),
    both singular value p. U·sqrt(S) of the SVD keeps both and gives U·S·Uᵀ = p·I: cosine 0
    between two items only ever bought together. Only the positive direction may remain.
    """
    spec = [[0, 1]] * 3 + [[2, 3]] * 5 + [[4, 5]] * 7  # PMI log(15/3), log(15/5), log(15/7): no ties
    emb = content.copurchase_embeddings(_baskets(spec), num_items=7, dim=8)
    cos = emb @ emb.T / np.outer(np.linalg.norm(emb, axis=1), np.linalg.norm(emb, axis=1)).clip(1e-12)
    np.testing.assert_allclose(cos[:6, :6], np.kron(np.eye(3), np.ones((2, 2))), atol=1e-6)
    assert not emb[6].any() and not emb[:, 3:].any()  # 3 positive directions, zero padding after them


@pytest.mark.parametrize("dim", [1, 2, 5, 64])
def test_dot_products_are_the_positive_part_of_ppmi(dim):
    """E·Eᵀ is the best rank-dim PSD approximation of PPMI: negative eigenvalues contribute nothing."""
    for spec, num_items in [(TWO_PAIRS, 6), (_random_baskets(num_items=25, n=80), 25)]:
        ppmi = content.ppmi_matrix(_baskets(spec), num_items).toarray()
        values = np.linalg.eigvalsh(ppmi)
        assert values.min() < -0.5  # indefinite: the case a truncated SVD gets wrong
        emb = content.copurchase_embeddings(_baskets(spec), num_items=num_items, dim=dim)
        np.testing.assert_allclose(emb @ emb.T, _positive_part(ppmi, dim), atol=1e-5)


def test_tied_eigenvalues_across_the_cut_are_left_out_not_picked_arbitrarily():
    # Two identical isolated pairs: one eigenvalue twice. dim=2 cannot hold both, and either
    # basis vector of the tied eigenspace would be an arbitrary choice, so neither is kept.
    spec = [[0, 1]] * 4 + [[2, 3]] * 4 + [[4, 5]]  # PMI of 4-5 (bought once) is the largest
    for dim in (1, 2):
        emb = content.copurchase_embeddings(_baskets(spec), num_items=6, dim=dim)
        assert emb[4:, 0].all() and not emb[:4].any() and not emb[:, 1:].any()
    emb = content.copurchase_embeddings(_baskets(spec), num_items=6, dim=3)
    assert emb.any(axis=1).all()
    assert _cos(emb, 0, 1) == pytest.approx(1) and _cos(emb, 0, 2) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("dense_max", [content.DENSE_MAX_ITEMS, 0], ids=["dense", "arpack"])
def test_copurchase_is_bit_identical_across_calls_and_global_seeds(monkeypatch, dense_max):
    monkeypatch.setattr(content, "DENSE_MAX_ITEMS", dense_max)
    baskets = _random_baskets()
    np.random.seed(1)
    first = content.copurchase_embeddings(baskets, num_items=64, dim=8)
    second = content.copurchase_embeddings(baskets, num_items=64, dim=8)
    np.random.seed(12345)
    np.random.uniform(size=100)
    third = content.copurchase_embeddings(baskets, num_items=64, dim=8)
    assert first.tobytes() == second.tobytes() == third.tobytes()
    assert first[:60].any(axis=1).all() and not first[60:].any()
    signs = first[np.argmax(np.abs(first), axis=0), np.arange(8)]
    assert (signs > 0).all()  # sign convention: each component's largest entry is positive


def test_arpack_and_dense_solvers_agree_and_the_seed_does_not_matter(monkeypatch):
    baskets = _random_baskets()
    dense = content.copurchase_embeddings(baskets, num_items=60, dim=8)
    assert all(content.copurchase_embeddings(baskets, 60, 8, seed=s).tobytes() == dense.tobytes() for s in (1, 2))
    monkeypatch.setattr(content, "DENSE_MAX_ITEMS", 0)
    for seed in (0, 1, 2):
        sparse = content.copurchase_embeddings(baskets, num_items=60, dim=8, seed=seed)
        np.testing.assert_allclose(sparse, dense, atol=1e-4)  # same components, same signs


def test_copurchase_degenerate_inputs():
    assert not content.copurchase_embeddings([], num_items=3, dim=4).any()
    assert not content.copurchase_embeddings(_baskets([[0], [1], [2]]), num_items=3, dim=4).any()
    emb = content.copurchase_embeddings(_baskets([[0, 1]]), num_items=3, dim=4)  # rank 1 < dim: zero-padded
    assert emb.shape == (3, 4) and emb[:2, 0].all() and not emb[:, 1:].any() and not emb[2].any()


def test_structure_embeddings_balance_the_two_blocks():
    emb = content.structure_embeddings(["a", "b"], np.array([[3.0, 4.0], [0.0, 0.0]], np.float32))
    np.testing.assert_allclose(emb, [[1, 0, 0.6, 0.8], [0, 1, 0, 0]])


def test_precomputed_npz_is_reordered_to_the_catalogue(tmp_path):
    path = tmp_path / "e.npz"
    np.savez(path, item_id=np.array(["b", "a"]), embedding=np.array([[2, 2], [1, 1]], np.float32))
    assert content.load_precomputed(str(path), ["a", "b"], expected_dim=2).tolist() == [[1, 1], [2, 2]]


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"item_id": ["a", "b"], "e0": [1.0, np.nan], "e1": [0.0, 1.0]}), "row 2 .*NaN"),
    (pd.DataFrame({"item_id": ["a"], "e0": [1.0], "e1": [0.0]}), "1 catalogue items have no embedding"),
    (pd.DataFrame({"item_id": ["a", "a"], "e0": [1.0, 2.0]}), "duplicate item_id 'a'"),
    (pd.DataFrame({"id": ["a"], "e0": [1.0]}), "no 'item_id' column"),
])
def test_precomputed_errors_name_the_problem(tmp_path, frame, message):
    path = tmp_path / "e.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(content.EmbeddingInputError, match=message):
        content.load_precomputed(str(path), ["a", "b"])


def test_precomputed_dimension_is_checked(tmp_path):
    path = tmp_path / "e.parquet"
    pd.DataFrame({"item_id": ["a", "b"], "embedding": [[1.0, 2.0], [3.0, 4.0]]}).to_parquet(path)
    assert content.load_precomputed(str(path), ["a", "b"]).shape == (2, 2)
    with pytest.raises(content.EmbeddingInputError, match="dimension 2, expected 512"):
        content.load_precomputed(str(path), ["a", "b"], expected_dim=512)
