"""The sequence-model branch of the pipeline on the real MovieLens slice: ``sequential_retrieval``.

The SASRec-style variant is trained, exported and evaluated by the dual head's own components
(SequentialTrainer / SequentialExporter / SequentialEvaluator); its signatures, warm-up records,
fresh-process round trip and ScaNN recall are in ``test_exported_models.py``, its gate and push in
``test_gates.py``. Here: that it is the SASRec model, trained to its best validation epoch, and that
what the server answers is what the trained model scores.
"""
import json
import os

import numpy as np
import pytest

from recsys import names as N

pytestmark = pytest.mark.integration


def _info(ml_slice) -> dict:
    with open(os.path.join(ml_slice.model_dir("SequentialTrainer", "model"), "dual_head.json")) as f:
        return json.load(f)


def test_trainer_trains_the_sasrec_preset_and_keeps_the_best_epoch(ml_slice):
    from trainer.dual_head import SASREC

    info = _info(ml_slice)
    assert {k: info["config"][k] for k in SASREC} == SASREC
    assert info["config"]["epochs"] == 2 and info["config"]["max_history"] == 20
    assert len(info["log"]) == 2  # patience 5 (the preset): no early stop within 2 epochs
    assert info["best_epoch"] == max(info["log"], key=lambda e: e["val_NDCG@10"])["epoch"]
    assert set(info["log"][0]) >= {"loss_retrieval", "val_NDCG@10"} and "loss_generative" not in info["log"][0]
    # the full softmax over the catalogue learns: below a uniform guess (log 1682 = 7.43 nats), and falling
    assert info["log"][1]["loss_retrieval"] < info["log"][0]["loss_retrieval"] < np.log(1682)


def test_exporter_writes_the_twins_and_no_generative_model(ml_slice):
    report = ml_slice.read_json("SequentialExporter", "scann_model", "dual_head_report.json")
    assert report["model_name"] == N.SEQUENTIAL_RETRIEVAL and report["variant"] == "sasrec"
    assert report["catalog_items"] == 1682 and "generative" not in report
    assert report["scann"]["recall@10_vs_brute_force"] >= 0.95
    assert not os.path.exists(os.path.join(ml_slice.model_dir("SequentialExporter", "generative_model"),
                                           "saved_model.pb"))


def test_evaluator_reports_masked_and_unmasked_rows_beside_the_spine(ml_slice):
    metrics = ml_slice.read_json("SequentialEvaluator", "evaluation", "metrics.json")
    spine = ml_slice.read_json("RetrievalEvaluator", "evaluation", "metrics.json")
    info = _info(ml_slice)
    for split in ("validation", "test"):
        models = metrics[split]["models"]
        ours = {"sequential_retrieval", "sequential_retrieval_scann", "sequential_retrieval (unmasked)",
                "sequential_retrieval_scann (unmasked)"}
        assert ours <= set(models) and "generative" not in models and "dual_retrieval" not in models
        for name, values in spine[split]["models"].items():
            assert models[name] == values, name  # the spine's rows, copied, not measured again
        exact, scann = models["sequential_retrieval"], models["sequential_retrieval_scann"]
        assert abs(scann["HR@10"] - exact["HR@10"]) <= 1 / 40 + 1e-9
        # leave-one-out targets are never in the history: masking it can only move a target up
        assert exact["HR@10"] >= models["sequential_retrieval (unmasked)"]["HR@10"]
    # the exported model ranks the validation users as the trainer's validation of its best epoch did
    best = next(e for e in info["log"] if e["epoch"] == info["best_epoch"])
    assert abs(metrics["validation"]["models"]["sequential_retrieval"]["HR@10"] - best["val_HR@10"]) <= 1 / 40 + 1e-9


def test_served_scores_are_the_trained_models_scores(ml_slice, fresh_process):
    """What the exported model answers in a fresh process is the trained model's own top-k and dot products."""
    import tensorflow as tf

    from export.dual_head import HistoryInput
    from trainer import dual_head

    model, items, info = dual_head.load_trained(ml_slice.model_dir("SequentialTrainer", "model"))
    assert model.config.variant == "sasrec" and not model.generative
    history = [["50", "172", "133", "1", ""], ["1", "", "", "", ""]]
    inputs = HistoryInput(items, model.config.max_history, model.config.max_orders, model.config.order_positions,
                          info["default_event"])
    user = model.user_vector(*model.encode(*inputs(tf.constant(history)))).numpy()
    scores = user @ dual_head.catalogue_vectors(model).T
    scores[0, items.positions()["50"]] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :5]
    path = ml_slice.model_dir("SequentialExporter", "bruteforce_model")
    there = fresh_process(f"""
        import tensorflow as tf
        m = tf.saved_model.load({path!r})
        out = m.signatures["serving_default"](history=tf.constant({history!r}), k=tf.constant([5, 5]),
                                              exclude=tf.constant([["50"], [""]]))
        result = {{"ids": out["item_ids"].numpy().astype(str).tolist(), "scores": out["scores"].numpy().tolist()}}
    """)
    assert there["ids"] == items.item_ids[top].astype(str).tolist()
    np.testing.assert_allclose(there["scores"], np.take_along_axis(scores, top, axis=1), rtol=1e-4, atol=1e-5)
