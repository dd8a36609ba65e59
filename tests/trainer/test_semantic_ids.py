"""Semantic IDs: disambiguation, the item table and its TSV, and quality metrics on hand-made examples."""
import numpy as np
import pytest

from trainer import semantic_ids as sid

CODES = [[1, 2], [1, 2], [0, 0], [1, 2], [0, 0], [3, 1]]
IDS = [[1, 2, 0], [1, 2, 1], [0, 0, 0], [1, 2, 2], [0, 0, 1], [3, 1, 0]]
ITEMS = ["apple", "pear", "beer", "plum", "wine", "soap"]


def test_disambiguate_numbers_collisions_in_row_order():
    out = sid.disambiguate(np.array(CODES, np.int32))
    assert out.tolist() == IDS
    assert len({tuple(r) for r in out.tolist()}) == len(CODES)
    assert sid.disambiguate(np.zeros((0, 3), int)).shape == (0, 4)
    with pytest.raises(ValueError, match=r"2-D array \[N, levels\], got shape \(3,\)"):
        sid.disambiguate([1, 2, 3])
    with pytest.raises(ValueError, match="non-negative, got -1"):
        sid.disambiguate([[0, -1]])


def test_collision_rate_before_and_after_disambiguation():
    assert sid.collision_rate(np.array(CODES)) == pytest.approx(5 / 6)   # only (3, 1) is alone
    assert sid.collision_rate(np.array([[0, 1], [1, 0]])) == 0.0
    assert sid.collision_rate(sid.disambiguate(np.array(CODES))) == 0.0


def test_perplexity_on_hand_computed_distributions():
    assert sid.perplexity([0, 0, 1, 1]) == pytest.approx(2.0)
    assert sid.perplexity([0, 0, 0, 1]) == pytest.approx(np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25))))
    assert sid.perplexity([0, 0, 0, 1]) == pytest.approx(1.7548, abs=1e-4)
    assert sid.perplexity([7, 7, 7]) == pytest.approx(1.0)
    assert sid.perplexity(np.arange(8)) == pytest.approx(8.0)


def test_category_purity_on_a_hand_computed_example():
    # code 0: categories 5, 5, 6 -> 2; code 1: 7, 7 -> 2; code 2: 7 -> 1; (2 + 2 + 1) / 6
    assert sid.category_purity([0, 0, 0, 1, 1, 2], [5, 5, 6, 7, 7, 7]) == pytest.approx(5 / 6)
    # unknown categories (-1) are left out: code 0 holds {1}, code 1 holds {2}
    assert sid.category_purity([0, 0, 1], [1, -1, 2]) == 1.0
    assert np.isnan(sid.category_purity([0, 1], [-1, -1]))
    with pytest.raises(ValueError, match="same length"):
        sid.category_purity([0, 1], [0])


def test_random_purity_keeps_code_sizes_and_is_seeded():
    codes = np.repeat(np.arange(10), 20)          # 10 codes of 20 items, each pure
    cats = codes.copy()
    assert sid.category_purity(codes, cats) == 1.0
    random = sid.random_category_purity(codes, cats, seed=0)
    assert random == sid.random_category_purity(codes, cats, seed=0)
    assert 0.1 <= random <= 0.3                   # chance level ~0.1 plus small-sample luck
    # one category everywhere: any assignment is pure
    assert sid.random_category_purity(codes, np.zeros_like(codes), seed=0) == 1.0


def brute_force_recall(a, b, k):
    """Oracle: full argsort of cosine similarities, self excluded."""
    def top(x):
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        s = x @ x.T
        np.fill_diagonal(s, -np.inf)
        return np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.mean([len(set(p) & set(q)) / k for p, q in zip(top(a), top(b))])


def test_knn_recall():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8))
    assert sid.knn_recall(x, x, k=10) == 1.0
    assert sid.knn_recall(x, 3.0 * x, k=10) == 1.0                    # cosine: the scale does not matter
    assert sid.knn_recall(x, x, k=10, max_queries=7, seed=3) == 1.0    # sampled queries
    noisy = x + 0.8 * rng.normal(size=x.shape)
    assert sid.knn_recall(x, noisy, k=5, chunk=16) == pytest.approx(brute_force_recall(x, noisy, 5))
    assert sid.knn_recall(x, noisy, k=5) < 1.0
    # hand-made: pairs {0, 1} and {2, 3}; the reconstruction swaps items 1 and 3 -> every 1-NN changes
    a = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    b = a[[0, 3, 2, 1]]
    assert sid.knn_recall(a, b, k=1) == 0.0
    assert sid.knn_recall(a, a[[1, 0, 3, 2]], k=1) == 1.0               # relabelling within a pair keeps pairs


