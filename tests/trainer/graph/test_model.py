"""GraphModel and training on a tiny graph: semantic init, target-aligned scores, cold items, early stopping."""
import numpy as np
import pytest

from trainer.graph import GraphConfig, GraphData, train
from trainer.graph.data import EvalRows
from trainer.graph.model import GraphModel
from trainer.graph.training import query_item_vectors, session_vectors


def tiny_graph(content=True) -> GraphData:
    # 3 users, 12 items (items d..l have no edge); behaviours (click, purchase)
    rng = np.random.default_rng(0)
    nbr = np.full((12, 2), -1)
    nbr[:3] = [[1, -1], [0, 2], [1, -1]]
    omega = np.zeros((12, 2), np.float32)
    omega[:3] = [[1.0, 0], [0.5, 0.5], [1.0, 0]]
    return GraphData(np.array(list("abcdefghijkl"), dtype=object), np.array(["u0", "u1", "u2"], dtype=object),
                     ("click", "purchase"), np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 2, 2]),
                     np.array([1, 0, 1, 1, 1], np.int32), np.ones(5, np.int64), np.ones(5, np.float32), nbr, omega,
                     rng.normal(size=(12, 6)).astype(np.float32) if content else None)


def test_semantic_init_users_start_at_the_mean_of_their_items_and_new_items_from_content():
    g = tiny_graph()
    m = GraphModel(g, GraphConfig(semantic_init=True, embedding_dim=4))
    items = m.items().numpy()
    assert np.allclose(m.user_table.numpy()[0], items[[0, 1]].mean(0), atol=1e-6)
    assert np.allclose(m.user_table.numpy()[2], items[2], atol=1e-6)
    # item d has no edge: its vector is the content map alone, as for a never-seen item
    assert np.allclose(m.content_vectors(g.content[3:4]).numpy(), items[3:4], atol=1e-6)


def test_without_semantic_init_there_is_no_content_path():
    m = GraphModel(tiny_graph(content=False), GraphConfig(semantic_init=False, embedding_dim=4))
    with pytest.raises(ValueError, match="no content map"):
        m.content_vectors(np.zeros((1, 6), np.float32))
    with pytest.raises(ValueError, match="needs content"):
        GraphModel(tiny_graph(content=False), GraphConfig(semantic_init=True))


@pytest.mark.parametrize("variant,optimizer", [("ultragcn", "adam"), ("lightgcn", "adam"), ("ultragcn", "lazy_adam")])
def test_training_keeps_the_target_relation_fixed_and_learns_the_target_edges(variant, optimizer):
    g = tiny_graph()
    val = EvalRows(np.array([0, 1]), [np.array([2]), np.array([0])], [np.array([0, 1]), np.array([1, 2])], ["u0", "u1"])
    cfg = GraphConfig(variant=variant, embedding_dim=8, negatives=4, negative_weight=4, learning_rate=0.05,
                      batch_size=2, max_epochs=30, patience=30, w1=1.0, w3=1.0, layers=1, optimizer=optimizer)
    r = train(g, val, cfg, exclude_history=True, log=lambda _: None)
    rel = r.model.relation.numpy()
    assert np.array_equal(rel[g.target], np.ones(8, np.float32))       # purchase scores are plain dot products
    assert not np.allclose(rel[0], 1.0) or variant == "lightgcn"        # the click relation is learned (UltraGCN)
    assert r.users.shape == (3, 8) and r.items.shape == (12, 8)
    # the purchase edges (u0, a) and (u2, c) outscore the never-touched item d
    s = r.users @ r.items.T
    assert s[0, 0] > s[0, 3] and s[2, 2] > s[2, 3]
    assert 1 <= r.best_epoch <= 30 and len(r.log) == 30


def test_session_vectors_mix_normalised_user_and_recent_mean():
    users = np.array([[3.0, 0.0]])
    items = np.array([[0.0, 2.0], [0.0, 4.0], [1.0, 0.0]])
    rows = EvalRows(np.array([0, 0]), [np.array([2]), np.array([2])], [np.array([2, 0, 1]), np.array([], np.int64)],
                    ["u", "u"])
    got = session_vectors(users, items, rows, weight=0.25, recent=2)
    assert np.allclose(got[0], [0.75, 0.25])   # m = mean(items 0, 1) = (0, 3) -> (0, 1)
    assert np.allclose(got[1], [1.0, 0.0])     # no history: the user alone


