"""The ranker's pieces on tiny exact inputs: gap buckets, time-window mask, ESMM, metrics, a training step."""
import numpy as np
import pytest
import tensorflow as tf

from trainer.ranker import metrics as M
from trainer.ranker.config import DEEPFM, RankerConfig
from trainer.ranker.data import ExposureSet, ItemTables, brand_table, sample_training, semantic_codes
from trainer.ranker.model import Ranker, esmm_loss, final_score, gap_bucket, item_age, price_feature, time_window_mask
from trainer.semantic_ids import SemanticIdTable


def test_gap_buckets():
    got = gap_bucket(tf.constant([0, 1, 2, 3, 4, 5, 8, 9, 1000])).numpy().tolist()
    assert got == [0, 1, 2, 3, 3, 4, 4, 5, 7]


def test_time_window_mask_drops_recent_actions_but_never_all():
    gap = tf.constant([[5, 3, 2, 1], [1, 1, 1, 1], [0, 0, 4, 1]])
    valid = gap > 0
    tf.random.set_seed(0)
    row0 = {(True,) * 4, (True, True, True, False), (True, True, False, False)}  # windows 0, 1, 2 orders
    seen = set()
    for _ in range(30):
        keep = time_window_mask(gap, valid, max_window=2).numpy()
        assert tuple(keep[0].tolist()) in row0
        seen.add(tuple(keep[0].tolist()))
        assert keep[1].all()  # a window that would empty the row keeps it whole
        assert tuple(keep[2].tolist()) in {(False, False, True, True), (False, False, True, False)}  # no padding
    assert len(seen) >= 2  # the window is drawn per call
    assert time_window_mask(gap, valid, max_window=0).numpy().tolist() == valid.numpy().tolist()


def test_esmm_loss_is_the_two_bce_terms():
    out = {"ctr_logit": tf.constant([[0.0, 2.0]]), "pctcvr": tf.constant([[0.25, 0.5]])}
    click, conv, mask = tf.constant([[1.0, 0.0]]), tf.constant([[1.0, 0.0]]), tf.constant([[True, True]])
    ctr = [np.log(2.0), np.log(1 + np.exp(2.0))]
    ctcvr = [-np.log(0.25), -np.log(0.5)]
    assert float(esmm_loss(out, click, conv, mask)) == pytest.approx(np.mean(np.add(ctr, ctcvr)), rel=1e-5)
    masked = esmm_loss(out, click, conv, tf.constant([[True, False]]))
    assert float(masked) == pytest.approx(ctr[0] + ctcvr[0], rel=1e-5)


def test_final_score_power():
    assert final_score(tf.constant(0.5), tf.constant(0.25), 0.0).numpy() == pytest.approx(0.5)
    assert final_score(tf.constant(0.5), tf.constant(0.25), 0.5).numpy() == pytest.approx(0.25)


def test_auc_and_gauc_exact():
    assert M.auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.1, 0.4, 0.4])) == pytest.approx(0.875)  # tie counts half
    assert np.isnan(M.auc(np.array([1, 1]), np.array([0.1, 0.2])))
    # user a: AUC 1 over 2 exposures; user b: AUC 0 over 4; user c: one class only (skipped)
    g = M.gauc(["a", "a", "b", "b", "b", "b", "c"], np.array([1, 0, 1, 0, 0, 0, 1]),
               np.array([0.9, 0.1, 0.1, 0.5, 0.6, 0.7, 0.3]))
    assert g == pytest.approx((1.0 * 2 + 0.0 * 4) / 6)


def test_top_k_lists_respect_mask_and_order():
    items = np.array([[7, 8, 9, 5]])
    mask = np.array([[True, True, True, False]])
    top = M.top_k_lists(items, mask, np.array([[0.1, 0.3, 0.3, 9.0]]), k=3)
    assert top.tolist() == [[8, 9, 7]]  # tie keeps merged order; the padded column never appears


