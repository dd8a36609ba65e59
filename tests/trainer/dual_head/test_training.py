"""Trainer: which loss trains which part, one step moves both heads and the encoder, the loss goes down."""
import numpy as np
import tensorflow as tf

from trainer import dual_head as D

from .helpers import SMALL, batch_of, make_data, make_items, make_model


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
