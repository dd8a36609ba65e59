"""The `recsys` command line on the pipeline slice: evaluate reprints the evaluator's numbers.

It runs on the ``deployed`` layout: the slice's pipeline run with every exported model pushed.
"""
import json
import os

import pytest

from apps import cli

pytestmark = pytest.mark.integration


def test_evaluate_reproduces_the_pipeline_evaluator(ml_slice, deployed, capsys):
    layout = deployed
    assert cli.main(["evaluate", "--dataset", "movielens-100k", "--output", layout.root]) == 0
    printed = capsys.readouterr().out
    report = json.load(open(layout.metrics_path))
    assert report["dataset"] == "movielens-100k"
    # the dual-head and graph evaluators' tables hold the spine's rows and their models', as recsys evaluate does
    expected = dict(ml_slice.read_json("DualHeadEvaluator", "evaluation", "metrics.json")["test"]["models"])
    graph = ml_slice.read_json("GraphEvaluator", "evaluation", "metrics.json")["test"]["models"]
    expected.update({k: v for k, v in graph.items() if k.startswith("graph_retrieval")})
    # the sequence model's rows (the slice runs it: ``sequential=True``), masked and unmasked
    sequential = ml_slice.read_json("SequentialEvaluator", "evaluation", "metrics.json")["test"]["models"]
    expected.update({k: v for k, v in sequential.items() if k.startswith("sequential_retrieval")})
    # the ranker evaluator's end-to-end rows (the served ranker and each candidate order), its five metrics
    ranking = ml_slice.read_json("RankerEvaluator", "evaluation", "metrics.json")["test"]["models"]
    five = ("HR@10", "Recall@10", "NDCG@10", "coverage@10", "entropy@10")
    expected.update({k: {m: v[m] for m in five} for k, v in ranking.items()
                     if k == "ranker" or k.endswith("(candidates)") or k.startswith("candidates")})
    assert {"two_tower", "dual_retrieval", "generative", "graph_retrieval", "graph_retrieval_scann", "ranker",
            "sequential_retrieval", "sequential_retrieval (unmasked)", "sequential_retrieval_scann",
            "candidates (retriever order)", "two_tower (candidates)"} <= set(expected)
    assert set(report["models"]) == set(expected)
    for model, values in expected.items():
        assert report["models"][model] == pytest.approx(values), model
    assert f"{expected['two_tower']['HR@10']:.4f}" in printed
    assert "ranked candidates" in printed  # the ranker's table, with its heads


def test_run_publishes_every_evaluators_rows_in_the_table_order(ml_slice, deployed):
    """`recsys run`'s table (``publish_metrics``): the dual head's table (spine + its models), then the sequence
    model's and the graph retriever's rows, then the ranker's; test and validation, baselines first."""
    report = cli.publish_metrics(deployed)
    sequential = ml_slice.read_json("SequentialEvaluator", "evaluation", "metrics.json")
    dual = ml_slice.read_json("DualHeadEvaluator", "evaluation", "metrics.json")
    for label, rows in (("test", report["models"]), ("validation", report["validation"])):
        names = list(rows)
        assert names[:3] == ["popularity", "item_cf", "item_knn"]  # the baselines lead, as measured by the spine
        ours = [n for n in names if n.startswith("sequential_retrieval")]
        assert ours == ["sequential_retrieval", "sequential_retrieval (unmasked)", "sequential_retrieval_scann",
                        "sequential_retrieval_scann (unmasked)"]
        assert names.index(ours[0]) > max(names.index(n) for n in dual[label]["models"])
        assert names.index(ours[-1]) < names.index("graph_retrieval")
        for name in ours:
            assert rows[name] == pytest.approx(sequential[label]["models"][name]), name
        for name, values in dual[label]["models"].items():
            assert rows[name] == pytest.approx(values), name


def test_recommend_in_process_prints_titles(deployed, capsys):
    import tensorflow as tf

    from tfx_pipeline.artifacts import latest_version_dir

    assert cli.main(["recommend", "--user", "1", "--k", "3", "--output", deployed.root]) == 0
    captured = capsys.readouterr()
    lines = [line.split() for line in captured.out.splitlines() if line.strip()[:2] in ("1.", "2.", "3.")]
    assert len(lines) == 3
    # "auto" takes the dual-head student once it is pushed; the printed items are its top 3 for the user
    assert "(in-process model: dual_retrieval_bruteforce)" in captured.err
    model = tf.saved_model.load(latest_version_dir(os.path.join(deployed.serving_dir, "dual_retrieval_bruteforce")))
    want = model.signatures["recommend_user"](user_id=tf.constant(["1"]), k=tf.constant([3]),
                                              exclude=tf.constant([[""]]))["item_ids"].numpy().astype(str)[0]
    assert [line[1] for line in lines] == want.tolist()
    assert all(len(line) > 3 for line in lines)  # a title after the id and the score


def test_evaluate_without_a_run_says_what_to_do(tmp_path, capsys):
    assert cli.main(["evaluate", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "recsys run --dataset movielens-100k" in err


def test_unknown_dataset_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--dataset", "nope", "--output", "/tmp/never"])
    assert e.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
