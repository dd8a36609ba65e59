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
