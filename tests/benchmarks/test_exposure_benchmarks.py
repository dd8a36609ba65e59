"""The exposure builder's and the ranker reader's benchmarks, tiny: they run, and their two paths agree."""
import json

import pytest


def test_exposure_speed_runs_and_finds_the_records_identical(tmp_path, capsys):
    from benchmarks import exposure_speed

    out = tmp_path / "speed.json"
    assert exposure_speed.main(["--users", "30", "--items", "300", "--events", "600", "--repeats", "1",
                                "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["records_identical"] is True and result["units"] > 0
    assert set(result["timings"][0]) >= {"per_unit", "vectorised", "retrievers_only", "ratio"}


def test_ranker_read_memory_child_compares_the_readers(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend("benchmarks")  # the script imports exposure_speed by name, as run from the shell
    from benchmarks import ranker_read_memory as R

    sizes = R.write_exposures(str(tmp_path / "exposures"), 30, 300, 600, 0)
    assert sizes["units"] > 0 and sizes["exposures"] > 0
    R.child(str(tmp_path / "exposures"), "new", 10, compare=True)
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[7:])
    assert result["identical"] is True and result["units"] == sizes["units"]
    with pytest.raises(SystemExit):
        R.main(["--help"])


def test_ranker_read_memory_child_streams_and_trains(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend("benchmarks")
    from benchmarks import ranker_read_memory as R

    sizes = R.write_exposures(str(tmp_path / "exposures"), 30, 300, 600, 0)
    R.child(str(tmp_path / "exposures"), "stream", 10, compare=False, train_epochs=1)
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[7:])
    assert result["reader"] == "stream" and result["units"] == sizes["units"] and result["arrays_mb"] == 0
    assert 0 <= result["validation_ndcg"] <= 1 and result["train_seconds"] > 0
