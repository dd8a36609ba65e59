"""The ranking space on the slice: no leakage into the candidate retrievers, exposures as documented, the ranker."""
import json
import os

import numpy as np
import pytest

from recsys import features as F
from recsys import names as N

pytestmark = pytest.mark.integration


def test_no_window_unit_trained_the_retrievers_that_produce_its_candidates(ml_slice):
    """MovieLens has one event per (user, item): a window target in the prefix graph can only be a leak."""
    from transform import examples_io
    from transform.ranking_window import WINDOW

    window = examples_io.read_rows(ml_slice.uri("RankingWindow", "window_examples"), WINDOW)
    held = {(u, t) for u, ts in zip(window.user_ids, window.targets) for t in ts}
    assert len(window.user_ids) == 3 * 40  # window 3, every slice user has more training units
    prefix = examples_io.read_graph_edges(ml_slice.uri("PrefixGraphBuilder", "graph"))
    served = examples_io.read_graph_edges(ml_slice.uri("GraphBuilder", "graph"))
    prefix_pairs = set(zip(prefix.user_ids.tolist(), prefix.item_ids.tolist()))
    served_pairs = set(zip(served.user_ids.tolist(), served.item_ids.tolist()))
    assert not held & prefix_pairs
    assert held <= served_pairs  # the check can fail: the served graph does hold them
    prefix_rows = examples_io.read_rows(ml_slice.uri("RankingWindow", "window_examples"), F.TRAIN)
    assert not held & {(u, t) for u, ts in zip(prefix_rows.user_ids, prefix_rows.targets) for t in ts}
    # the prefix two-tower's vocabulary counts are the prefix's, not the full training split's
    from trainer import base

    counts = base.load_vocabularies(ml_slice.uri("PrefixTransform", "transform_graph")).item_counts
    full = base.load_vocabularies(ml_slice.uri("Transform", "transform_graph")).item_counts
    assert sum(counts.values()) == sum(full.values()) - len(held)


def test_exposures_cover_every_ranked_unit_with_the_served_retrievers_top_lists(ml_slice):
    from export.ranker_evaluate import read_requests
    from transform import exposures as X

    uri = ml_slice.uri("ExposureBuilder", "exposures")
    with open(os.path.join(uri, X.STATS_FILE)) as f:
        stats = json.load(f)
    assert {s: v["units"] for s, v in stats["splits"].items()} == {F.TRAIN: 120, F.EVAL: 40, F.TEST: 40}
    req = read_requests(uri, F.TEST)
    graph = ml_slice.model_dir("GraphExporter", "bruteforce_model")
    import tensorflow as tf

    fn = tf.saved_model.load(graph).signatures[N.RECOMMEND_USER]
    r = 0
    out = fn(user_id=tf.constant([req["user_ids"][r]]), k=tf.constant([10]),
             exclude=tf.constant([req["history"][r] or [""]]))
    top = [i.decode() for i in out[N.ITEM_IDS].numpy()[0] if i]
    col = X.FEATURE_NAMES.index("graph_rrank")
    f = req["features"][r]
    by_rank = [req["candidates"][r][c] for c in np.argsort(-f[:, col], kind="stable") if f[c, col] > 0][:10]
    assert by_rank == top  # the stored ranks are the served graph retriever's own order
    # leave-one-out: nothing the user already rated is a candidate
    for cands, hist in zip(req["candidates"], req["history"]):
        assert not set(cands) & set(hist)


