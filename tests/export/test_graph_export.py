"""The graph retriever's SavedModel on hand-made vectors: users, session shift, anonymous history, cold items, twins."""
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from export import retrieval as export
from export.graph import GraphRetrievalModule
from export.twins import export_twins, save
from recsys import names as N
from trainer.warmup import read_warmup, user_requests

# 20 items: a..e real, f0..f14 far-away fillers (ScaNN needs >= 16 points)
ITEMS = np.array(["a", "b", "c", "d", "e"] + [f"f{i}" for i in range(15)], dtype=object)
ITEM_VEC = np.array([[1, 0], [0.8, 0.6], [0, 1], [-1, 0], [0.6, 0.8]] + [[-5 - i / 10, -5] for i in range(15)],
                    np.float32)
USERS = np.array(["u1", "u2"], dtype=object)
USER_VEC = np.array([[2.0, 0.0], [0.0, 1.0]], np.float32)
CONTENT_MAP = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]], np.float32)  # content dim 3 -> 2


def module(index=export.BRUTE_FORCE, session=0.5, params=None, query=ITEM_VEC):
    return GraphRetrievalModule(USERS, USER_VEC, ITEMS, ITEM_VEC, query, CONTENT_MAP, 0.5, session, index=index,
                                max_k=10, max_exclude=10, max_history=2, scann_params=params)


def ids(res):
    return [[i.decode() for i in row] for row in res[N.ITEM_IDS].numpy().tolist()]


def test_recommend_user_ranks_by_the_users_vector_and_unknown_users_get_the_mean_user():
    m = module()
    res = m.recommend_user(user_id=tf.constant(["u1", "u2", "nobody"]), k=tf.constant([3, 3, 3]),
                           exclude=tf.constant([[""], ["c"], [""]]))
    assert ids(res)[0] == ["a", "b", "e"]           # u1 = (2, 0)
    assert ids(res)[1] == ["e", "b", "a"]           # u2 = (0, 1) with c excluded
    assert ids(res)[2] == ["b", "a", "e"]           # mean user (1, 0.5): b 1.1, then a and e tie at 1.0 (lower index first)
    assert np.allclose(res[N.SCORES].numpy()[0], [2.0, 1.6, 1.2])


def test_session_shift_moves_the_user_toward_recent_items_with_the_default_or_given_weight():
    m = module(session=0.5)
    call = lambda w, recent: ids(m.recommend_session(user_id=tf.constant(["u1"]), recent_items=tf.constant([recent]),
                                                     session_weight=tf.constant([w]), k=tf.constant([2]),
                                                     exclude=tf.constant([[""]])))[0]
    assert call(0.0, ["c"]) == ["a", "b"]           # weight 0: the user alone
    assert call(1.0, ["c"]) == ["c", "e"]           # weight 1: the recent items alone
    # default 0.5: q = 0.5 (1, 0) + 0.5 (0, 1); b and e score 0.7, a and c 0.5
    assert call(-1.0, ["c", "", "unknown"]) == ["b", "e"]
    assert call(-1.0, ["unknown"]) == ["a", "b"]    # no known recent item: the user alone
    q = 0.5 * np.array([1.0, 0.0]) + 0.5 * np.array([0.0, 1.0])
    got = m.recommend_session(user_id=tf.constant(["u1"]), recent_items=tf.constant([["c"]]),
                              session_weight=tf.constant([-1.0]), k=tf.constant([1]), exclude=tf.constant([[""]]))
    assert np.allclose(got[N.SCORES].numpy(), [[q @ ITEM_VEC[1]]])


def test_anonymous_history_is_the_mean_of_its_last_known_items():
    m = module()
    emb = m.user_embedding(history=tf.constant([["d", "a", "c", ""], ["zz", "", "", ""]]))[N.EMBEDDING].numpy()
    assert np.allclose(emb, [[0.5, 0.5], [0.0, 0.0]])  # last 2 of (d, a, c); unknown ids ignored