def test_query_item_vectors_blend_the_items_audience_with_its_own_vector():
    users = np.array([[3.0, 0.0], [0.0, 2.0], [0.0, 5.0]])
    items = np.array([[0.0, 2.0], [4.0, 3.0], [1.0, 0.0]])
    # item 0: users 0 and 1 (user 0 twice, as click and purchase: counted once); item 1: user 2; item 2: none
    eu, ei = np.array([0, 0, 1, 2]), np.array([0, 0, 0, 1])
    audience = query_item_vectors(users, items, eu, ei, self_weight=0.0)
    np.testing.assert_allclose(audience, [[np.sqrt(0.5), np.sqrt(0.5)], [0.0, 1.0], [1.0, 0.0]], rtol=1e-6)
    own = query_item_vectors(users, items, eu, ei, self_weight=1.0)
    np.testing.assert_allclose(own, [[0.0, 1.0], [0.8, 0.6], [1.0, 0.0]], rtol=1e-6)
    half = query_item_vectors(users, items, eu, ei, self_weight=0.5)
    np.testing.assert_allclose(half[0], 0.5 * audience[0] + 0.5 * own[0], rtol=1e-6)
    np.testing.assert_allclose(half[2], [1.0, 0.0], rtol=1e-6)   # no audience: its own unit vector


@pytest.mark.parametrize("semantic,full_table", [(True, True), (True, False), (False, False)])
def test_ultragcn_loss_equals_the_loss_over_full_item_vectors_for_shared_and_per_edge_negatives(semantic, full_table):
    import tensorflow as tf

    from trainer.graph import losses

    g = tiny_graph(content=semantic)
    cfg = GraphConfig(embedding_dim=4, negatives=3, item_weight=0.7, l2=1e-3, semantic_init=semantic, init_std=0.3,
                      l2_scope="all")
    m = GraphModel(g, cfg)
    assert m.full_table                      # 12 items: building the table is the cheaper path
    m.full_table = full_table
    rng = np.random.default_rng(1)
    m.item_residual.assign(rng.normal(size=(12, 4)).astype(np.float32))
    m.user_table.assign(rng.normal(size=(3, 4)).astype(np.float32))
    m.relation.assign(rng.normal(size=(2, 4)).astype(np.float32))
    batch = {"user": tf.constant([0, 2]), "item": tf.constant([1, 2]), "behaviour": tf.constant([0, 1]),
             "pos_beta": tf.constant([0.5, 1.0]), "weight": tf.constant([1.0, 0.5]),
             "neg_beta": tf.constant([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]]),
             "neighbours": tf.constant([[0, 2], [1, -1]]), "omega": tf.constant([[0.5, 0.5], [1.0, 0.0]])}
    # the reference: every item vector built, scores as plain dot products
    items = m.items().numpy()
    u = m.user_table.numpy()[[0, 2]]
    rel = np.stack([m.relation.numpy()[0], np.ones(4)])          # edge 0 is a click, edge 1 the target behaviour
    neg_idx = np.array([[5, 7, 9], [5, 7, 9]])
    pos = ((u * rel) * items[[1, 2]]).sum(1).astype(np.float32)
    neg = np.einsum("bd,bmd->bm", u * rel, items[neg_idx]).astype(np.float32)
    edge = losses.ultragcn_edge_loss(pos, neg, batch["pos_beta"], batch["neg_beta"], w1=1.0, w2=1.0, w3=1.0, w4=1.0,
                                     negative_weight=cfg.negative_weight).numpy()
    nbr = items[np.maximum([[0, 2], [1, -1]], 0)]
    edge += 0.7 * losses.item_constraint_loss(u.astype(np.float32), nbr, batch["omega"]).numpy()
    want = (np.array([1.0, 0.5]) * edge).sum() + 1e-3 * float(m.l2())
    shared = m.loss(dict(batch, negatives=tf.constant([5, 7, 9], tf.int64)))
    per_edge = m.loss(dict(batch, negatives=tf.constant(neg_idx, tf.int64)))
    assert np.isclose(float(shared), want, rtol=1e-5) and np.isclose(float(per_edge), want, rtol=1e-5)


def test_batch_l2_counts_the_rows_the_step_touches_and_the_content_map():
    import tensorflow as tf

    m = GraphModel(tiny_graph(), GraphConfig(embedding_dim=4, init_std=0.3, l2_scope="batch"))
    m.item_residual.assign(np.arange(48, dtype=np.float32).reshape(12, 4) / 10)
    u = tf.constant([[1.0, 2.0, 0.0, 0.0], [1.0, 2.0, 0.0, 0.0]])         # the same user twice counts twice
    got = float(m.batch_l2(u, tf.constant([1, 1]), tf.constant([5], tf.int64)))
    r = m.item_residual.numpy()
    want = 0.5 * (10.0 + 2 * (r[1] ** 2).sum() + (r[5] ** 2).sum() + (m.content_map.numpy() ** 2).sum())
    assert np.isclose(got, want, rtol=1e-6)
    with pytest.raises(ValueError, match="l2_scope"):
        GraphConfig(l2_scope="some")


