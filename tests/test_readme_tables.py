"""Every table in README.md equals what its committed metrics JSON generates (scripts/readme_tables.py)."""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("readme_tables", os.path.join(ROOT, "scripts", "readme_tables.py"))
tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tables)


def test_readme_tables_match_their_metrics_json():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    assert tables._BLOCK.findall(text), "README.md has no generated tables"
    assert tables.render(text) == text, "README.md is out of date: run python scripts/readme_tables.py"


def test_a_hand_edited_table_is_detected(tmp_path):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    block = tables._BLOCK.search(text)
    edited = text[:block.start(4)] + block.group(4).replace("0.", "9.", 1) + text[block.end(4):]
    assert tables.render(edited) != edited


def test_several_reports_give_their_rows_in_file_order_a_shared_row_once(tmp_path, monkeypatch):
    import json

    import pytest

    monkeypatch.setattr(tables, "ROOT", str(tmp_path))
    (tmp_path / "a.json").write_text(json.dumps({"r": {"m1": {"x": 1}, "spine": {"x": 9}}}))
    (tmp_path / "b.json").write_text(json.dumps({"r": {"m2": {"x": 2}, "spine": {"x": 9}}}))
    assert tables._rows("a.json,b.json", "r") == {"m1": {"x": 1}, "spine": {"x": 9}, "m2": {"x": 2}}
    (tmp_path / "c.json").write_text(json.dumps({"r": {"m3": {"x": 3}, "spine": {"x": 8}}}))
    with pytest.raises(ValueError, match="'spine' is in a.json and c.json with different metrics"):
        tables._rows("a.json,c.json", "r")  # never a silently dropped row


def test_a_pipeline_scale_table_is_the_runs_per_component_table(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(tables, "ROOT", str(tmp_path))
    run = {"sizes": {"users": 10, "items": 20, "events": 300}, "extra_flags": ["--epochs", "1"], "wall_seconds": 12.4,
           "peak_rss_mb": 1234, "returncode": 0, "stopped": "", "machine": {"load_1min_samples": {"mean": 1.5}},
           "components": [{"component": "Trainer", "finished": True, "seconds": 7.6, "rss_start_mb": 100,
                           "rss_peak_mb": 1234},
                          {"component": "Pusher", "finished": False, "seconds": 2, "rss_start_mb": 90,
                           "rss_peak_mb": 95}]}
    (tmp_path / "run.json").write_text(json.dumps(run))
    text = "x\n<!-- table: run.json pipeline_scale -->\nstale\n<!-- /table -->\n"
    assert tables.render(text) == (
        "x\n<!-- table: run.json pipeline_scale -->\n"
        "10 users / 20 items / 300 events (--epochs 1): 12 s, peak RSS 1,234 MB, returncode 0, load avg mean 1.5\n\n"
        "| component | s | RSS at start, MB | peak RSS, MB |\n|---|---:|---:|---:|\n"
        "| Trainer | 8 | 100 | 1,234 |\n| Pusher **(did not finish)** | 2 | 90 | 95 |\n<!-- /table -->\n")
