"""Retrieval SavedModels on a hand-made 5-item catalogue: exact top-k, exclusions, k, round trip."""
import numpy as np
import pytest
import tensorflow as tf

from export import retrieval as export
from export import twins
from recsys import names as N
from trainer.warmup import read_warmup, recommend_requests, write_warmup

VOCAB = ["a", "b", "c", "d"]            # training items; OOV index 4, padding index 5
# "e" is a cold item; f0..f14 are far-away fillers (ScaNN's hashing needs >= 16 points) that
# score below every real item for the queries used here
CATALOG = np.array(["a", "b", "c", "d", "e"] + [f"f{i}" for i in range(15)], dtype=object)
ITEM_EMB = np.array([[1, 0], [0.8, 0.6], [0, 1], [-1, 0], [0.6, 0.8]]
                    + [[-5 - i / 10, -5] for i in range(15)], dtype=np.float32)
# the query tower: mean of per-index vectors; OOV and padding rows are zero
INDEX_EMB = np.array([[1, 0], [0, 1], [1, 1], [-1, 0], [0, 0], [0, 0]], dtype=np.float32)


class FakeTowers(tf.Module):
    def __init__(self):
        super().__init__()
        self.table = tf.constant(INDEX_EMB)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def query_embedding(self, history):
        emb = tf.gather(self.table, history)
        mask = tf.cast(history < 4, tf.float32)[..., None]
        return {"embedding": tf.reduce_sum(emb * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)}


def module(index, max_history=3, max_k=4, max_exclude=2):
    return export.RetrievalModule(
        FakeTowers(), VOCAB, CATALOG, ITEM_EMB, ["u1", "u2"], [["a"], ["b", "c", "d", "a"]],
        index=index, max_k=max_k, max_exclude=max_exclude, max_history=max_history,
        scann_params=export.ScannParams(num_leaves=2, num_leaves_to_search=2, num_reordering_candidates=5))


def call(fn, history=None, user=None, k=3, exclude=(("",),)):
    exclude = tf.constant([list(e) for e in exclude])
    if user is not None:
        out = fn(user_id=tf.constant(user), k=tf.constant([k] * len(user), tf.int32), exclude=exclude)
    else:
        out = fn(history=tf.constant(history), k=tf.constant([k] * len(history), tf.int32), exclude=exclude)
    return [[i.decode() for i in row] for row in out["item_ids"].numpy()], out["scores"].numpy()


def test_history_is_cut_to_its_last_items_and_unknown_ids_are_oov():
    m = module(export.BRUTE_FORCE, max_history=2)
    idx = m._history_indices(tf.constant([["a", "b", "c"], ["zz", "", ""]])).numpy().tolist()
    assert idx == [[1, 2], [4, 5]]


@pytest.mark.parametrize("index", [export.BRUTE_FORCE, export.SCANN])
def test_top_k_is_exact_dot_product_order(index):
    m = module(index)  # keep a reference: tf.function methods hold their module weakly
    ids, scores = call(m.recommend_history, history=[["a", "", ""], ["b", "c", ""]], k=3)
    # query a = (1, 0): a 1.0, b 0.8, e 0.6 ; query mean(b, c) = (0.5, 1): c 1.0, e 1.1, b 1.0 -> e, then b/c tie
    assert ids[0] == ["a", "b", "e"]
    np.testing.assert_allclose(scores[0], [1.0, 0.8, 0.6], rtol=1e-6)
    assert ids[1][0] == "e" and set(ids[1][1:]) == {"b", "c"}
    np.testing.assert_allclose(scores[1], [1.1, 1.0, 1.0], rtol=1e-6)


@pytest.mark.parametrize("index", [export.BRUTE_FORCE, export.SCANN])
def test_exclusions_and_k(index):
    m = module(index)
    ids, _ = call(m.recommend_history, history=[["a"]], k=2, exclude=[["a", "b"]])
    assert ids == [["e", "c"]]
    ids, _ = call(m.recommend_history, history=[["a"]], k=99)  # clipped to max_k
    assert len(ids[0]) == 4


