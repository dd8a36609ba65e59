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


def _write_split(uri, split: str, users: list[str]) -> None:
    import os

    import tensorflow as tf

    from recsys import features as F

    os.makedirs(os.path.join(uri, f"Split-{split}"))
    with tf.io.TFRecordWriter(os.path.join(uri, f"Split-{split}", "data.gz"), options="GZIP") as w:
        for u in users:
            w.write(tf.train.Example(features=tf.train.Features(feature={F.USER_ID.name: tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[u.encode()]))})).SerializeToString())


def test_unit_samples_are_the_evaluators_draw_and_whole_window_users(tmp_path):
    """Validation/test: the users ``examples_io.sampled_users`` draws (as the RankerEvaluator and the ranker's
    validation do); window: that many distinct users, a user's several window rows counting once."""
    import pytest

    from recsys import features as F
    from tfx_pipeline.components.exposure_builder import _samples
    from transform import examples_io
    from transform.ranking_window import WINDOW

    users = [f"u{k}" for k in range(40)]
    _write_split(tmp_path, F.EVAL, users)
    _write_split(tmp_path, F.TEST, users[::-1])
    _write_split(tmp_path, WINDOW, [u for u in users for _ in range(3)])  # three window units per user
    samples, note = _samples(str(tmp_path), eval_users=7, window_users=5)
    assert samples[F.EVAL] == samples[F.TEST] == examples_io.sampled_users(
        examples_io.split_files(str(tmp_path), F.EVAL), 7)
    assert len(samples[F.TRAIN]) == 5 and samples[F.TRAIN] <= set(users)
    assert samples[F.TRAIN] == examples_io.sampled_users(examples_io.split_files(str(tmp_path), F.EVAL), 5)
    assert note == "sampled: train 5 of 40 users, eval 7 of 40 users, test 7 of 40 users"
    assert _samples(str(tmp_path), 0, 0) == ({F.TRAIN: None, F.EVAL: None, F.TEST: None}, "every user's")
    whole, note = _samples(str(tmp_path), 0, 40)  # a sample of everyone is everyone
    assert whole[F.TRAIN] is None and note == "sampled: train 40 of 40 users"
    with pytest.raises(ValueError, match="window_users must be >= 0"):
        _samples(str(tmp_path), 0, -1)
