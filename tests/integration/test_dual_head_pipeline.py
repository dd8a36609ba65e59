"""The dual-head branch of the pipeline on the real MovieLens slice: training, export, gates, round trips."""
import json
import os

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def test_trainer_logs_validation_and_keeps_the_best_epoch(ml_slice):
    info = json.load(open(os.path.join(ml_slice.model_dir("DualHeadTrainer", "model"), "dual_head.json")))
    assert info["config"]["epochs"] == 2 and len(info["log"]) == 2
    best = max(info["log"], key=lambda e: e["val_NDCG@10"])
    assert info["best_epoch"] == best["epoch"]
    assert {"loss_retrieval", "loss_generative"} <= set(info["log"][0])
    # the pipeline's defaults (tfx_pipeline.pipeline.DUAL_HEAD_DEFAULTS): both heads trained, no distillation
    from tfx_pipeline.pipeline import DUAL_HEAD_DEFAULTS

    assert {k: info["config"][k] for k in DUAL_HEAD_DEFAULTS} == DUAL_HEAD_DEFAULTS
    assert not any("loss_distill_kl" in e for e in info["log"])
    assert info["exclude_history"] is True and info["default_event"] in ("purchase", "click")


def test_evaluator_reports_student_teacher_and_spine(ml_slice):
    """On the slice (2 epochs, 40 users) a few validation targets are found (measured with the pipeline's
    defaults: the exported student 5 of 40, popularity 2, the two-tower 4; with the design's full model
    it was 0): what this test can hold the heads to is consistency, not quality."""
    metrics = ml_slice.read_json("DualHeadEvaluator", "evaluation", "metrics.json")
    spine = ml_slice.read_json("RetrievalEvaluator", "evaluation", "metrics.json")
    info = json.load(open(os.path.join(ml_slice.model_dir("DualHeadTrainer", "model"), "dual_head.json")))
    best = next(e for e in info["log"] if e["epoch"] == info["best_epoch"])
    for split in ("validation", "test"):
        models = metrics[split]["models"]
        assert {"dual_retrieval", "dual_retrieval_scann", "generative", "two_tower", "popularity"} <= set(models)
        # the spine's rows are the RetrievalEvaluator's, copied, not measured again
        for name, values in spine[split]["models"].items():
            assert models[name] == values, name
        student, scann = models["dual_retrieval"], models["dual_retrieval_scann"]
        # the ScaNN twin ranks like its exact twin: within one of the 40 users
        assert abs(scann["HR@10"] - student["HR@10"]) <= 1 / 40 + 1e-9
        assert abs(scann["NDCG@10"] - student["NDCG@10"]) <= 1 / 40
        # leave-one-out targets are never in the history: masking it can only move a target up
        assert student["HR@10"] >= models["dual_retrieval (unmasked)"]["HR@10"]
        assert student["NDCG@10"] >= models["dual_retrieval (unmasked)"]["NDCG@10"] - 1e-9
    # the exported student ranks the validation users like the trainer's own validation of its best epoch,
    # up to the documented request skew: served requests carry no behaviours (every history item gets the
    # most frequent training one; README "Requests as the model was trained"). Measured: the design's full
    # model 0.025 in training vs 0.0 exported; the pipeline's defaults 0.075 vs 0.125 (2 of 40 users; on the
    # whole MovieLens validation split 0.1147 vs 0.1100 NDCG@10)
    assert abs(metrics["validation"]["models"]["dual_retrieval"]["HR@10"] - best["val_HR@10"]) <= 2 / 40 + 1e-9


def test_both_heads_learn(ml_slice):
    """Losses fall epoch to epoch, and the teacher predicts codes far better than a uniform guess
    (measured: generative loss 15.99 -> 13.61 nats per item against 20.37 for uniform codes over the
    code sizes (255, 256, 256, 42); retrieval loss 5.63 -> 5.54)."""
    import math

    info = json.load(open(os.path.join(ml_slice.model_dir("DualHeadTrainer", "model"), "dual_head.json")))
    first, last = info["log"][0], info["log"][-1]
    assert last["loss_retrieval"] < first["loss_retrieval"] and last["loss_generative"] < first["loss_generative"]
    report = ml_slice.read_json("DualHeadExporter", "scann_model", "dual_head_report.json")
    uniform = sum(math.log(n) for n in report["generative"]["code_sizes"])
    assert last["loss_generative"] < uniform - 4.0, (last, uniform)


def test_retrieval_export_round_trip_in_a_fresh_process(ml_slice, fresh_process):
    import tensorflow as tf

    path = ml_slice.model_dir("DualHeadExporter", "bruteforce_model")
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


def test_cold_start_items_are_embedded_from_content(ml_slice):
    import tensorflow as tf

    from trainer import dual_head

    trained = ml_slice.model_dir("DualHeadTrainer", "model")
    _, items, _ = dual_head.load_trained(trained)
    cold = np.flatnonzero(items.train_count == 0)
    assert len(cold) > 100  # 40 users never rate hundreds of the 1,682 movies
    model = tf.saved_model.load(ml_slice.model_dir("DualHeadExporter", "bruteforce_model"))
    ids = tf.constant(items.item_ids[cold[:20]].astype(str))
    stored = model.signatures["item_embedding"](item_id=ids)["embedding"].numpy()
    mapped = model.signatures["embed_content"](content=tf.constant(items.content[cold[:20]]))["embedding"].numpy()
    np.testing.assert_allclose(stored, mapped, atol=1e-5)


def test_generative_export_returns_likelihoods_that_match_teacher_forcing(ml_slice, fresh_process):
    import tensorflow as tf

    from trainer import dual_head
    from export.dual_head import HistoryInput

    path = ml_slice.model_dir("DualHeadExporter", "generative_model")
    gen = tf.saved_model.load(path)
    assert {"serving_default", "recommend_orders", "recommend_user"} <= set(gen.signatures)
    history = tf.constant([["50", "172", "133"]])
    out = gen.signatures["serving_default"](history=history, k=tf.constant([10]), exclude=tf.constant([["172"]]))
    ids = out["item_ids"].numpy().astype(str)[0].tolist()
    scores = out["scores"].numpy()[0]
    assert len(ids) == 10 and len(set(ids)) == 10 and "172" not in ids and "" not in ids
    assert np.all(scores <= 0) and np.all(np.diff(scores) <= 1e-6)
    # the beam's log-likelihoods are the teacher's Σ_t log P(c_t | c_<t) of those very items
    model, items, info = dual_head.load_trained(ml_slice.model_dir("DualHeadTrainer", "model"))
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