def test_the_student_source_is_the_prefix_students_order_on_window_units_and_the_served_ones_after(ml_slice):
    """The slice runs with ``student="always"``: every split carries the student's candidates, the
    window units from the dual head trained on the prefix, the test units from the served one."""
    import tensorflow as tf

    from export.ranker_evaluate import read_requests
    from transform import exposures as X

    uri = ml_slice.uri("ExposureBuilder", "exposures")
    with open(os.path.join(uri, X.STATS_FILE)) as f:
        assert json.load(f)["student"]["used"] is True
    col = X.FEATURE_NAMES.index("student_rrank")
    for split, component in ((F.TRAIN, "PrefixDualHeadExporter"), (F.TEST, "DualHeadExporter")):
        req = read_requests(uri, split)
        fn = tf.saved_model.load(ml_slice.model_dir(component, "bruteforce_model")).signatures[N.RECOMMEND_ORDERS]
        whole = [r for r, h in enumerate(req["history"]) if len(h) < X.MAX_ACTIONS]  # the row holds all of it
        for r in (whole[0], whole[-1]):
            f = req["features"][r]
            assert (f[:, col] > 0).sum() >= 10
            hist, pos = req["history"][r], (-req["gaps"][r]).tolist()  # order positions up to a shift
            out = fn(history=tf.constant([hist or [""]]), order_pos=tf.constant([pos or [0]], tf.int64),
                     k=tf.constant([10]), exclude=tf.constant([hist or [""]]))
            top = [i.decode() for i in out[N.ITEM_IDS].numpy()[0] if i]
            by_rank = [req["candidates"][r][c] for c in np.argsort(-f[:, col], kind="stable") if f[c, col] > 0][:10]
            assert by_rank == top, (split, r)
    info = json.load(open(os.path.join(ml_slice.model_dir("PrefixDualHeadTrainer", "model"), "dual_head.json")))
    served = json.load(open(os.path.join(ml_slice.model_dir("DualHeadTrainer", "model"), "dual_head.json")))
    assert info["config"] == served["config"]  # the served dual head's config, on the prefix


def test_ranker_rows_and_gate(ml_slice):
    from tfx_pipeline.components.evaluator import METRICS_FILE
    from tfx_pipeline.components.ranker_evaluator import gate_baseline

    with open(os.path.join(ml_slice.uri("RankerEvaluator", "evaluation"), METRICS_FILE)) as f:
        rows = json.load(f)
    for label in ("validation", "test"):
        models = rows[label]["models"]
        assert {"ranker", "candidates (retriever order)", "graph (candidates)", "two_tower (candidates)",
                "student (candidates)", "popularity (candidates)"} <= set(models)
        assert "repeat (candidates)" not in models  # leave-one-out: no repeat source
        for m in ("ctr_AUC", "ctr_GAUC", "ctr_logloss", "ctcvr_AUC"):
            assert 0 <= models["ranker"][m] < 10, m
        # each source's own top-10 among the candidates is the retriever's full-ranking top-10
        assert models["two_tower (candidates)"]["NDCG@10"] == pytest.approx(models["two_tower"]["NDCG@10"], abs=1e-9)
    assert gate_baseline(rows["validation"]["models"]).endswith("(candidates)")


def test_ranked_evaluation_on_a_user_sample(ml_slice):
    """``eval_users``: the RankerEvaluator ranks the units of the sampled users only and says how many."""
    from export.ranker_evaluate import evaluate_exposures
    from transform import examples_io

    exposures = ml_slice.uri("ExposureBuilder", "exposures")
    positions = examples_io.read_catalog(ml_slice.uri("SequenceExampleGen", "examples")).positions()
    ranker_dir = os.path.join(ml_slice.uri("RankerExporter", "ranker"), N.SERVING_SUBDIR)
    population = len(examples_io.user_ids(examples_io.split_files(exposures, "eval")))
    rows = evaluate_exposures(exposures, "eval", positions, ranker_dir, sample_users=12, progress=lambda m: None)
    assert {(r["users evaluated"], r["users in split"]) for r in rows.values()} == {(12, population)}
    assert all(0 <= r["NDCG@10"] <= 1 for r in rows.values()) and "ranker" in rows
    whole = evaluate_exposures(exposures, "eval", positions, None, progress=lambda m: None)
    everyone = evaluate_exposures(exposures, "eval", positions, None, sample_users=population, progress=lambda m: None)
    assert everyone == whole  # a sample of everyone is everyone
    assert not any("users evaluated" in r for r in whole.values())
