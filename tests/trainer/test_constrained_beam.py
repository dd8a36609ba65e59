"""Constrained beam search over Semantic IDs: only existing, allowed IDs; exact when the beam is wide."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from trainer.constrained_beam import PrefixTrie, constrained_beam_search, level_sizes

IDS = np.array([[0, 0], [0, 2], [1, 1], [2, 0], [2, 1]])


def test_prefix_trie_children_and_leaves():
    trie = PrefixTrie(IDS)
    assert trie.allowed_next([]) == [0, 1, 2]
    assert trie.allowed_next([0]) == [0, 2]
    assert trie.allowed_next([1]) == [1]
    assert trie.allowed_next([1, 1]) == []
    assert trie.allowed_next([3]) == []
    assert trie.item_of([2, 1]) == 4 and trie.item_of([1, 0]) is None


def test_prefix_trie_rejects_duplicates_and_bad_shapes():
    with pytest.raises(ValueError, match="unique"):
        PrefixTrie([[1, 2], [1, 2]])
    with pytest.raises(ValueError, match=r"\[N, T\]"):
        PrefixTrie([1, 2, 3])


def test_level_sizes_come_from_the_data():
    assert level_sizes(IDS) == (3, 3)
    assert level_sizes(np.array([[5, 0, 861]])) == (6, 1, 862)


def _fixed_step(tables):
    """A 'decoder' whose log-probs depend only on the position: tables[t] is [K_t]."""
    def step(prefix, t):
        lp = tf.nn.log_softmax(tf.constant(tables[t], tf.float32))
        return tf.broadcast_to(lp, [tf.shape(prefix)[0], tf.shape(prefix)[1], len(tables[t])])
    return step


TABLES = [np.array([2.0, 0.0, 1.0]), np.array([0.4, 1.5, 3.0])]  # no two items tie


def _exhaustive(allowed_row):
    lp = [np.log(np.exp(t) / np.exp(t).sum()) for t in TABLES]
    scores = {n: lp[0][c0] + lp[1][c1] for n, (c0, c1) in enumerate(IDS.tolist()) if allowed_row[n]}
    return sorted(scores, key=lambda n: -scores[n]), scores


def test_wide_beam_equals_exhaustive_ranking_and_respects_exclusions():
    allowed = np.array([[True] * 5, [True, False, True, True, False]])
    items, scores = constrained_beam_search(_fixed_step(TABLES), tf.constant(IDS), tf.constant(allowed),
                                            level_sizes(IDS), beam_width=6)
    for row in range(2):
        order, exact = _exhaustive(allowed[row])
        got = [i for i in items.numpy()[row].tolist() if i >= 0]
        assert got == order
        np.testing.assert_allclose(scores.numpy()[row, : len(got)], [exact[i] for i in got], rtol=1e-6)
        assert np.all(np.isneginf(scores.numpy()[row, len(got):]))
        assert all(i == -1 for i in items.numpy()[row, len(got):])


def test_narrow_beam_never_returns_an_id_that_does_not_exist():
    # unconstrained, the second-best tuple would be (0, 1), which does not exist;
    # logits: (0, 2) 2 + 3, (2, 1) 1 + 1.5, (0, 0) 2 + 0.4 (before normalisation)
    items, scores = constrained_beam_search(_fixed_step(TABLES), tf.constant(IDS), tf.ones([1, 5], tf.bool),
                                            level_sizes(IDS), beam_width=2)
    got = items.numpy()[0].tolist()
    assert got == [1, 4]
    existing = {tuple(r) for r in IDS.tolist()}
    assert all(tuple(IDS[i]) in existing for i in got)


def test_every_item_excluded_gives_no_result():
    items, scores = constrained_beam_search(_fixed_step(TABLES), tf.constant(IDS), tf.zeros([1, 5], tf.bool),
                                            level_sizes(IDS), beam_width=3)
    assert items.numpy().tolist() == [[-1, -1, -1]]
    assert np.all(np.isneginf(scores.numpy()))


def test_prefix_dependent_decoder_matches_brute_force():
    """A decoder whose next-code distribution depends on the prefix: wide beam == exhaustive."""
    rng = np.random.default_rng(0)
    ids = np.array(list(itertools.product(range(3), range(2), range(3))))[rng.permutation(18)[:11]]
    sizes = level_sizes(ids)
    w = [rng.normal(size=(4, k)).astype(np.float32) for k in sizes]

    def logits(prefix_row, t):
        h = np.zeros(4, np.float32)
        h[0] = 1.0
        for s, c in enumerate(prefix_row):
            h[1 + s] = c + 1
        return h @ w[t]

    def step(prefix, t):
        def fn(p):
            p = p.reshape(p.shape[0] * p.shape[1], p.shape[2])
            out = np.stack([logits(row, t) for row in p]) if len(p) else np.zeros((0, sizes[t]), np.float32)
            return out.astype(np.float32)
        b, width = prefix.shape[0], prefix.shape[1]
        out = tf.numpy_function(fn, [prefix], tf.float32)
        return tf.nn.log_softmax(tf.reshape(out, [b, width, sizes[t]]))

    items, scores = constrained_beam_search(step, tf.constant(ids), tf.ones([1, len(ids)], tf.bool), sizes,
                                            beam_width=len(ids))

    def lsm(x):
        return x - np.log(np.exp(x - x.max()).sum()) - x.max()

    exact = {n: sum(lsm(logits(row[:t], t))[row[t]] for t in range(3)) for n, row in enumerate(ids.tolist())}
    assert items.numpy()[0].tolist() == sorted(exact, key=lambda n: -exact[n])
    np.testing.assert_allclose(scores.numpy()[0], sorted(exact.values(), reverse=True), rtol=1e-5)