def test_semantic_id_report_on_a_tiny_example():
    x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
    codes = np.array([[0, 1], [0, 1], [1, 0], [1, 1]])
    report = sid.semantic_id_report(x, codes, x, categories=np.array([3, 3, 4, -1]), k=1, codebook_size=4)
    assert report["reconstruction_mse"] == 0.0
    assert report["reconstruction_cosine"] == pytest.approx(1.0)
    assert report["knn_recall@1"] == 1.0
    assert report["levels"][0] == {"level": 0, "codes_used": 2, "usage": 0.5, "perplexity": pytest.approx(2.0)}
    assert report["levels"][1]["codes_used"] == 2
    assert report["levels"][1]["perplexity"] == pytest.approx(np.exp(-(0.25 * np.log(0.25) + 0.75 * np.log(0.75))))
    assert report["collision_rate"] == 0.5 and report["max_items_per_tuple"] == 2
    assert report["collision_rate_disambiguated"] == 0.0
    assert report["category_purity"] == 1.0     # code 0: {3, 3}; code 1: {4} (item 3 has no category)
    half = sid.semantic_id_report(x, codes, x[:, ::-1], None, k=1)
    assert half["reconstruction_mse"] == pytest.approx(np.mean((x - x[:, ::-1]) ** 2))
    assert half["category_purity"] is None and half["levels"][0]["usage"] is None
    with pytest.raises(ValueError, match="same N items"):
        sid.semantic_id_report(x, codes[:3], x)


def test_semantic_id_report_in_row_blocks_equals_the_whole_arrays(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)).astype(np.float32)
    x_hat = (x + rng.normal(scale=0.3, size=x.shape)).astype(np.float32)
    codes = rng.integers(0, 4, (50, 2))
    whole = sid.semantic_id_report(x, codes, x_hat, k=3)
    assert whole["reconstruction_mse"] == float(np.mean((x.astype(np.float64) - x_hat.astype(np.float64)) ** 2))
    monkeypatch.setattr(sid, "REPORT_BLOCK", 7)  # 8 blocks
    blocked = sid.semantic_id_report(x, codes, x_hat, k=3)
    assert blocked["reconstruction_mse"] == pytest.approx(whole["reconstruction_mse"], rel=1e-12)
    assert {k: v for k, v in blocked.items() if k != "reconstruction_mse"} == \
        {k: v for k, v in whole.items() if k != "reconstruction_mse"}


def test_table_lookups_both_ways_and_by_prefix():
    table = sid.SemanticIdTable.from_codes(ITEMS, np.array(CODES))
    assert len(table) == 6 and "plum" in table and table.id_length == 3
    assert table.id_of("plum") == (1, 2, 2)
    assert table.item_of([0, 0, 1]) == "wine"
    assert table.items_with_prefix([1]) == ["apple", "pear", "plum"]
    assert table.items_with_prefix([1, 2, 1]) == ["pear"]
    assert table.items_with_prefix([9]) == []
    assert table.neighbours("beer", prefix_length=2) == ["wine"]
    assert table.neighbours("soap", prefix_length=1) == []
    assert table.semantic_ids.tolist() == IDS
    with pytest.raises(KeyError, match="'kiwi' is not in the Semantic ID table"):
        table.id_of("kiwi")
    with pytest.raises(KeyError, match=r"no item has Semantic ID \(1, 2, 3\)"):
        table.item_of((1, 2, 3))
    with pytest.raises(KeyError, match="has 3 codes, got 2"):
        table.item_of((1, 2))
    with pytest.raises(ValueError, match="prefix must have 1 to 3 codes"):
        table.items_with_prefix([])


def test_table_refuses_duplicates():
    with pytest.raises(ValueError, match=r"duplicate item ids \['pear'\]"):
        sid.SemanticIdTable.from_codes(["apple", "pear", "pear"], np.array([[0], [1], [2]]))
    with pytest.raises(ValueError, match=r"'apple' and 'pear' share Semantic ID \(1, 2\).*from_codes"):
        sid.SemanticIdTable(["apple", "pear"], np.array([[1, 2], [1, 2]]))
    with pytest.raises(ValueError, match="2 item ids but 1 Semantic IDs"):
        sid.SemanticIdTable(["apple", "pear"], np.array([[1, 2]]))


def test_table_tsv_round_trip_and_errors(tmp_path):
    table = sid.SemanticIdTable.from_codes(ITEMS, np.array(CODES))
    path = tmp_path / "ids" / "semantic_ids.tsv"
    table.save(str(path))
    assert path.read_text().splitlines()[:2] == ["item_id\tc0\tc1\tc2", "apple\t1\t2\t0"]
    loaded = sid.SemanticIdTable.load(str(path))
    assert loaded.item_ids == ITEMS and loaded.semantic_ids.tolist() == IDS
    with pytest.raises(ValueError, match="tabs or newlines"):
        sid.SemanticIdTable(["a\tb"], [[0]]).save(str(tmp_path / "bad.tsv"))
    (tmp_path / "wrong.tsv").write_text("id\tc0\nx\t1\n")
    with pytest.raises(ValueError, match="not a Semantic ID table"):
        sid.SemanticIdTable.load(str(tmp_path / "wrong.tsv"))
    (tmp_path / "short.tsv").write_text("item_id\tc0\tc1\nx\t1\t2\ny\t3\n")
    with pytest.raises(ValueError, match="short.tsv line 3: expected 3 fields, got 2"):
        sid.SemanticIdTable.load(str(tmp_path / "short.tsv"))
    (tmp_path / "text.tsv").write_text("item_id\tc0\nx\tone\n")
    with pytest.raises(ValueError, match="text.tsv line 2: codes must be integers"):
        sid.SemanticIdTable.load(str(tmp_path / "text.tsv"))
