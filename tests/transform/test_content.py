"""Content embeddings for textless items and validation of precomputed vectors."""
import numpy as np
import pandas as pd
import pytest

from transform import content


def test_category_onehots_one_column_per_level_prefix():
    out = content.category_onehots(["a > x", "a > y", "b > x", ""])
    # columns in first-seen order: a, a > x, a > y, b, b > x
    assert out.tolist() == [[1, 1, 0, 0, 0], [1, 0, 1, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0]]


def test_copurchase_puts_items_bought_together_close():
    baskets = [np.array([0, 1])] * 20 + [np.array([2, 3])] * 20 + [np.array([0, 2])] * 2 + [np.array([1, 3, 4])]
    emb = content.copurchase_embeddings(baskets, num_items=6, dim=3)
    assert emb.shape == (6, 3)
    assert not emb[5].any()  # never bought: zero vector

    def cos(a, b):
        return float(emb[a] @ emb[b] / np.linalg.norm(emb[a]) / np.linalg.norm(emb[b]))

    assert cos(0, 1) > cos(0, 3)
    assert cos(2, 3) > cos(2, 1)


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
