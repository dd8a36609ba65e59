"""Trainer: which loss trains which part, one step moves both heads and the encoder, the loss goes down."""
import numpy as np
import pytest
import tensorflow as tf

from trainer import dual_head as D

from .helpers import SASREC, SMALL, batch_of, make_data, make_items, make_model


def _reach(grads) -> str:
    """'all' / 'none' / 'some' of the variables get a non-zero gradient."""
    hit = [g is not None and bool(np.any(tf.convert_to_tensor(g).numpy() != 0)) for g in grads]
    return "all" if all(hit) else "none" if not any(hit) else "some"


def test_each_loss_trains_its_head_and_the_shared_encoder_and_the_teacher_is_stop_gradient():
    items = make_items()
    model = make_model(items)
    batch = batch_of(D.PairSampler(make_data(items, rows=40), items, model.config), np.arange(8))
    groups = model.variable_groups()
    with tf.GradientTape(persistent=True) as tape:
        losses = D.Trainer(model, model.config).losses(batch, training=True, distill=True)
    got = {name: {g: _reach(tape.gradient(value, vs)) for g, vs in groups.items()} for name, value in losses.items()}
    student = {"item_input": "all", "encoder": "all", "user_head": "all", "item_head": "all", "generative_head": "none"}
    assert got == {
        "retrieval": student,
        "generative": {"item_input": "all", "encoder": "all", "user_head": "none", "item_head": "none",
                       "generative_head": "all"},
        "distill_kl": student,        # the teacher's scores are stop-gradient: distillation trains the student only
        "distill_listwise": student,
    }


def test_one_training_step_updates_both_heads_and_the_encoder_and_training_reduces_the_loss():
    items = make_items()
    data = make_data(items, rows=40)
    model = make_model(items, learning_rate=0.01)
    trainer = D.Trainer(model, model.config)
    batch = batch_of(D.PairSampler(data, items, model.config), np.arange(model.config.batch_size))
    before = {g: [v.numpy().copy() for v in vs] for g, vs in model.variable_groups().items()}
    first = trainer.train_step(batch, distill=True)
    assert set(first) == {"retrieval", "generative", "distill_kl", "distill_listwise", "total"}
    unchanged = [f"{g}: {v.name}" for g, vs in model.variable_groups().items()
                 for v, old in zip(vs, before[g]) if np.array_equal(v.numpy(), old)]
    assert unchanged == []  # every weight of the encoder, the retrieval head and the generative head moved
    for _ in range(30):
        last = trainer.train_step(batch, distill=True)
    assert float(last["total"]) < float(first["total"])
    assert set(trainer.train_step(batch, distill=False)) == {"retrieval", "generative", "total"}


def test_train_keeps_the_best_validation_epoch():
    items = make_items()
    config = D.DualHeadConfig(**dict(SMALL, epochs=3, early_stopping_patience=5))
    result = D.train(make_data(items, rows=40), make_data(items, rows=10, seed=2), items, config,
                     exclude_history=False, label="test")
    ndcg = [e["val_NDCG@10"] for e in result.log]
    assert len(ndcg) == 3 and result.best_epoch == 1 + int(np.argmax(ndcg))
    final = D.evaluate(result.model, make_data(items, rows=10, seed=2), False, generative=False)["retrieval"]
    assert round(final["NDCG@10"], 4) == max(ndcg)


def test_train_can_monitor_the_teacher_and_logs_both_heads():
    items = make_items()
    config = D.DualHeadConfig(**dict(SMALL, epochs=3, early_stopping_patience=5, monitor="teacher"))
    val = make_data(items, rows=10, seed=2)
    result = D.train(make_data(items, rows=40), val, items, config, exclude_history=False, label="test")
    teacher = [e["val_teacher_NDCG@10"] for e in result.log]
    assert len(teacher) == 3 and all("val_NDCG@10" in e for e in result.log)
    assert result.best_epoch == 1 + int(np.argmax(teacher))
    final = D.evaluate(result.model, val, False)
    assert round(final["generative"]["NDCG@10"], 4) == max(teacher)
    assert round(final["retrieval"]["NDCG@10"], 4) == result.log[result.best_epoch - 1]["val_NDCG@10"]
    # the student's own monitor logs the teacher only when asked
    plain = D.train(make_data(items, rows=40), val, items, D.DualHeadConfig(**dict(SMALL, epochs=1)),
                    exclude_history=False, label="test")
    assert "val_teacher_NDCG@10" not in plain.log[0]


