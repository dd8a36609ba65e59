"""Constrained beam search over Semantic IDs: only existing, allowed IDs; exact when the beam is wide."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from trainer.constrained_beam import (PrefixTrie, code_trie, constrained_beam_search, level_sizes,
                                      masked_beam_search)

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
    items, scores = constrained_beam_search(_fixed_step(TABLES), code_trie(IDS), tf.constant(allowed),
                                            beam_width=6)
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
    items, scores = constrained_beam_search(_fixed_step(TABLES), code_trie(IDS), tf.ones([1, 5], tf.bool),
                                            beam_width=2)
    got = items.numpy()[0].tolist()
    assert got == [1, 4]
    existing = {tuple(r) for r in IDS.tolist()}
    assert all(tuple(IDS[i]) in existing for i in got)


def test_every_item_excluded_gives_no_result():
    items, scores = constrained_beam_search(_fixed_step(TABLES), code_trie(IDS), tf.zeros([1, 5], tf.bool),
                                            beam_width=3)
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

    items, scores = constrained_beam_search(step, code_trie(ids), tf.ones([1, len(ids)], tf.bool),
                                            beam_width=len(ids))

    def lsm(x):
        return x - np.log(np.exp(x - x.max()).sum()) - x.max()

    exact = {n: sum(lsm(logits(row[:t], t))[row[t]] for t in range(3)) for n, row in enumerate(ids.tolist())}
    assert items.numpy()[0].tolist() == sorted(exact, key=lambda n: -exact[n])
    np.testing.assert_allclose(scores.numpy()[0], sorted(exact.values(), reverse=True), rtol=1e-5)


def test_code_trie_arrays():
    trie = code_trie(np.array([[2, 1], [0, 2], [2, 0], [0, 0], [1, 1]]))
    assert trie.order.tolist() == [3, 1, 4, 2, 0]          # (0,0) (0,2) (1,1) (2,0) (2,1)
    assert trie.sizes == (3, 3)
    assert trie.keys.tolist() == [[0, 0, 1, 2, 2], [0, 2, 4, 6, 7]]
    assert trie.children.tolist() == [[0, 0, 1, 2, 2], [0, 1, 2, 3, 4]]


def test_code_trie_rejects_duplicates_and_codes_past_the_sizes():
    with pytest.raises(ValueError, match=r"unique.*1 of 4 items repeat another's \(items 0 and 2: \[1, 2\]\)"):
        code_trie([[1, 2], [0, 0], [1, 2], [0, 1]])
    with pytest.raises(ValueError, match="0..K_t - 1"):
        code_trie([[1, 2]], sizes=(2, 2))
    with pytest.raises(ValueError, match=r"\[N, T\]"):
        code_trie([1, 2])


def _random_step(rng, sizes, dim=6):
    """A decoder whose log-probs depend on the whole prefix (a hash of it into a fixed table)."""
    tables = [tf.constant(rng.normal(size=(97, k)).astype(np.float32) * 3) for k in sizes]

    def step(prefix, t):
        h = tf.reduce_sum(prefix * tf.constant([7, 31, 101, 13][: max(t, 1)])[:t], axis=2) % 97   # [B, W]
        return tf.nn.log_softmax(tf.gather(tables[t], h))
    return step


@pytest.mark.parametrize("seed,beam_width", [(0, 1), (1, 5), (2, 20), (3, 200)])
def test_trie_search_equals_the_masked_search(seed, beam_width):
    """Same items, same scores, bit for bit, as the [B, W, N]-mask reference, with exclusions and ties."""
    rng = np.random.default_rng(seed)
    grid = np.array(list(itertools.product(range(5), range(4), range(6), range(3))))
    ids = grid[rng.permutation(len(grid))[:150]]
    allowed = rng.random((7, len(ids))) < np.array([1.0, 0.9, 0.5, 0.1, 0.02, 0.0, 1.0])[:, None]
    step = _random_step(rng, level_sizes(ids))
    got = constrained_beam_search(step, code_trie(ids), tf.constant(allowed), beam_width)
    want = masked_beam_search(step, tf.constant(ids), tf.constant(allowed), level_sizes(ids), beam_width)
    np.testing.assert_array_equal(got[0].numpy(), want[0].numpy())
    np.testing.assert_array_equal(got[1].numpy(), want[1].numpy())
    items = got[0].numpy()
    assert all(allowed[r, i] for r in range(len(items)) for i in items[r] if i >= 0)
    assert (items[5] == -1).all()