def _tiny(num_items=6, n=4, a=3, f=18, d=4, seed=0):
    rng = np.random.default_rng(seed)
    items = rng.integers(0, num_items, (2, n)).astype(np.int32)
    click = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], np.float32)
    return ExposureSet(["u1", "u2"], items, rng.normal(size=(2, n, f)).astype(np.float32), click, click.copy(),
                       np.ones((2, n), bool), rng.integers(0, num_items, (2, a)).astype(np.int32),
                       np.array([[0, 1, 4], [1, 2, 4]], np.int32), np.array([[0, 2, 1], [3, 2, 1]], np.int32),
                       rng.normal(size=(2, d)).astype(np.float32), [np.array([1]), np.array([2])],
                       np.array([86400 * 400, 0], np.int64))


def _tables(num_items=6, shop=False):
    """Six items + padding; ``shop``: with brands and prices (as user files and the synthetic shop have)."""
    content = np.random.default_rng(1).normal(size=(num_items + 1, 5)).astype(np.float32)
    content[-1] = 0
    codes = np.array([[0, 1], [0, 2], [1, 1], [1, 0], [2, 2], [0, 0], [3, 3]], np.int32)  # pad row: 3 = unknown
    created = np.array([0, 86400 * 100, -1, 86400 * 500, -86400 * 3650, 86400, -1], np.int64)
    extra = {}
    if shop:
        brand, vocab = brand_table(["b", "a", "", "b", "c", "a"])
        extra = {"brand": brand, "num_brands": len(vocab),
                 "price": np.array([1.5, 20.0, np.nan, 3.0, 99.0, 0.0, np.nan], np.float32)}
    return ItemTables(content, np.array([0, 1, 0, 1, 0, 1, 2], np.int32), 2, codes, 3, created, **extra)


def test_brand_table_and_price_feature():
    index, vocab = brand_table(["b", "a", "", "b"])
    assert vocab == ["a", "b"] and index.tolist() == [1, 0, 2, 1, 2]  # "" and the padding row: unknown (2)
    assert brand_table(["", ""]) == (None, [])  # no brand anywhere: no brand input at all
    got = price_feature(tf.constant([0.0, 9.0, np.nan, -1.0])).numpy()
    np.testing.assert_allclose(got[:, 0], [0.0, np.log1p(9.0) / 5, 0.0, 0.0], rtol=1e-6)
    assert got[:, 1].tolist() == [1.0, 1.0, 0.0, 0.0]


def test_brand_and_price_join_the_model_only_where_the_catalogue_has_them():
    config = RankerConfig(actions=3, last_tokens=2, id_dim=4, content_dim=4, category_dim=2, user_dim=3,
                          deep_units=(8,), code_dim=3, brand_dim=2, interaction=DEEPFM)
    shop = Ranker(config, _tables(shop=True), np.zeros(18), np.ones(18))
    plain = Ranker(config, _tables(), np.zeros(18), np.ones(18))
    assert shop.item_repr(tf.constant([[0]])).shape[-1] == plain.item_repr(tf.constant([[0]])).shape[-1] + 2
    assert len(shop.fields) == len(plain.fields) + 2 and plain.brand_embedding is None and not plain.use_price
    off = Ranker(RankerConfig(brand=False, price=False), _tables(shop=True), np.zeros(18), np.ones(18))
    assert off.brand_embedding is None and not off.use_price


def test_item_age_is_log_days_with_a_known_flag():
    created = tf.constant([[0, 86400 * 10, -1, 86400 * 50]], tf.int64)
    got = item_age(created, tf.constant([[86400 * 20]], tf.int64)).numpy()[0]
    np.testing.assert_allclose(got[:, 0], [np.log1p(20) / 5, np.log1p(10) / 5, 0.0, 0.0], rtol=1e-6)
    assert got[:, 1].tolist() == [1.0, 1.0, 0.0, 1.0]  # -1: unknown; created after the request: age 0, known
    unknown_request = item_age(created, tf.constant([[0]], tf.int64)).numpy()[0]
    assert unknown_request.tolist() == [[0.0, 0.0]] * 4


