"""The push gate (``tfx_pipeline.components.gate.Gate``): exact verdicts, the lift arithmetic, the blessing artifact."""
import os

import pytest

from tfx_pipeline.components.gate import GATE_METRIC, Gate, write_blessing


def metrics(**ndcg):
    return {name: {GATE_METRIC: value, "HR@10": 0.5} for name, value in ndcg.items()}


def test_a_model_above_the_baseline_is_blessed():
    blessed, verdict = Gate("two_tower", "popularity").decide(metrics(two_tower=0.3, popularity=0.125))
    assert blessed is True
    assert verdict == "two_tower validation NDCG@10 0.3000 vs popularity 0.1250 (required lift +0%): BLESSED"


def test_a_model_at_or_below_the_baseline_is_not_blessed():
    gate = Gate("two_tower", "popularity")
    blessed, verdict = gate.decide(metrics(two_tower=0.1, popularity=0.125))
    assert blessed is False
    assert verdict == ("two_tower validation NDCG@10 0.1000 vs popularity 0.1250 (required lift +0%): "
                       "NOT blessed, nothing will be pushed")
    assert gate.decide(metrics(two_tower=0.125, popularity=0.125))[0] is False  # a tie does not pass


def test_min_lift_is_relative_to_the_baseline():
    # bar 0.25 with +100% lift: the model must exceed 0.5 strictly
    gate = Gate("m", "b", min_lift=1.0)
    assert gate.decide(metrics(m=0.5, b=0.25))[0] is False
    assert gate.decide(metrics(m=0.5000001, b=0.25))[0] is True
    assert "(required lift +100%)" in gate.decide(metrics(m=0.5, b=0.25))[1]
    # a negative lift lets a model below the bar through: -50% of 0.25 is 0.125
    lenient = Gate("m", "b", min_lift=-0.5)
    assert lenient.decide(metrics(m=0.2, b=0.25))[0] is True
    assert lenient.decide(metrics(m=0.125, b=0.25))[0] is False
    # the impossible gate the integration test uses: 1001 x the bar
    assert Gate("m", "b", min_lift=1000.0).decide(metrics(m=0.9, b=0.01))[0] is False
    assert Gate("m", "b", min_lift=1000.0).decide(metrics(m=0.9, b=0.0008))[0] is True


def test_the_gate_reads_only_its_metric():
    gate = Gate("m", "b", metric="HR@10")
    validation = {"m": {"HR@10": 0.2, GATE_METRIC: 0.0}, "b": {"HR@10": 0.1, GATE_METRIC: 0.9}}
    blessed, verdict = gate.decide(validation)
    assert blessed is True and verdict.startswith("m validation HR@10 0.2000 vs b 0.1000")


def test_a_missing_model_is_not_blessed_and_says_why():
    blessed, verdict = Gate("generative", "popularity").decide(metrics(popularity=0.1))
    assert blessed is False
    assert verdict == "generative: no validation metrics (the model was not exported); nothing to push"


def test_a_missing_baseline_is_an_error_not_a_verdict():
    with pytest.raises(KeyError, match=r"gate for two_tower: the baseline 'popularity' has no validation metrics "
                                       r"\(have \['item_cf', 'two_tower'\]\)"):
        Gate("two_tower", "popularity").decide(metrics(two_tower=0.3, item_cf=0.2))


def test_custom_verdict_words():
    gate = Gate("s", "t", passed="BLESSED, pushed", failed="NOT blessed, t stays")
    assert gate.decide(metrics(s=0.2, t=0.1))[1].endswith(": BLESSED, pushed")
    assert gate.decide(metrics(s=0.1, t=0.2))[1].endswith(": NOT blessed, t stays")


@pytest.mark.parametrize("ours,blessed", [(0.3, True), (0.1, False)])
def test_apply_marks_the_blessing_the_way_tfx_pusher_reads_it(tmp_path, capsys, ours, blessed):
    from tfx import v1 as tfx
    from tfx.components.util import model_utils

    artifact = tfx.types.standard_artifacts.ModelBlessing()
    artifact.uri = str(tmp_path)
    assert Gate("two_tower", "popularity").apply(metrics(two_tower=ours, popularity=0.2), artifact) is blessed
    _, verdict = Gate("two_tower", "popularity").decide(metrics(two_tower=ours, popularity=0.2))
    assert model_utils.is_model_blessed(artifact) is blessed
    assert artifact.get_string_custom_property("reason") == verdict
    assert os.listdir(tmp_path) == ["BLESSED" if blessed else "NOT_BLESSED"]
    assert (tmp_path / os.listdir(tmp_path)[0]).read_text() == verdict + "\n"
    assert capsys.readouterr().out == f"[evaluate] {verdict}\n"


def test_write_blessing_overrides_nothing_else(tmp_path):
    from tfx import v1 as tfx

    artifact = tfx.types.standard_artifacts.ModelBlessing()
    artifact.uri = str(tmp_path)
    write_blessing(artifact, False, "why")
    assert artifact.get_int_custom_property("blessed") == 0
    assert (tmp_path / "NOT_BLESSED").read_text() == "why\n"
