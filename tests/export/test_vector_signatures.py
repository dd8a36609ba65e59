"""``recommend_vector`` and ``user_vector`` (the multi-stage client's feedback path) on the hand-made catalogues."""
import numpy as np
import pytest
import tensorflow as tf

from export import retrieval as export
from recsys import names as N


def _sibling(name: str):
    """A sibling test module, loaded by path (``tests/`` is not a package: a fresh clone has no ``tests`` on sys.path)."""
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location(f"_vector_case_{name}", os.path.join(os.path.dirname(__file__),
                                                                                      f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


graph_case = _sibling("test_graph_export")
twotower_case = _sibling("test_retrieval")


def _ids(out):
    return [[i.decode() for i in row] for row in out[N.ITEM_IDS].numpy()]


@pytest.mark.parametrize("index", [export.BRUTE_FORCE, export.SCANN])
def test_two_tower_recommend_vector_is_exact_dot_product_top_k_with_exclusions(index):
    m = twotower_case.module(index)
    out = m.recommend_vector(embedding=tf.constant([[0.0, 1.0], [1.0, 0.0]]), k=tf.constant([3, 3]),
                             exclude=tf.constant([["c"], [""]]))
    # (0, 1): c 1.0 excluded -> e 0.8, b 0.6, a 0 ; (1, 0): a 1.0, b 0.8, e 0.6
    assert _ids(out) == [["e", "b", "a"], ["a", "b", "e"]]
    np.testing.assert_allclose(out[N.SCORES].numpy(), [[0.8, 0.6, 0.0], [1.0, 0.8, 0.6]], atol=1e-6)


def test_two_tower_user_vector_is_the_query_recommend_user_uses():
    m = twotower_case.module(export.BRUTE_FORCE)
    vec = m.user_vector(user_id=tf.constant(["u1", "u2", "nobody"]))[N.EMBEDDING].numpy()
    # u1 = [a] -> (1, 0); u2 = [b, c, d, a] cut to its last 3 (c, d, a) -> mean of (1,1), (-1,0), (1,0)
    np.testing.assert_allclose(vec, [[1, 0], [1 / 3, 1 / 3], [0, 0]], atol=1e-6)
    by_vector = m.recommend_vector(embedding=tf.constant(vec[:2]), k=tf.constant([3, 3]),
                                   exclude=tf.constant([[""], [""]]))
    by_user = m.recommend_user(user_id=tf.constant(["u1", "u2"]), k=tf.constant([3, 3]),
                               exclude=tf.constant([[""], [""]]))
    assert _ids(by_vector) == _ids(by_user)
    np.testing.assert_allclose(by_vector[N.SCORES].numpy(), by_user[N.SCORES].numpy(), atol=1e-6)


def test_graph_recommend_vector_matches_recommend_user_on_the_users_own_vector():
    m = graph_case.module()
    vec = m.user_vector(user_id=tf.constant(["u1", "u2"]))[N.EMBEDDING].numpy()
    np.testing.assert_allclose(vec, graph_case.USER_VEC)
    got = m.recommend_vector(embedding=tf.constant(vec), k=tf.constant([3, 3]), exclude=tf.constant([[""], ["c"]]))
    want = m.recommend_user(user_id=tf.constant(["u1", "u2"]), k=tf.constant([3, 3]),
                            exclude=tf.constant([[""], ["c"]]))
    assert _ids(got) == _ids(want) == [["a", "b", "e"], ["e", "b", "a"]]
    # u1 = (2, 0) moved toward c = (0, 1): (0.5, 1) scores e 1.1, b 1.0, c 1.0 (tie: lower index first), a 0.5
    moved = m.recommend_vector(embedding=tf.constant([[0.5, 1.0]]), k=tf.constant([3]), exclude=tf.constant([[""]]))
    assert _ids(moved) == [["e", "b", "c"]]


def test_both_modules_export_the_contracts_vector_signatures():
    for m, model in ((twotower_case.module(export.BRUTE_FORCE), N.RETRIEVAL),
                     (graph_case.module(), N.GRAPH_RETRIEVAL)):
        sigs = m.signatures()
        for name in (N.RECOMMEND_VECTOR, N.USER_VECTOR):
            assert name in N.SIGNATURES[model]
            inputs, outputs = N.SIGNATURES[model][name]
            assert [spec.name for spec in sigs[name].input_signature] == list(inputs)