def test_rows_with_too_few_eligible_items_are_padded():
    m = export.RetrievalModule(FakeTowers(), VOCAB, CATALOG[:5], ITEM_EMB[:5], [], [], index=export.BRUTE_FORCE)
    ids, scores = call(m.recommend_history, history=[["a"]], k=5, exclude=[["a", "b", "c", "d"]])
    assert ids == [["e", "", "", "", ""]]
    assert np.isneginf(scores[0, 1:]).all()


def test_scann_refuses_a_catalogue_too_small_to_hash():
    with pytest.raises(ValueError, match="at least 16"):
        export.RetrievalModule(FakeTowers(), VOCAB, CATALOG[:5], ITEM_EMB[:5], [], [], index=export.SCANN)


def test_recommend_user_uses_the_stored_history_and_unknown_users_get_a_neutral_query():
    m = module(export.BRUTE_FORCE)
    by_user, _ = call(m.recommend_user, user=["u2"], k=2)
    by_history, _ = call(m.recommend_history, history=[["c", "d", "a"]], k=2)  # last max_history=3 items
    assert by_user == by_history
    unknown, scores = call(m.recommend_user, user=["nobody"], k=2)
    np.testing.assert_allclose(scores, [[0.0, 0.0]])


def test_item_embedding_signature():
    m = module(export.BRUTE_FORCE)
    out = m.item_embedding(item_id=tf.constant(["e", "zz"]))["embedding"].numpy()
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert m.max_k == 4


@pytest.mark.parametrize("index", [export.BRUTE_FORCE, export.SCANN])
def test_saved_model_round_trip_in_a_fresh_process(index, tmp_path, fresh_process):
    m = module(index)
    path = str(tmp_path / "model")
    twins.save(m, path)
    n = write_warmup(path, N.RETRIEVAL, recommend_requests([["a", "b"], []]))
    assert n == 2
    warm = read_warmup(path)
    assert [(name, sig) for name, sig, _ in warm] == [(N.RETRIEVAL, N.SERVING_DEFAULT)] * 2
    assert warm[0][2][N.HISTORY].tolist() == [[b"a", b"b"]] and warm[1][2][N.HISTORY].tolist() == [[b""]]
    expected_ids, expected_scores = call(m.recommend_history, history=[["a", "b", ""]], k=3, exclude=[["c"]])
    got = fresh_process(f"""
        import scann, tensorflow as tf
        loaded = tf.saved_model.load({path!r})
        sigs = loaded.signatures
        out = sigs["serving_default"](history=tf.constant([["a", "b", ""]]), k=tf.constant([3]),
                                      exclude=tf.constant([["c"]]))
        result = {{
            "signatures": sorted(sigs.keys()),
            "inputs": {{name: sorted(sigs[name].structured_input_signature[1]) for name in sigs.keys()}},
            "outputs": sorted(sigs["serving_default"].structured_outputs),
            "ids": [[i.decode() for i in r] for r in out["item_ids"].numpy()],
            "scores": out["scores"].numpy().tolist(),
        }}
    """)
    contract = N.SIGNATURES[N.RETRIEVAL]
    assert got["signatures"] == sorted(contract)
    assert got["inputs"] == {sig: sorted(inputs) for sig, (inputs, _) in contract.items()}
    assert got["outputs"] == sorted(contract[N.SERVING_DEFAULT][1])
    assert got["ids"] == expected_ids
    np.testing.assert_allclose(got["scores"], expected_scores, rtol=1e-6)


def test_scann_tuning_reaches_the_target_recall_on_random_vectors():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(2000, 16)).astype(np.float32)
    queries = rng.normal(size=(100, 16)).astype(np.float32)
    tuning = twins.tune_scann(emb, np.array([str(i) for i in range(2000)], dtype=object), queries,
                               target_recall=0.95, final_k=50)
    assert tuning.recall_at_10 >= 0.95
    assert tuning.tried[-1]["recall@10"] == round(tuning.recall_at_10, 4)


def test_recall_at_k():
    assert twins.recall_at_k(np.array([["a", "b"], ["c", "d"]]), np.array([["a", "x"], ["d", "c"]])) == 0.75


