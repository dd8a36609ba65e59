"""Item blocks: Semantic-ID items embeddable from content alone; the SASRec block is free IDs + full softmax."""
import numpy as np
import pytest
import tensorflow as tf

from trainer import dual_head as D

from .helpers import SASREC, SMALL, batch_of, encode, make_data, make_items, make_model


def test_cold_items_are_embedded_from_content_alone():
    items = make_items()
    model = make_model(items)
    vec = model.item_vectors(tf.constant([items.num_items - 1])).numpy()       # never trained: no ID residual
    mapped = model.map_content(tf.constant(items.content[-1:])).numpy()
    np.testing.assert_allclose(vec, mapped, atol=1e-6)
    known = model.item_vectors(tf.constant([0])).numpy()
    assert not np.allclose(known, model.map_content(tf.constant(items.content[:1])).numpy(), atol=1e-4)


def test_sasrec_has_no_semantic_id_or_content_weights_and_ignores_them():
    items = make_items()
    other = make_items(codes=items.codes[::-1].copy(), content=-items.content)  # other Semantic IDs and content
    data = make_data(items, rows=5)
    model, twin = make_model(items, **SASREC), make_model(other, **SASREC)
    assert isinstance(model.item_block, D.FreeIdItems) and model.generative_head is None
    groups = model.variable_groups()
    id_table = model.item_block.id_embedding.embeddings
    assert [id(v) for v in groups["item_input"]] == [id(id_table)] and groups["item_head"] == []
    assert groups["generative_head"] == [] and not model.generative
    assert not any(part in path for path in D.persist.expected_weights(model)
                   for part in ("code_embeddings", "content_projection", "mapping", "generative"))
    # same seed, other Semantic IDs and content: the very same numbers
    for m in (model, twin):
        m.set_weights(model.get_weights())
    np.testing.assert_array_equal(model.user_vector(*encode(model, data)).numpy(),
                                  twin.user_vector(*encode(twin, data)).numpy())
    # item vectors are the free ID rows; user vectors are raw (not normalised)
    np.testing.assert_array_equal(model.item_vectors(tf.range(items.num_items)).numpy(),
                                  id_table.numpy()[: items.num_items])
    assert not np.allclose(np.linalg.norm(model.user_vector(*encode(model, data)).numpy(), axis=1), 1.0)
    with pytest.raises(NotImplementedError, match="no content path"):
        model.map_content(tf.constant(items.content[:1]))


def test_sasrec_loss_is_the_full_softmax_over_the_catalogue():
    items = make_items()
    model = make_model(items, **SASREC)
    sampler = D.PairSampler(make_data(items), items, model.config)
    batch = batch_of(sampler, np.arange(8))
    losses = D.Trainer(model, model.config).losses(batch, training=False)
    assert set(losses) == {"retrieval"}
    user = model.user_vector(*model.encode(batch["history"], batch["order_rel"], batch["events"])).numpy()
    logits = user.astype(np.float64) @ model.item_block.id_embedding.embeddings.numpy()[: items.num_items].T
    anchor = batch["anchor"].numpy()
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    want = np.mean(lse - logits[np.arange(8), anchor])
    assert float(losses["retrieval"]) == pytest.approx(want, rel=1e-5)
    # hard negatives, other positives and logQ play no part
    changed = dict(batch, hard=tf.zeros_like(batch["hard"]), positives=tf.fill(tf.shape(batch["positives"]), -1),
                   anchor_log_q=tf.zeros_like(batch["anchor_log_q"]))
    assert float(D.Trainer(model, model.config).losses(changed, training=False)["retrieval"]) == float(losses["retrieval"])


def test_semantic_id_items_sum_code_embeddings_content_projection_and_id_residual():
    items = make_items()
    model = make_model(items, id_dropout=0.0)
    block = model.item_block
    idx = np.array([0, items.num_items - 1])                        # a trained and a cold item
    want = block.content_projection(model.content).numpy()[idx]
    for t, emb in enumerate(block.code_embeddings):
        want += emb.embeddings.numpy()[items.codes[idx, t]]
    want += block.id_embedding.embeddings.numpy()[idx] * np.array([[1.0], [0.0]])  # the cold item: no residual
    np.testing.assert_allclose(model.item_input(tf.constant(idx)).numpy(), want, rtol=1e-5, atol=1e-6)


def test_large_catalogues_project_only_the_items_asked_for_and_get_the_same_inputs(monkeypatch):
    from trainer.dual_head import items as item_blocks

    items = make_items()
    model = make_model(items, id_dropout=0.0)
    content = model.item_block.tables.content
    idx = tf.constant([[0, items.num_items - 1, items.num_items + 1], [2, 2, 0]])  # a trained, a cold item, PAD
    gathered = []
    real = tf.gather
    monkeypatch.setattr(item_blocks.tf, "gather", lambda t, i, **kw: gathered.append(t is content) or real(t, i, **kw))
    whole = model.item_input(idx).numpy()
    assert not any(gathered)                                    # small catalogue: the projected table is gathered
    monkeypatch.setattr(item_blocks, "WHOLE_TABLE_ROWS", items.num_items + 1)          # the catalogue is "large"
    per_item = model.item_input(idx).numpy()
    assert sum(gathered) == 1                                   # the raw content rows, before the projection
    assert per_item.shape == (2, 3, model.config.d_model)
    np.testing.assert_allclose(per_item, whole, rtol=1e-5, atol=1e-6)