def test_semantic_codes_drop_the_disambiguation_code_and_pad_unknown(tmp_path):
    table = SemanticIdTable(["a", "b", "c"], [[1, 0, 0], [1, 0, 1], [4, 2, 0]])
    path = str(tmp_path / "ids.tsv")
    table.save(path)
    codes, size = semantic_codes(["c", "a", "b"], path)
    assert size == 5
    assert codes.tolist() == [[4, 2], [1, 0], [1, 0], [5, 5]]
    with pytest.raises(ValueError, match="1 catalogue items have no Semantic ID"):
        semantic_codes(["a", "zz"], path)
    empty, zero = semantic_codes(["a", "b"], None)
    assert empty.shape == (3, 0) and zero == 0


def test_item_tables_check_their_rows():
    t = _tables()
    with pytest.raises(ValueError, match="codes has 6 rows"):
        ItemTables(t.content, t.category, 2, t.codes[:-1], 3, t.created_at)
    with pytest.raises(ValueError, match=r"codes must be \[I \+ 1, L\] in 0..2"):
        ItemTables(t.content, t.category, 2, t.codes, 2, t.created_at)


def test_semantic_id_levels_share_one_table_by_offset():
    config = RankerConfig(actions=3, last_tokens=2, id_dim=4, content_dim=4, category_dim=2, user_dim=3,
                          deep_units=(8,), code_dim=3)
    model = Ranker(config, _tables(), np.zeros(18), np.ones(18))
    assert model.codes.numpy()[0].tolist() == [0, 5] and model.codes.numpy()[-1].tolist() == [3, 7]  # level 1 + 4
    rows = model.code_embedding(tf.constant([[0, 5]]))
    np.testing.assert_allclose(model.code_repr(tf.constant([0])).numpy()[0], rows.numpy()[0].sum(0), rtol=1e-6)
    assert model.item_repr(tf.constant([[0, 6]])).shape == (1, 2, 4 + 4 + 2 + 3)
    off = Ranker(RankerConfig(semantic_ids=False), _tables(), np.zeros(18), np.ones(18))
    assert off.code_embedding is None


@pytest.mark.parametrize("overrides", [{"transact": True}, {"interaction": DEEPFM, "transact": True},
                                       {"structure": "parallel", "projection_dim": 4},
                                       {"semantic_ids": False, "item_age": False}, {"shop": True}])
def test_ranker_forward_shapes_and_a_step_lowers_the_loss(overrides):
    tf.keras.utils.set_random_seed(0)  # the initial weights too: the same run on every machine
    data = _tiny()
    overrides = dict(overrides)
    shop = overrides.pop("shop", False)
    config = RankerConfig(actions=3, last_tokens=2, transact_dim=8, id_dim=4, content_dim=4, category_dim=2,
                          user_dim=3, deep_units=(8,), **overrides)
    model = Ranker(config, _tables(shop=shop), np.zeros(18), np.ones(18))
    x = {"items": data.items, "features": data.features, "actions": data.actions, "action_type": data.action_type,
         "action_gap": data.action_gap, "user_vector": data.user_vector, "request_time": data.request_time}
    out = model(x)
    assert out["pctr"].shape == (2, 4)
    np.testing.assert_allclose(out["pctcvr"].numpy(), (out["pctr"] * out["pcvr"]).numpy(), rtol=1e-6)
    opt = tf.keras.optimizers.Adam(0.01)
    losses = []
    for _ in range(30):
        with tf.GradientTape() as tape:
            loss = esmm_loss(model(x, training=True), data.click, data.conversion, data.mask)
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        losses.append(float(loss))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("age", [True, False])
def test_request_time_moves_the_scores_only_through_item_age(age):
    tf.keras.utils.set_random_seed(0)
    data = _tiny()
    model = Ranker(RankerConfig(actions=3, last_tokens=2, id_dim=4, content_dim=4, category_dim=2, user_dim=3,
                                deep_units=(8,), item_age=age), _tables(), np.zeros(18), np.ones(18))
    x = {"items": data.items, "features": data.features, "actions": data.actions, "action_type": data.action_type,
         "action_gap": data.action_gap, "user_vector": data.user_vector}
    early = model(dict(x, request_time=np.array([86400, 86400], np.int64)))["pctr"].numpy()
    late = model(dict(x, request_time=np.array([86400 * 9000, 86400 * 9000], np.int64)))["pctr"].numpy()
    assert (np.abs(early - late).max() > 1e-6) == age