def test_export_twins_writes_both_models_with_warmup_and_a_tuned_index(tmp_path):
    built = []

    def build(index, params):
        built.append((index, params))
        return module(index)

    out = twins.export_twins(build, ITEM_EMB, CATALOG, lambda bf: bf.user_embedding(
        history=tf.constant([["a"], ["c"], ["b"]]))[N.EMBEDDING].numpy(), model_name=N.RETRIEVAL,
        scann_dir=str(tmp_path / "scann"), bruteforce_dir=str(tmp_path / "bf"),
        warmup_histories=[["a"], ["b", "c"]], final_k=10, target_recall=0.5, log=lambda m: None)
    assert [b[0] for b in built] == [export.BRUTE_FORCE, export.SCANN]
    assert built[1][1] == out.tuning.params and out.tuning.recall_at_10 >= 0.5
    for d, name in ((tmp_path / "scann", N.RETRIEVAL), (tmp_path / "bf", N.RETRIEVAL_BRUTE_FORCE)):
        assert (d / "saved_model.pb").exists()
        assert [(n, s) for n, s, _ in read_warmup(str(d))] == [(name, N.SERVING_DEFAULT)] * 2
    assert set(out.report()) == {"params", "recall@10_vs_brute_force", "query_ms", "brute_force_query_ms", "tried"}


def test_mask_excluded_masks_known_ids_only():
    table = export.string_table(["a", "b", "c"], default=-1)
    scores = tf.zeros([2, 3])
    got = export.mask_excluded(scores, table, tf.constant([["b", "zz"], ["", "a"]]), value=-1.0).numpy()
    np.testing.assert_array_equal(got, [[0, -1, 0], [-1, 0, 0]])


def test_scann_index_builds_are_identical_so_the_exported_index_is_the_tuned_one():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(3000, 16)).astype(np.float32)
    ids = np.array([str(i) for i in range(3000)], dtype=object)
    q = tf.constant(rng.normal(size=(64, 16)).astype(np.float32))
    params = export.ScannParams(num_leaves=55, num_leaves_to_search=3, num_reordering_candidates=40)
    first, second = (export.scann_layer(emb, ids, 20, params)(q) for _ in range(2))
    exact = tf.math.top_k(tf.matmul(q, emb, transpose_b=True), 10).indices.numpy()
    recall = twins.recall_at_k(first[1].numpy()[:, :10].astype(str), ids[exact].astype(str))
    assert recall < 1.0  # approximate search (3 of 55 leaves): a random tree would show up as a difference
    np.testing.assert_array_equal(first[1].numpy(), second[1].numpy())
    np.testing.assert_array_equal(first[0].numpy(), second[0].numpy())


def test_one_searcher_with_search_time_settings_equals_a_layer_built_with_them():
    """Issue 14: ScaNN's tuning sweeps one index, overriding the leaves searched and the re-scored count per call;
    each answer is the one the served layer built with that setting gives (TF never frees a built index)."""
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(3000, 16)).astype(np.float32)
    ids = np.array([str(i) for i in range(3000)], dtype=object)
    q = tf.constant(rng.normal(size=(64, 16)).astype(np.float32))
    searcher = export.scann_searcher(tf.constant(emb), 20, export.ScannParams(55, 55, 80))
    answers = []
    for params in (export.ScannParams(55, 2, 80), export.ScannParams(55, 10, 80), export.ScannParams(55, 55, 30)):
        got = searcher.search_batched(q, final_num_neighbors=20, leaves_to_search=params.num_leaves_to_search,
                                      pre_reorder_num_neighbors=params.num_reordering_candidates).indices.numpy()
        served = export.scann_layer(emb, ids, 20, params)(q)[1].numpy().astype(str)
        np.testing.assert_array_equal(ids[got].astype(str), served)
        answers.append(got)
    assert not np.array_equal(answers[0], answers[1])  # the overrides are honoured, not ignored


