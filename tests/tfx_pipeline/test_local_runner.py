"""The local runner's progress lines survive what the components do to logging (a SavedModel save)."""
import absl.logging
import tensorflow as tf

from tfx_pipeline.local_runner import component_progress


def test_component_lines_are_printed_after_a_savedmodel_save(tmp_path, capsys):
    before = absl.logging.get_verbosity()
    with component_progress():
        absl.logging.info("Component %s is running.", "First")
        tf.saved_model.save(tf.Module(), str(tmp_path / "m"))  # sets absl's verbosity to FATAL and back
        absl.logging.info("Component %s is running.", "Second")
        absl.logging.info("something else at INFO")             # dropped
        absl.logging.info("A cached execution %d is used.", 7)
    out = capsys.readouterr().out
    assert "] First running" in out and "] Second running" in out
    assert "cache hit: reusing execution 7" in out and "something else" not in out
    assert absl.logging.get_verbosity() == before