def test_session_and_anonymous_queries_use_the_query_vectors_while_items_are_scored_by_their_own():
    query = ITEM_VEC.copy()
    query[2] = [1.0, 0.0]          # c's query vector points where a is (say, c's audience is a's)
    m = module(session=1.0, query=query)
    got = m.recommend_session(user_id=tf.constant(["u2"]), recent_items=tf.constant([["c"]]),
                              session_weight=tf.constant([-1.0]), k=tf.constant([2]), exclude=tf.constant([[""]]))
    assert ids(got)[0] == ["a", "b"]                      # the query is c's query vector (1, 0), not c itself
    assert np.allclose(got[N.SCORES].numpy(), [[1.0, 0.8]])  # scored against the item vectors
    emb = m.user_embedding(history=tf.constant([["c", ""]]))[N.EMBEDDING].numpy()
    assert np.allclose(emb, [[1.0, 0.0]])
    assert np.allclose(m.item_embedding(item_id=tf.constant(["c"]))[N.EMBEDDING].numpy(), [[0.0, 1.0]])
    with pytest.raises(ValueError, match="query_vectors"):
        module(query=ITEM_VEC[:3])


def test_user_vector_item_embedding_and_content_map():
    m = module()
    assert np.allclose(m.user_vector(user_id=tf.constant(["u2"]))[N.EMBEDDING].numpy(), [[0.0, 1.0]])
    assert np.allclose(m.item_embedding(item_id=tf.constant(["b"]))[N.EMBEDDING].numpy(), [[0.8, 0.6]])
    c = np.array([[3.0, 4.0, 0.0]], np.float32)  # normalised (0.6, 0.8, 0) @ map = (0.6, 1.6), times scale 0.5
    assert np.allclose(m.embed_content(content=tf.constant(c))[N.EMBEDDING].numpy(), [[0.3, 0.8]])
    assert set(m.signatures()) == set(N.SIGNATURES[N.GRAPH_RETRIEVAL])


def test_twin_export_round_trips_in_a_fresh_process_with_warmup(tmp_path):
    twins = export_twins(lambda index, p: module(index, params=p), ITEM_VEC, ITEMS, lambda _: USER_VEC,
                         model_name=N.GRAPH_RETRIEVAL, scann_dir=str(tmp_path / "scann"),
                         bruteforce_dir=str(tmp_path / "bf"), warmup_histories=[["a"]], final_k=20,
                         extra_warmup=user_requests(["u1"], recent=[["c"]]), log=lambda _: None)
    assert twins.tuning.recall_at_10 >= 0.95
    warm = read_warmup(str(tmp_path / "bf"))
    assert [(w[0], w[1]) for w in warm] == [(N.GRAPH_RETRIEVAL_BRUTE_FORCE, N.SERVING_DEFAULT),
                                           (N.GRAPH_RETRIEVAL_BRUTE_FORCE, N.RECOMMEND_USER),
                                           (N.GRAPH_RETRIEVAL_BRUTE_FORCE, N.RECOMMEND_SESSION)]
    code = f"""
import numpy as np, tensorflow as tf, scann
for d in ("bf", "scann"):
    s = tf.saved_model.load("{tmp_path}/" + d).signatures
    r = s["recommend_session"](user_id=tf.constant(["u1"]), recent_items=tf.constant([["c"]]),
                               session_weight=tf.constant([-1.0]), k=tf.constant([2]), exclude=tf.constant([[""]]))
    print(d, sorted(s.keys()), [i.decode() for i in r["item_ids"].numpy()[0]])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    sigs = sorted(N.SIGNATURES[N.GRAPH_RETRIEVAL])
    assert out == [f"bf {sigs} ['b', 'e']", f"scann {sigs} ['b', 'e']"]


def test_user_and_item_vectors_stay_out_of_the_saved_graph(pb_growth):
    dim = 32

    def build(users, items=20):
        rng = np.random.default_rng(0)
        ids = np.array([f"i{j}" for j in range(items)], dtype=object)
        vec = rng.normal(size=(items, dim)).astype(np.float32)
        return GraphRetrievalModule(np.array(pb_growth.users(users), dtype=object),
                                    rng.normal(size=(users, dim)).astype(np.float32), ids, vec, vec,
                                    np.eye(3, dim, dtype=np.float32), 0.5, 0.5, index=export.BRUTE_FORCE, max_k=10,
                                    max_exclude=10, max_history=2)
    assert pb_growth(build, save) < pb_growth.limit
    # an item adds its id to three tables (vocabulary, catalogue, lookup), not its 2 x 32 floats (256 bytes)
    assert pb_growth(lambda n: build(10, items=n), save) < 3 * pb_growth.limit