def test_training_picks_the_session_rule_on_validation_and_keeps_its_query_vectors():
    g = tiny_graph()
    val = EvalRows(np.array([0, 1]), [np.array([2]), np.array([0])], [np.array([0, 1]), np.array([1, 2])], ["u0", "u1"])
    cfg = GraphConfig(embedding_dim=8, negatives=4, shared_negatives=True, learning_rate=0.05, batch_size=2,
                      max_epochs=3, patience=3)
    r = train(g, val, cfg, exclude_history=True, log=lambda _: None)
    assert r.query_self_weight in (0.0, 0.5, 1.0) and r.query_items.shape == r.items.shape
    np.testing.assert_allclose(r.query_items, query_item_vectors(r.users, r.items, g.edge_user, g.edge_item,
                                                                 r.query_self_weight), rtol=1e-6)
    assert len(r.session_val) == 18 and f"self={r.query_self_weight},w={r.session_weight}" in r.session_val


def test_edge_weights_combine_behaviour_recency_and_repeat_counts():
    from trainer.graph.training import edge_tensors

    g = tiny_graph()
    g = GraphData(g.item_ids, g.user_ids, g.behaviours, g.edge_user, g.edge_item, g.edge_behaviour,
                  np.array([1, 1, 4, 1, 1]), np.array([1.0, 0.5, 2.0, 1.0, 0.25], np.float32), g.neighbours, g.omega,
                  g.content)
    e = edge_tensors(g, GraphConfig(aux_weight=0.5, recency_weight=0.8, count_weight=1.0))
    recency = np.array([1.0, 0.5, 0.5, 1.0, 0.25])              # recency sum / count
    behaviour = np.array([1.0, 0.5, 1.0, 1.0, 1.0])             # edge 1 is a click (auxiliary)
    counts = 1 + np.log([1, 1, 4, 1, 1])
    np.testing.assert_allclose(e["weight"], behaviour * (0.2 + 0.8 * recency) * counts, rtol=1e-6)
    # UltraGCN's beta in the edge's own behaviour graph: edge 3 is (u1, c, purchase); u1 has 2 purchase
    # edges, c has 2 (from u1 and u2)
    beta_u1_c = 1 / 2 * np.sqrt((2 + 1) / (2 + 1))
    assert np.isclose(e["pos_beta"][3], beta_u1_c)


def test_val_users_samples_the_validation_rows_model_selection_ranks():
    """Issue 14: GraphConfig.val_users > 0 keeps that many validation users (the same draw as the evaluators')."""
    from recsys.evaluation.metrics import sample_rows
    from trainer.graph.data import sample_eval_rows

    ids = [f"u{i}" for i in range(20)]
    rows = EvalRows(np.arange(20) * 2, [np.array([i]) for i in range(20)], [np.array([i, i + 1]) for i in range(20)],
                    ids, [np.array(["purchase"], dtype=object) for _ in range(20)])
    assert sample_eval_rows(rows, 0) is rows and sample_eval_rows(rows, 20) is rows
    got = sample_eval_rows(rows, 5)
    keep = sample_rows(ids, 5)
    assert got.user_ids == [ids[i] for i in keep] and got.users.tolist() == (keep * 2).tolist()
    assert [t.tolist() for t in got.targets] == [[i] for i in keep]
    assert [h.tolist() for h in got.histories] == [[i, i + 1] for i in keep] and len(got.target_behaviours) == 5
    assert GraphConfig().val_users == 0  # default: every validation user, as before
    with pytest.raises(ValueError, match="val_users"):
        GraphConfig(val_users=-1)


def test_max_steps_per_epoch_stops_each_epoch_after_that_many_batches():
    """Scale probes (issue 14): an epoch of ``max_steps_per_epoch`` > 0 takes that many optimizer steps (the
    first batches of the epoch's order); 0 (default) every batch."""
    from trainer.graph.training import Trainer

    graph = tiny_graph()  # 5 edges: 5 batches of 1
    for cap, steps in ((0, 5), (2, 2), (9, 5)):
        t = Trainer(graph, GraphConfig(embedding_dim=4, negatives=2, batch_size=1, max_steps_per_epoch=cap))
        t.epoch(1)
        assert int(t.optimizer.iterations) == steps, cap
    assert GraphConfig().max_steps_per_epoch == 0
    with pytest.raises(ValueError, match="max_steps_per_epoch"):
        GraphConfig(max_steps_per_epoch=-1)
