"""ExposureBuilder's student-source decision (the Beam job itself runs in tests/integration/test_ranking_slice.py)."""
import pytest
from tfx.types import standard_artifacts

from tfx_pipeline.components.exposure_builder import _student_decision


def _blessing(blessed: int):
    b = standard_artifacts.ModelBlessing()
    b.set_int_custom_property("blessed", blessed)
    return b


def test_student_source_follows_its_inputs_and_blessing():
    model = standard_artifacts.Model()
    assert _student_decision(None, None, None) == (False, "off (no dual-head student in this pipeline)")
    assert _student_decision(model, model, None)[0] is True  # "always": no blessing given
    assert _student_decision(model, model, _blessing(1))[0] is True
    used, why = _student_decision(model, model, _blessing(0))
    assert not used and "not blessed" in why
    with pytest.raises(ValueError, match="both prefix_student and student"):
        _student_decision(model, None, None)
