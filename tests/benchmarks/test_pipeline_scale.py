"""benchmarks/pipeline_scale.py: the runner's progress lines and RSS samples → per-component seconds and memory."""
from benchmarks import pipeline_scale as S


def test_timeline_gives_each_component_its_time_and_peak():
    t = S.Timeline(100.0)
    t.sample(10)
    t.line("[pipeline      0s] SequenceExampleGen running", 105.0, 20)
    t.sample(50)
    t.sample(30)
    t.line("[pipeline     12s] SequenceExampleGen finished in 12s", 117.0, 40)
    t.sample(45)  # between components: the launcher's row
    t.line("[pipeline     12s] Trainer running", 118.0, 45)
    t.line("[pipeline     12s]   cache hit: reusing execution 3", 118.5, 45)
    t.sample(90)
    t.line("[pipeline     20s] Trainer finished in 2s", 126.0, 60)
    rows = t.rows
    assert list(rows) == [S.LAUNCH, "SequenceExampleGen", "Trainer", S.PUBLISH]
    assert rows[S.LAUNCH]["start"] == 100.0 and rows[S.LAUNCH]["end"] == 105.0 and rows[S.LAUNCH]["rss_peak"] == 10
    ex = rows["SequenceExampleGen"]
    assert (ex["start"], ex["end"], ex["rss_start"], ex["rss_peak"]) == (105.0, 117.0, 20, 50)
    tr = rows["Trainer"]
    assert (tr["start"], tr["end"], tr["rss_start"], tr["rss_peak"]) == (118.0, 126.0, 45, 90)
    assert rows[S.PUBLISH]["start"] == 126.0 and t.cached == 1


def test_table_marks_what_did_not_finish():
    result = {"sizes": {"users": 10, "items": 20, "events": 300}, "extra_flags": ["--epochs", "1"],
              "wall_seconds": 61.2, "peak_rss_mb": 2048, "returncode": -15, "stopped": "stopped by --timeout 60 s",
              "machine": {"load_1min_samples": {"mean": 3.5}},
              "components": [{"component": "A", "seconds": 10.4, "finished": True, "rss_start_mb": 100,
                              "rss_peak_mb": 1500},
                             {"component": "B", "seconds": 50.0, "finished": False, "rss_start_mb": 1500,
                              "rss_peak_mb": 2048}]}
    text = S.table(result)
    assert "10 users / 20 items / 300 events (--epochs 1): 61 s, peak RSS 2,048 MB" in text
    assert "(stopped by --timeout 60 s)" in text
    assert "| A | 10 | 100 | 1,500 |" in text and "| B **(did not finish)** | 50 | 1,500 | 2,048 |" in text


def test_a_resumed_run_keeps_the_first_runs_finished_components():
    def comp(name, s, finished=True):
        return {"component": name, "seconds": s, "finished": finished, "rss_start_mb": 1, "rss_peak_mb": 2}

    base = {"sizes": {"users": 1, "items": 2, "events": 3}, "extra_flags": [], "command": "c", "machine": {},
            "when": "t", "stderr_tail": ""}
    first = dict(base, returncode=1, wall_seconds=100.0, peak_rss_mb=50,
                 components=[comp(S.LAUNCH, 5), comp("A", 60), comp("B", 35, finished=False)])
    second = dict(base, returncode=0, wall_seconds=40.0, peak_rss_mb=70,
                  components=[comp(S.LAUNCH, 6), comp("A", 0), comp("B", 30), comp(S.PUBLISH, 4)])
    out = S.merge(first, second)
    assert [(c["component"], c["seconds"], c["run"]) for c in out["components"]] == [
        (S.LAUNCH, 5, 1), ("A", 60, 1), ("B", 30, 2), (S.PUBLISH, 4, 2)]
    assert out["wall_seconds"] == 140.0 and out["peak_rss_mb"] == 70 and out["returncode"] == 0
    assert [r["returncode"] for r in out["runs"]] == [1, 0]
    third = dict(base, returncode=0, wall_seconds=10.0, peak_rss_mb=20,
                 components=[comp(S.LAUNCH, 6), comp("A", 0), comp("B", 0), comp("C", 8)])
    again = S.merge(dict(out, components=out["components"][:3]), third)  # a resume of a resumed run
    assert [(c["component"], c["run"]) for c in again["components"]] == [(S.LAUNCH, 1), ("A", 1), ("B", 2), ("C", 3)]
    assert [r["wall_seconds"] for r in again["runs"]] == [100.0, 40.0, 10.0] and again["wall_seconds"] == 150.0


def test_a_component_that_finishes_above_the_threshold_restarts_the_run():
    line = "[pipeline   1800s] PrefixGraphTrainer finished in 1420s"
    assert S.should_restart(line, 14_604 * 2**20, 8000) == (
        "restarted after PrefixGraphTrainer finished at 14,604 MB resident (--restart-above 8000)")
    assert S.should_restart(line, 7_000 * 2**20, 8000) == ""  # below the threshold
    assert S.should_restart(line, 14_604 * 2**20, 0) == ""  # off
    assert S.should_restart("[pipeline   1800s] PrefixTransform running", 14_604 * 2**20, 8000) == ""
