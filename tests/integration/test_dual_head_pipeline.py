"""The dual-head branch of the pipeline on the real MovieLens slice: training, export, gates, round trips."""
import json
import os

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def _model_dir(layout, latest, component: str, output: str) -> str:
    return latest(os.path.join(layout.pipeline_root, component, output, "*", "Format-Serving"))


def test_trainer_logs_validation_and_keeps_the_best_epoch(ml_slice, latest):
    layout, _ = ml_slice
    info = json.load(open(os.path.join(_model_dir(layout, latest, "DualHeadTrainer", "model"), "dual_head.json")))
    assert info["config"]["epochs"] == 2 and len(info["log"]) == 2
    best = max(info["log"], key=lambda e: e["val_NDCG@10"])
    assert info["best_epoch"] == best["epoch"]
    assert {"loss_retrieval", "loss_generative"} <= set(info["log"][0])
    assert "loss_distill_kl" in info["log"][1]  # distillation starts after the warm-up epoch
    assert info["exclude_history"] is True and info["default_event"] in ("purchase", "click")


def test_evaluator_reports_student_teacher_and_spine_and_gates(ml_slice, latest):
    layout, _ = ml_slice
    ev = latest(os.path.join(layout.pipeline_root, "DualHeadEvaluator", "evaluation", "*"))
    metrics = json.load(open(os.path.join(ev, "metrics.json")))
    for split in ("validation", "test"):
        models = metrics[split]["models"]
        assert {"dual_retrieval", "dual_retrieval_scann", "generative", "two_tower", "popularity"} <= set(models)
        for values in models.values():
            assert 0.0 <= values["HR@10"] <= 1.0
    verdict = open(latest(os.path.join(layout.pipeline_root, "DualHeadEvaluator", "retrieval_blessing", "*",
                                       "*BLESSED"))).read()
    assert "vs two_tower" in verdict


def test_retrieval_export_round_trip_in_a_fresh_process(ml_slice, latest, fresh_process):
    layout, _ = ml_slice
    import tensorflow as tf

    path = _model_dir(layout, latest, "DualHeadExporter", "bruteforce_model")
    model = tf.saved_model.load(path)
    assert {"serving_default", "recommend_orders", "recommend_user", "user_embedding", "item_embedding",
            "embed_content"} <= set(model.signatures)
    history = tf.constant([["50", "172", "133", ""], ["1", "", "", ""]])
    here = model.signatures["serving_default"](history=history, k=tf.constant([5, 5]),
                                               exclude=tf.constant([["50"], [""]]))
    there = fresh_process(f"""
        import tensorflow as tf
        m = tf.saved_model.load({path!r})
        out = m.signatures["serving_default"](history=tf.constant([["50", "172", "133", ""], ["1", "", "", ""]]),
                                              k=tf.constant([5, 5]), exclude=tf.constant([["50"], [""]]))
        result = {{"ids": out["item_ids"].numpy().astype(str).tolist(), "scores": out["scores"].numpy().tolist()}}
    """)
    assert there["ids"] == here["item_ids"].numpy().astype(str).tolist()
    np.testing.assert_allclose(there["scores"], here["scores"].numpy(), rtol=1e-5)
    assert "50" not in there["ids"][0]
    # every item of one order vs each item its own order: the model reads order positions
    same = model.signatures["recommend_orders"](history=history[:1], order_pos=tf.constant([[0, 0, 0, 0]], tf.int64),
                                                k=tf.constant([5]), exclude=tf.constant([[""]]))
    apart = model.signatures["recommend_orders"](history=history[:1], order_pos=tf.constant([[0, 1, 2, 0]], tf.int64),
                                                 k=tf.constant([5]), exclude=tf.constant([[""]]))
    assert not np.allclose(same["scores"].numpy(), apart["scores"].numpy())
    default = model.signatures["serving_default"](history=history[:1], k=tf.constant([5]), exclude=tf.constant([[""]]))
    np.testing.assert_allclose(default["scores"].numpy(), apart["scores"].numpy(), rtol=1e-5)


def test_cold_start_items_are_embedded_from_content(ml_slice, latest):
    layout, _ = ml_slice
    import tensorflow as tf

    from trainer import dual_head

    trained = _model_dir(layout, latest, "DualHeadTrainer", "model")
    _, items, _ = dual_head.load_trained(trained)
    cold = np.flatnonzero(items.train_count == 0)
    assert len(cold) > 100  # 40 users never rate hundreds of the 1,682 movies
    model = tf.saved_model.load(_model_dir(layout, latest, "DualHeadExporter", "bruteforce_model"))
    ids = tf.constant(items.item_ids[cold[:20]].astype(str))
    stored = model.signatures["item_embedding"](item_id=ids)["embedding"].numpy()
    mapped = model.signatures["embed_content"](content=tf.constant(items.content[cold[:20]]))["embedding"].numpy()
    np.testing.assert_allclose(stored, mapped, atol=1e-5)


def test_generative_export_returns_likelihoods_that_match_teacher_forcing(ml_slice, latest, fresh_process):
    layout, _ = ml_slice
    import tensorflow as tf

    from trainer import dual_head
    from trainer.dual_head_export import HistoryInput

    path = _model_dir(layout, latest, "DualHeadExporter", "generative_model")
    gen = tf.saved_model.load(path)
    assert {"serving_default", "recommend_orders", "recommend_user"} <= set(gen.signatures)
    history = tf.constant([["50", "172", "133"]])
    out = gen.signatures["serving_default"](history=history, k=tf.constant([10]), exclude=tf.constant([["172"]]))
    ids = out["item_ids"].numpy().astype(str)[0].tolist()
    scores = out["scores"].numpy()[0]
    assert len(ids) == 10 and len(set(ids)) == 10 and "172" not in ids and "" not in ids
    assert np.all(scores <= 0) and np.all(np.diff(scores) <= 1e-6)
    # the beam's log-likelihoods are the teacher's Σ_t log P(c_t | c_<t) of those very items
    model, items, info = dual_head.load_trained(_model_dir(layout, latest, "DualHeadTrainer", "model"))
    inputs = HistoryInput(items, model.config.max_history, model.config.max_orders, model.config.order_positions,
                          info["default_event"])
    h, rel, ev = inputs(history)
    states, mask = model.encode(h, rel, ev)
    pos = items.positions()
    exact = model.code_log_likelihood(model.memory(states, mask), tf.constant([[pos[i] for i in ids]])).numpy()[0]
    np.testing.assert_allclose(scores, exact, rtol=1e-4, atol=1e-4)
    there = fresh_process(f"""
        import tensorflow as tf
        m = tf.saved_model.load({path!r})
        out = m.signatures["recommend_user"](user_id=tf.constant(["1", "nobody"]), k=tf.constant([3, 3]),
                                             exclude=tf.constant([[""], [""]]))
        result = out["item_ids"].numpy().astype(str).tolist()
    """)
    assert len(there) == 2 and all(len(r) == 3 for r in there)
