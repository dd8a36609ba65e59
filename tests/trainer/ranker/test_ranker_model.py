"""The ranker's pieces on tiny exact inputs: gap buckets, time-window mask, ESMM, metrics, a training step."""
import numpy as np
import pytest
import tensorflow as tf

from trainer.ranker import metrics as M
from trainer.ranker.config import DEEPFM, RankerConfig
from trainer.ranker.data import ExposureSet, sample_training
from trainer.ranker.model import Ranker, esmm_loss, final_score, gap_bucket, time_window_mask


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
                       rng.normal(size=(2, d)).astype(np.float32), [np.array([1]), np.array([2])])


@pytest.mark.parametrize("overrides", [{"transact": True}, {"interaction": DEEPFM, "transact": True},
                                       {"structure": "parallel", "projection_dim": 4}])
def test_ranker_forward_shapes_and_a_step_lowers_the_loss(overrides):
    tf.keras.utils.set_random_seed(0)  # the initial weights too: the same run on every machine
    data = _tiny()
    config = RankerConfig(actions=3, last_tokens=2, transact_dim=8, id_dim=4, content_dim=4, category_dim=2,
                          user_dim=3, deep_units=(8,), **overrides)
    content = np.random.default_rng(1).normal(size=(7, 5)).astype(np.float32)
    model = Ranker(config, content, np.array([0, 1, 0, 1, 0, 1, 2], np.int32), 2, np.zeros(18), np.ones(18))
    x = {"items": data.items, "features": data.features, "actions": data.actions, "action_type": data.action_type,
         "action_gap": data.action_gap, "user_vector": data.user_vector}
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


def test_sample_training_keeps_every_positive():
    data = _tiny()
    got = sample_training(data, negatives=1, rng=np.random.default_rng(0), pad=6)
    assert got.items.shape == (2, 2)
    assert got.click.sum(axis=1).tolist() == [1.0, 1.0]
    assert got.mask.all()