def _tiny_batch(pad):
    """2 rows, 1 hard negative each. Row 0: anchor 0, order {0, 1, 3}; row 1: anchor 3, order {3, 1}."""
    return {"anchor": tf.constant([0, 3]), "hard": tf.constant([[5], [pad]]),
            "positives": tf.constant([[0, 1, 3], [3, 1, -1]]),
            "anchor_log_q": tf.constant([-1.0, -2.0]), "positive_log_q": tf.constant([[0.0, -3.0, -4.0],
                                                                                        [0.0, -3.0, 0.0]])}


def test_every_positive_of_the_next_order_is_a_candidate_with_its_own_logq():
    items = make_items()
    pad = items.pad
    cands, correction, is_pos, valid = D.items.retrieval_candidates(_tiny_batch(pad), items.num_items)
    # anchors, hard negatives, then the other positives not already a column: 1 (once); 3 is row 1's anchor
    assert cands.numpy().tolist() == [0, 3, 5, pad, 1]
    assert correction.numpy().tolist() == [-1.0, -2.0, 0.0, 0.0, -3.0]
    assert is_pos.numpy().astype(int).tolist() == [[1, 1, 0, 0, 1], [0, 1, 0, 0, 1]]
    assert valid.numpy().astype(int).tolist() == [[1, 1, 1, 0, 1]] * 2
    # the old candidate set: item 1 is never scored, so it is no positive of either row
    cands, correction, is_pos, _ = D.items.retrieval_candidates(_tiny_batch(pad), items.num_items,
                                                                positive_candidates=False)
    assert cands.numpy().tolist() == [0, 3, 5, pad] and correction.numpy().tolist() == [-1.0, -2.0, 0.0, 0.0]
    assert is_pos.numpy().astype(int).tolist() == [[1, 1, 0, 0], [0, 1, 0, 0]]


def test_multi_positive_retrieval_loss_equals_the_hand_computed_loss():
    items = make_items()
    model = make_model(items)
    batch = _tiny_batch(items.pad)
    user = tf.math.l2_normalize(tf.constant(np.random.default_rng(3).normal(size=(2, 16)), tf.float32), axis=-1)
    loss, cands = model.item_block.retrieval_loss(user, batch)
    vec = model.item_vectors(tf.constant([0, 3, 5, 1])).numpy().astype(np.float64)      # the valid columns
    s = user.numpy().astype(np.float64) @ vec.T / model.config.temperature             # [2, 4]: items 0, 3, 5, 1
    s = s - np.array([-1.0, -2.0, 0.0, -3.0])[None]                                      # logQ: anchors, hard, co-target
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    # row 0: positives 0, 3, 1 (columns 0, 1, 3) against its one negative, 5 (column 2)
    row0 = np.mean([softplus(s[0, 2] - s[0, p]) for p in (0, 1, 3)])
    # row 1: positives 3, 1 (columns 1, 3) against negatives 0 and 5 (columns 0, 2)
    lse1 = np.log(np.exp(s[1, 0]) + np.exp(s[1, 2]))
    row1 = np.mean([softplus(lse1 - s[1, p]) for p in (1, 3)])
    assert float(loss) == pytest.approx((row0 + row1) / 2, rel=1e-5)
    assert cands.items.numpy().tolist() == [0, 3, 5, items.pad, 1]


def test_sampler_co_target_log_q_is_the_expected_co_target_count_per_draw():
    items = make_items()
    pad = items.pad
    # row 0 orders {0, 1}, row 1 orders {1}: uniform pairs (0, 0), (0, 1), (1, 1), each 1/3
    data = D.SequenceData(np.array([[4, pad], [5, pad]], np.int32), np.ones((2, 2), np.int32),
                          np.zeros((2, 2), np.int32), [np.array([0, 1]), np.array([1])], [[4], [5]], ["u0", "u1"])
    sampler = D.PairSampler(data, items, D.DualHeadConfig(**dict(SMALL, max_history=2, debias_targets=False)))
    # 0 comes in as a co-target when (0, 1) is drawn, 1 when (0, 0) is drawn; nothing else ever does
    np.testing.assert_allclose(np.exp(sampler.co_log_q[:2]), [1 / 3, 1 / 3], rtol=1e-6)
    assert (sampler.co_log_q[2:] < -20).all()
    b = sampler.batch(np.array([0, 1, 2]))
    assert b["positives"].tolist() == [[0, 1] + [-1] * 14, [1, 0] + [-1] * 14, [1] + [-1] * 15]
    np.testing.assert_allclose(b["positive_log_q"][:, :2], np.log([[1 / 3, 1 / 3], [1 / 3, 1 / 3], [1 / 3, 1]]) *
                               np.array([[1, 1], [1, 1], [1, 0]]), rtol=1e-6)


def test_catalogue_vectors_are_the_same_in_blocks():
    items = make_items()
    model = make_model(items)
    whole = D.catalogue_vectors(model)
    assert whole.shape == (items.num_items, model.config.d_model)
    np.testing.assert_allclose(whole, model.item_vectors(tf.range(items.num_items)).numpy(), rtol=1e-6, atol=1e-7)
    for block in (1, 5, items.num_items):  # 12 items: 12 blocks, 3 blocks (the last one short), one block
        np.testing.assert_allclose(D.catalogue_vectors(model, block=block), whole, rtol=1e-5, atol=1e-6)
