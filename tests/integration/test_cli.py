"""The `recsys` command line on the pipeline slice: evaluate reprints the evaluator's numbers."""
import glob
import json
import os

import pytest

from apps import cli

pytestmark = pytest.mark.integration


def test_evaluate_reproduces_the_pipeline_evaluator(ml_slice, capsys):
    layout, _ = ml_slice
    assert cli.main(["evaluate", "--dataset", "movielens-100k", "--output", layout.root]) == 0
    printed = capsys.readouterr().out
    report = json.load(open(layout.metrics_path))
    assert report["dataset"] == "movielens-100k"
    # the dual-head evaluator's table holds the spine's rows and the dual-head models', as recsys evaluate does
    ev = sorted(glob.glob(os.path.join(layout.pipeline_root, "DualHeadEvaluator", "evaluation", "*")))[-1]
    expected = json.load(open(os.path.join(ev, "metrics.json")))["test"]["models"]
    assert {"two_tower", "dual_retrieval", "generative"} <= set(expected)
    assert set(report["models"]) == set(expected)
    for model, values in expected.items():
        assert report["models"][model] == pytest.approx(values), model
    assert f"{expected['two_tower']['HR@10']:.4f}" in printed


def test_recommend_in_process_prints_titles(ml_slice, capsys):
    layout, _ = ml_slice
    assert cli.main(["recommend", "--user", "1", "--k", "3", "--output", layout.root]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()[:2] in ("1.", "2.", "3.")]
    assert len(lines) == 3


def test_evaluate_without_a_run_says_what_to_do(tmp_path, capsys):
    assert cli.main(["evaluate", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "recsys run --dataset movielens-100k" in err


def test_unknown_dataset_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--dataset", "nope", "--output", "/tmp/never"])
    assert e.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