def test_monitor_is_checked():
    with pytest.raises(ValueError, match="monitor must be one of"):
        D.DualHeadConfig(monitor="both")
    with pytest.raises(ValueError, match="needs a generative head"):
        D.DualHeadConfig(**dict(SASREC, monitor="teacher"))
    assert D.DualHeadConfig(validate_teacher=True).teacher_per_epoch
    assert not D.DualHeadConfig(**dict(SASREC, validate_teacher=True)).teacher_per_epoch


def test_shared_teacher_scoring_equals_the_full_teacher_forced_decode():
    items = make_items()
    for over in ({}, {"memory_recent": 2, "dropout": 0.1, "decoder_layers": 2}):
        model = make_model(items, **over)
        history = tf.constant([[0, 1, 2, 13, 13, 13], [3, 4, 5, 6, 7, 13], [9, 13, 13, 13, 13, 13]])
        order_rel = tf.constant([[3, 2, 1, 0, 0, 0], [5, 4, 3, 2, 1, 0], [1, 0, 0, 0, 0, 0]])
        memory = model.memory(*model.encode(history, order_rel, tf.zeros([3, 6], tf.int32)))
        cands = tf.constant([[0, 1, 2, 3, 9], [4, 5, 6, 7, 8], [9, 10, 11, 0, 0]])
        full = model.generative_head.code_log_likelihood(memory, cands, training=False).numpy()
        shared = model.generative_head.shared_code_log_likelihood(memory, cands).numpy()
        assert shared.shape == full.shape == (3, 5)
        np.testing.assert_allclose(shared, full, rtol=0, atol=1e-5)