def test_exact_top_k_in_blocks_equals_one_matmul():
    """Issue 14: the exact search behind ScaNN's tuning runs in blocks of queries; the answer does not change."""
    rng = np.random.default_rng(1)
    q = tf.constant(rng.normal(size=(37, 8)).astype(np.float32))
    cand = tf.constant(rng.normal(size=(50, 8)).astype(np.float32))
    whole = tf.math.top_k(tf.matmul(q, cand, transpose_b=True), 10).indices.numpy()
    for block in (1, 5, 36, 37, 1000):
        assert np.array_equal(twins.exact_top_k(q, cand, 10, block=block), whole), block
    assert twins.exact_top_k(q, cand, 80).shape == (37, 50)  # k clipped to the catalogue
    assert max(1, twins.EXACT_SCORES // 1_000_000) == 268  # queries per block at 1M items (1 GiB of scores)


def test_tuning_queries_are_all_up_to_the_limit_then_a_seeded_sample():
    q = np.arange(30, dtype=np.float32).reshape(15, 2)
    assert twins.tuning_queries(q, limit=15) is q
    assert twins.MAX_TUNING_QUERIES >= 943 * 2  # MovieLens' users (and their anonymous twins) are all used
    got = twins.tuning_queries(q, limit=4)
    assert got.shape == (4, 2) and np.array_equal(got, twins.tuning_queries(q, limit=4))  # seeded
    rows = got[:, 0] / 2
    assert np.all(np.diff(rows) > 0) and set(rows.tolist()) <= set(range(15))  # distinct rows, in order
    # the rows a caller embeds alone (DualHeadExporter) are the rows tuning_queries keeps
    assert np.array_equal(twins.tuning_rows(15, limit=4), rows.astype(int))
    assert np.array_equal(twins.tuning_queries(q[twins.tuning_rows(15, limit=4)], limit=4), got)
    assert np.array_equal(twins.tuning_rows(3, limit=4), [0, 1, 2])


def test_scann_tuning_re_scores_more_candidates_when_every_leaf_is_not_enough():
    """Issue 14: nearly flat scores (random 64-d unit vectors) defeat the quantised scores, so every leaf searched
    with the usual re-scoring misses the target; doubling the re-scored candidates (up to all: exact) reaches it."""
    rng = np.random.default_rng(0)
    unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    emb, queries = unit(rng.normal(size=(3000, 64))), unit(rng.normal(size=(200, 64)))
    ids = np.array([str(i) for i in range(3000)], dtype=object)
    tuning = twins.tune_scann(emb, ids, queries, target_recall=0.99, final_k=10)
    first = [t for t in tuning.tried if "num_reordering_candidates" not in t]
    assert len(first) == 7 and max(t["recall@10"] for t in first) < 0.99  # every leaf, 20 re-scored: not enough
    assert tuning.params.num_leaves_to_search == tuning.params.num_leaves
    assert 20 < tuning.params.num_reordering_candidates <= 3000 and tuning.recall_at_10 >= 0.99
    rescored = [t["num_reordering_candidates"] for t in tuning.tried[7:]]
    assert rescored[0] == 40 and all(b == min(3000, 2 * a) for a, b in zip(rescored, rescored[1:]))


def test_stored_histories_and_catalogue_ids_stay_out_of_the_saved_graph(pb_growth):
    def build(n):
        rng = np.random.default_rng(0)
        histories = [[str(x) for x in rng.choice(VOCAB, 30)] for _ in range(n)]
        return export.RetrievalModule(FakeTowers(), VOCAB, CATALOG, ITEM_EMB, pb_growth.users(n), histories,
                                      index=export.BRUTE_FORCE, max_k=4, max_exclude=2, max_history=30)
    assert pb_growth(build, twins.save) < pb_growth.limit


def test_histories_embedded_in_blocks_equal_one_call_padded_to_the_longest():
    """Issue 14: validation histories are embedded a block at a time, each padded to its own longest; the
    served query ignores "" padding, so the vectors are those of one call over every history."""
    m = module(export.BRUTE_FORCE, max_history=2)
    rows = [["a"], ["b", "c", "d", "a"], [], ["zz", "c"], ["d", "d", "b"]]
    whole = m.user_embedding(tf.constant([r + [""] * (4 - len(r)) for r in rows]))[N.EMBEDDING].numpy()
    for block in (1, 2, 5, 100):
        got = twins.embed_histories(lambda h: m.user_embedding(h)[N.EMBEDDING], rows, block=block)
        np.testing.assert_array_equal(got, whole)
    np.testing.assert_allclose(whole[4], [-0.5, 0.5])  # its last two items, d = (-1, 0) and b = (0, 1)
