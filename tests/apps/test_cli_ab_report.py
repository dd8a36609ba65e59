"""`recsys ab-report`: the CTR table from the multi-stage client's event log, and its errors."""
import pytest

from apps.cli import main
from serving.experiments import EventLog, event


def _log(path, clicks_a=2, clicks_b=1):
    log = EventLog(str(path))
    rows = []
    for r, arm in enumerate(["A"] * 5 + ["B"] * 5):
        rows += [event("exposure", request_id=f"r{r}", user_id=f"u{r}", item_id=f"i{j}", experiment="e", arm=arm,
                       position=j) for j in range(2)]
    rows += [event("click", request_id=f"r{r}", user_id=f"u{r}", item_id="i0", experiment="e", arm="A")
             for r in range(clicks_a)]
    rows += [event("click", request_id=f"r{5 + r}", user_id="u", item_id="i1", experiment="e", arm="B")
             for r in range(clicks_b)]
    log.append(rows)
    log.close()


def test_ab_report_prints_ctr_per_arm(tmp_path, capsys):
    _log(tmp_path / "events.jsonl")
    assert main(["ab-report", "--log", str(tmp_path / "events.jsonl"), "--experiment", "e"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:4] == ["A", "10", "2", "0.2000"]
    assert out[2].split()[:4] == ["B", "10", "1", "0.1000"] and "-0.1000" in out[2]


@pytest.mark.parametrize("content,message", [
    (None, "no event log at"),
    ('{"type": "exposure"}\n', "events.jsonl:1: not an event"),
    ("not json\n", "events.jsonl:1: not an event"),
    (b"\xff\xfe\n", "can't decode"),
    ('{"type": "exposure", "request_id": "r", "item_id": "i", "arm": "A", "experiment": "other"}\n',
     "no exposures of experiment e"),
])
def test_ab_report_bad_logs_exit_2_with_the_reason(tmp_path, capsys, content, message):
    path = tmp_path / "events.jsonl"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    assert main(["ab-report", "--log", str(path), "--experiment", "e"]) == 2
    assert message in capsys.readouterr().err
