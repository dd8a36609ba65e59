"""The generative head: beam search against teacher forcing, recent-item memory."""
import numpy as np
import tensorflow as tf

from .helpers import SMALL, encode, make_data, make_items, make_model


def test_beam_search_scores_equal_teacher_forced_likelihoods_and_wide_beam_is_exhaustive():
    items = make_items()
    data = make_data(items, rows=3)
    model = make_model(items)
    memory = model.memory(*encode(model, data))
    all_items = tf.tile(tf.range(items.num_items)[None], [3, 1])
    exact = model.code_log_likelihood(memory, all_items).numpy()                    # [3, N]
    assert np.all(exact < 0) and np.all(np.exp(exact).sum(axis=1) <= 1.0 + 1e-5)  # IDs are a subset of all tuples
    allowed = np.ones((3, items.num_items), bool)
    allowed[0, 0] = False
    top, scores = model.beam_search(memory, tf.constant(allowed), beam_width=items.num_items)
    for r in range(3):
        order = [i for i in np.argsort(-exact[r], kind="stable") if allowed[r, i]]
        assert top.numpy()[r, : len(order)].tolist() == order
        np.testing.assert_allclose(scores.numpy()[r, : len(order)], exact[r, order], rtol=1e-4, atol=1e-5)


def test_recent_memory_holds_the_latest_item_states():
    items = make_items()
    data = make_data(items, rows=3)
    model = make_model(items, memory_recent=2)
    states, mask = encode(model, data)
    memory = model.memory(states, mask).numpy()
    assert memory.shape == (3, SMALL["memory_tokens"] + 2, SMALL["d_model"])
    for r in range(3):
        n = int((data.history[r] < items.num_items).sum())
        want = states.numpy()[r, [max(n - 2, 0), n - 1]]
        np.testing.assert_allclose(memory[r, -2:], want, rtol=1e-6)
    top, scores = model.beam_search(model.memory(states, mask), tf.ones([3, items.num_items], tf.bool), 4)
    assert top.shape == (3, 4) and np.all(np.isfinite(scores.numpy()))


def test_exact_teacher_ranking_equals_a_beam_as_wide_as_the_catalogue():
    """Scoring every item (no search) gives what beam search gives when nothing is pruned: the same items in
    the same order with the same log-likelihoods; the history is masked, and a row with fewer allowed items
    than k gets -1 slots, as beam search does."""
    from trainer import dual_head as D

    items = make_items()
    data = make_data(items, rows=5)
    full = data.full_history[:]
    full[4] = np.arange(items.num_items - 3, dtype=np.int64)  # 3 items left for row 4 (k = 4)
    data = D.SequenceData(data.history, data.order_rel, data.events, data.positives, full, data.users)
    model = make_model(items)
    k = 4
    exact, exact_ll = D.generative_exact_topk(model, data, exclude_history=True, k=k, rows_per_batch=2)
    beam, beam_ll = D.generative_topk(model, data, exclude_history=True, k=k, beam_width=items.num_items)
    assert exact.shape == beam.shape == (5, k)
    assert exact.tolist() == beam.tolist()
    assert exact[4, 3] == -1 and (exact[4, :3] >= 0).all()
    np.testing.assert_allclose(exact_ll[exact >= 0], beam_ll[beam >= 0], rtol=1e-4, atol=1e-5)
    for r in range(5):
        assert not set(exact[r][exact[r] >= 0].tolist()) & set(full[r].tolist())