def test_the_shared_teacher_step_gives_the_old_steps_losses_and_gradients():
    """Same weights, same batch, no dropout: the fast paths' loss terms and gradients equal the old path's
    (shared teacher scoring, with and without XLA)."""
    items = make_items()
    model = make_model(items, id_dropout=0.0)
    batch = batch_of(D.PairSampler(make_data(items, rows=40), items, model.config), np.arange(8))
    variables = [v for group in model.variable_groups().values() for v in group]
    paths = ((False, False), (True, False), (True, True))  # (shared_teacher, jit_teacher)
    got = {}
    for shared in paths:
        trainer = D.Trainer(model, model.config, shared_teacher=shared[0], jit_teacher=shared[1])
        with tf.GradientTape() as tape:
            losses = trainer.losses(batch, training=True, distill=True)
            total = trainer.total(losses)
        got[shared] = ({k: float(v) for k, v in losses.items()},
                       [tf.convert_to_tensor(g).numpy() for g in tape.gradient(total, variables)])
    old_losses, old_grads = got[paths[0]]
    for path in paths[1:]:
        new_losses, new_grads = got[path]
        assert set(old_losses) == set(new_losses) == {"retrieval", "generative", "distill_kl", "distill_listwise"}
        for k in old_losses:
            assert abs(old_losses[k] - new_losses[k]) < 1e-5, (path, k)
        for a, b in zip(old_grads, new_grads):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    # and one optimiser step of each from the same weights lands on the same weights
    start = model.get_weights()
    after = {}
    for shared in paths:
        model.set_weights(start)
        D.Trainer(model, model.config, shared_teacher=shared[0], jit_teacher=shared[1]).train_step(batch, distill=True)
        after[shared] = model.get_weights()
    for path in paths[1:]:
        for a, b in zip(after[paths[0]], after[path]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


FROZEN = dict(generative_weight=0.0, distill_from="frozen", distill_warmup_epochs=0)


def test_a_frozen_teacher_teaches_the_student_and_is_never_trained():
    items = make_items()
    teacher = make_model(items, memory_recent=2)           # another architecture than the student's
    student = make_model(items, **FROZEN)
    assert not student.generative
    batch = batch_of(D.PairSampler(make_data(items, rows=40), items, student.config), np.arange(8))
    trainer = D.Trainer(student, student.config, teacher=teacher)
    losses = trainer.losses(batch, training=False)
    assert set(losses) == {"retrieval", "distill_kl", "distill_listwise"}
    # the KL term is the teacher's log-likelihood of the student's top candidates against the student's scores
    states, mask = student.encode(batch["history"], batch["order_rel"], batch["events"])
    _, cands = student.item_block.retrieval_loss(student.user_vector(states, mask), batch)
    top = tf.math.top_k(tf.where(cands.valid, cands.raw, -1e9), 5)
    t_memory = teacher.memory(*teacher.encode(batch["history"], batch["order_rel"], batch["events"]))
    scores = teacher.code_log_likelihood(t_memory, tf.gather(cands.items, top.indices))
    want = D.distillation_kl(scores, tf.gather(cands.raw, top.indices, batch_dims=1), 1.0)
    np.testing.assert_allclose(float(losses["distill_kl"]), float(want), rtol=1e-5)
    before = [v.numpy().copy() for v in teacher.trainable_variables]
    for _ in range(3):
        trainer.train_step(batch)
    assert all(np.array_equal(v.numpy(), b) for v, b in zip(teacher.trainable_variables, before))


def test_a_frozen_teacher_is_checked():
    items = make_items()
    student = make_model(items, **FROZEN)
    with pytest.raises(ValueError, match="exactly when config.distill_from == 'frozen'"):
        D.Trainer(student, student.config)
    with pytest.raises(ValueError, match="exactly when"):
        D.Trainer(make_model(items), make_model(items).config, teacher=make_model(items))
    with pytest.raises(ValueError, match="has no generative head"):
        D.Trainer(student, student.config, teacher=make_model(items, **SASREC))
    with pytest.raises(ValueError, match="knows 14 items"):
        D.Trainer(student, student.config, teacher=make_model(make_items(n=14)))
    with pytest.raises(ValueError, match="distill_from must be one of"):
        D.DualHeadConfig(distill_from="other")
    with pytest.raises(ValueError, match="needs distill_weight > 0"):
        D.DualHeadConfig(distill_from="frozen", distill_weight=0.0)


def test_val_users_validates_each_epoch_on_the_evaluators_sample(monkeypatch):
    """Issue 14: DualHeadConfig.val_users > 0 keeps that many validation users, the draw of the evaluators'
    --eval-users (metrics.sample_rows, seed 0); 0 (default) keeps every row."""
    from recsys.evaluation.metrics import sample_rows
    from trainer.dual_head import training

    items = make_items()
    val = make_data(items, rows=10, seed=2)
    sub = D.sample_users(val, 4)
    keep = sample_rows(val.users, 4, 0)
    assert sub.users == [val.users[i] for i in keep] and len(sub.users) == 4
    assert np.array_equal(sub.history, val.history[keep]) and np.array_equal(sub.order_rel, val.order_rel[keep])
    assert all(np.array_equal(a, val.positives[i]) for a, i in zip(sub.positives, keep))
    assert D.sample_users(val, 0) is val and D.sample_users(val, 10) is val and D.sample_users(val, 99) is val
    seen = []
    real = training.evaluate

    def spy(model, data, *args, **kwargs):
        seen.append(list(data.users))
        return real(model, data, *args, **kwargs)

    monkeypatch.setattr(training, "evaluate", spy)
    config = D.DualHeadConfig(**dict(SMALL, epochs=2, early_stopping_patience=5, val_users=4))
    D.train(make_data(items, rows=40), val, items, config, exclude_history=False, label="test")
    assert seen == [sub.users, sub.users]  # every epoch on the same 4 users
    seen.clear()
    D.train(make_data(items, rows=40), val, items, D.DualHeadConfig(**dict(SMALL, epochs=1)), exclude_history=False,
            label="test")
    assert seen == [val.users]
    assert D.DualHeadConfig().val_users == 0
    with pytest.raises(ValueError, match="val_users"):
        D.DualHeadConfig(val_users=-1)


def test_max_steps_per_epoch_stops_each_epoch_after_that_many_batches(monkeypatch):
    """Scale probes (issue 14): ``max_steps_per_epoch`` > 0 trains the first N batches of each epoch's pairs;
    0 (default) every full batch."""
    from trainer.dual_head import training

    items = make_items()
    steps = []
    real = training.Trainer.train_step

    def count(self, *args, **kwargs):
        steps.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(training.Trainer, "train_step", count)
    data, val = make_data(items, rows=40), make_data(items, rows=6, seed=2)
    D.train(data, val, items, D.DualHeadConfig(**dict(SMALL, epochs=2, early_stopping_patience=5)),
            exclude_history=False, label="test")
    full = len(steps)
    assert full >= 6  # more batches than the cap below, in each of the 2 epochs
    steps.clear()
    D.train(data, val, items, D.DualHeadConfig(**dict(SMALL, epochs=2, early_stopping_patience=5,
                                                      max_steps_per_epoch=2)), exclude_history=False, label="test")
    assert len(steps) == 4
    assert D.DualHeadConfig().max_steps_per_epoch == 0
    with pytest.raises(ValueError, match="max_steps_per_epoch"):
        D.DualHeadConfig(max_steps_per_epoch=-1)
