"""scripts/plot_convergence.py: the curves are the logged values, missing logs are errors, the PNG is written."""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("plot_convergence", os.path.join(ROOT, "scripts", "plot_convergence.py"))
plot = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plot)


def _report():
    log = [{"epoch": 1, "val_HR@10": 0.1, "val_NDCG@10": 0.05, "val_teacher_HR@10": 0.02, "val_teacher_NDCG@10": 0.01},
           {"epoch": 2, "val_HR@10": 0.2, "val_NDCG@10": 0.07, "val_teacher_HR@10": 0.04, "val_teacher_NDCG@10": 0.02}]
    return {"dataset": "d", "training": {"C": {"best_epoch": 2, "log": log},
                                         "A": {"best_epoch": 1, "log": [{"epoch": 1, "val_HR@10": 0.3,
                                                                         "val_NDCG@10": 0.1}]}}}


def test_curves_are_the_logged_values_per_head():
    lines = plot.curves([_report()])
    assert [c["label"] for c in lines] == ["C: student", "C: teacher", "A: student"]
    assert lines[1]["values"] == {"HR@10": [0.02, 0.04], "NDCG@10": [0.01, 0.02]} and lines[1]["best_epoch"] == 2
    assert [c["label"] for c in plot.curves([_report()], ["A"])] == ["A: student"]


def test_missing_curves_are_errors():
    with pytest.raises(ValueError, match=r"no logged curve for variants \['B'\]"):
        plot.curves([_report()], ["A", "B"])
    with pytest.raises(ValueError, match="has no training logs"):
        plot.curves([{"dataset": "x"}])


def test_main_writes_a_png(tmp_path):
    import json

    src = tmp_path / "r.json"
    src.write_text(json.dumps(_report()))
    out = tmp_path / "sub" / "c.png"
    assert plot.main([str(src), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
