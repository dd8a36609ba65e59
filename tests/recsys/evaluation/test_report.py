"""Report JSON round trip, shape validation, text and Markdown tables."""
import json

import pytest

from recsys.evaluation.report import (
    ReportFormatError,
    format_table,
    markdown_table,
    read_report,
    write_report,
)

KEYS = ["HR@10", "Recall@10", "NDCG@10", "coverage@10", "entropy@10"]
MODELS = {
    "Popularity": dict(zip(KEYS, [0.5, 0.25, 1 / 3, 0.01, 3.0])),
    "ItemCF": {"entropy@10": 9.5, "HR@10": 0.75, "Recall@10": 0.5, "NDCG@10": 0.4, "coverage@10": 0.2},
}


def test_write_read_round_trip(tmp_path):
    path = tmp_path / "a" / "b" / "report.json"
    write_report(path, "retail", "leave-last-basket-out", MODELS, extra={"n_users": 600})
    raw = json.loads(path.read_text())
    assert list(raw) == ["dataset", "protocol", "models", "n_users"]
    assert list(raw["models"]) == ["Popularity", "ItemCF"]
    assert list(raw["models"]["ItemCF"]) == KEYS  # canonical order on disk
    back = read_report(path)
    assert back == {"dataset": "retail", "protocol": "leave-last-basket-out", "models": MODELS, "n_users": 600}


@pytest.mark.parametrize(
    "bad, message",
    [
        ([], "JSON object"),
        ({"dataset": "d", "protocol": "p"}, "missing top-level keys"),
        ({"dataset": 1, "protocol": "p", "models": MODELS}, "'dataset' must be a string"),
        ({"dataset": "d", "protocol": "p", "models": {}}, "non-empty"),
        ({"dataset": "d", "protocol": "p", "models": {"m": {k: 0.1 for k in KEYS[:4]}}}, "expected metrics"),
        ({"dataset": "d", "protocol": "p", "models": {"m": {"HR@10": 0.1, "HR@5": 0.1}}}, "one k"),
        ({"dataset": "d", "protocol": "p", "models": {"m": {**MODELS["ItemCF"], "HR@10": "x"}}}, "finite number"),
        (
            {"dataset": "d", "protocol": "p",
             "models": {"a": MODELS["ItemCF"], "b": {k.replace("10", "5"): 0.1 for k in KEYS}}},
            "other models use",
        ),
    ],
)
def test_read_report_shape_errors(tmp_path, bad, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ReportFormatError, match=message) as err:
        read_report(path)
    assert str(path) in str(err.value)


def test_read_report_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ReportFormatError, match="not valid JSON"):
        read_report(path)


def test_write_report_rejects_bad_input(tmp_path):
    with pytest.raises(ReportFormatError, match="clash"):
        write_report(tmp_path / "r.json", "d", "p", MODELS, extra={"models": 1})
    with pytest.raises(ReportFormatError, match="finite"):
        write_report(tmp_path / "r.json", "d", "p", {"m": {**MODELS["ItemCF"], "NDCG@10": float("nan")}})
    assert not (tmp_path / "r.json").exists()


def test_format_table():
    text = format_table(MODELS, "Retail, k=10")
    lines = text.splitlines()
    assert lines[0] == "Retail, k=10"
    assert lines[1].split() == ["model", *KEYS]
    assert lines[3].split() == ["Popularity", "0.5000", "0.2500", "0.3333", "0.0100", "3.0000"]
    assert lines[4].split() == ["ItemCF", "0.7500", "0.5000", "0.4000", "0.2000", "9.5000"]
    assert len({len(line) for line in lines[1:]}) == 1  # fixed width


def test_markdown_table():
    report = {"dataset": "d", "protocol": "p", "models": {"Pop|ularity": MODELS["Popularity"]}}
    assert markdown_table(report) == (
        "| Model | HR@10 | Recall@10 | NDCG@10 | coverage@10 | entropy@10 |\n"
        "|---|---:|---:|---:|---:|---:|\n"
        "| Pop\\|ularity | 0.5000 | 0.2500 | 0.3333 | 0.0100 | 3.0000 |"
    )


SAMPLED = {**MODELS["ItemCF"], "NDCG@10 ci95": 0.02, "HR@10 ci95": 0.03, "Recall@10 ci95": 0.025,
           "users evaluated": 2000.0, "users in split": 464143.0}


def test_a_sampled_evaluations_half_widths_and_sample_size_are_kept_and_shown(tmp_path):
    """--eval-users rows carry '<metric> ci95' and the sample's size: written, read back, and shown beside
    rows measured on every user (the 1M rung's RetrievalEvaluator failed on them at its table)."""
    models = {"Popularity": MODELS["Popularity"], "ItemCF": SAMPLED}
    path = tmp_path / "r.json"
    write_report(path, "d", "p", models)
    assert list(json.loads(path.read_text())["models"]["ItemCF"]) == KEYS + [
        "HR@10 ci95", "Recall@10 ci95", "NDCG@10 ci95", "users evaluated", "users in split"]
    assert read_report(path)["models"] == models
    lines = format_table(models, "t").splitlines()
    assert lines[1].split() == ["model", *KEYS, "HR@10", "ci95", "Recall@10", "ci95", "NDCG@10", "ci95"]
    assert lines[3].split() == ["Popularity", "0.5000", "0.2500", "0.3333", "0.0100", "3.0000"]
    assert lines[4].split()[-3:] == ["0.0300", "0.0250", "0.0200"]
    assert len({len(line) for line in lines[1:]}) == 1  # fixed width, blanks included
    assert markdown_table({"dataset": "d", "protocol": "p", "models": models}).splitlines()[0].count("|") == 7


@pytest.mark.parametrize("extra, message", [({"coverage@10 ci95": 0.1, "NDCG@10 ci95": 0.1}, "expected metrics"),
                                            ({"users sampled": 5.0}, "expected metrics"),
                                            ({"NDCG@10 ci95": float("nan")}, "finite number")])
def test_other_extra_keys_are_still_refused(tmp_path, extra, message):
    with pytest.raises(ReportFormatError, match=message):
        write_report(tmp_path / "r.json", "d", "p", {"m": {**MODELS["ItemCF"], **extra}})