def test_sample_training_keeps_every_positive():
    data = _tiny()
    got = sample_training(data, negatives=1, rng=np.random.default_rng(0), pad=6)
    assert got.items.shape == (2, 2)
    assert got.click.sum(axis=1).tolist() == [1.0, 1.0]
    assert got.mask.all()


@pytest.mark.parametrize("shop", [False, True])
def test_save_and_load_keep_every_item_table(tmp_path, shop):
    from trainer.ranker.persist import load_trained, save_trained

    tf.keras.utils.set_random_seed(0)
    data = _tiny()
    config = RankerConfig(actions=3, last_tokens=2, id_dim=4, content_dim=4, category_dim=2, user_dim=4,
                          deep_units=(8,), code_dim=3, brand_dim=2)
    tables = _tables(shop=shop)
    model = Ranker(config, tables, np.zeros(18), np.ones(18))
    x = {"items": data.items, "features": data.features, "actions": data.actions, "action_type": data.action_type,
         "action_gap": data.action_gap, "user_vector": data.user_vector, "request_time": data.request_time}
    want = model(x)["pctr"].numpy()
    save_trained(model, config, np.array(list("abcdef")), np.arange(6), ["x", "y"], tables, 0.5, 4, {},
                 str(tmp_path / "r"))
    back = load_trained(str(tmp_path / "r"))
    np.testing.assert_allclose(back.model(x)["pctr"].numpy(), want, rtol=1e-6)
    assert (back.model.brand_embedding is not None) == shop and back.model.use_price == shop


def test_a_feature_constant_in_training_is_ignored_at_serving():
    """A source the training exposures lacked (std 0) cannot move the scores, whatever a request sends;
    a feature that varied in training does."""
    tf.keras.utils.set_random_seed(0)
    data = _tiny()
    std = np.ones(18)
    std[3] = 0.0  # e.g. the student source's columns in a ranker trained without it
    model = Ranker(RankerConfig(actions=3, last_tokens=2, id_dim=4, content_dim=4, category_dim=2, user_dim=3,
                                deep_units=(8,)), _tables(), np.zeros(18), std)
    x = {"items": data.items, "actions": data.actions, "action_type": data.action_type,
         "action_gap": data.action_gap, "user_vector": data.user_vector, "request_time": data.request_time}
    base = model(dict(x, features=data.features))["pctr"].numpy()
    for col, moves in ((3, False), (4, True)):
        f = data.features.copy()
        f[..., col] += 5.0
        got = model(dict(x, features=f))["pctr"].numpy()
        assert (np.abs(got - base).max() > 1e-6) == moves, col


def test_max_steps_per_epoch_yields_the_first_batches_of_the_epoch():
    """Scale probes (issue 14): ``max_steps_per_epoch`` > 0 trains each epoch on the first N of its batches."""
    from trainer.ranker.training import _epoch_batches

    two = _tiny()
    units = two.take(np.arange(12) % 2)  # 12 units; batch_size 2 below: 6 batches
    whole = list(_epoch_batches(units, 1, RankerConfig(batch_size=2, negatives=2), np.random.default_rng(0), 9))
    capped = list(_epoch_batches(units, 1, RankerConfig(batch_size=2, negatives=2, max_steps_per_epoch=4),
                                 np.random.default_rng(0), 9))
    assert len(whole) == 6 and len(capped) == 4
    for a, b in zip(capped, whole):  # the same batches, in the same order
        assert np.array_equal(a.items, b.items) and np.array_equal(a.click, b.click)
    with pytest.raises(ValueError, match="max_steps_per_epoch"):
        RankerConfig(max_steps_per_epoch=-1)
