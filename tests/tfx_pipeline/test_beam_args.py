"""The local runner names the code to ship, so TFX does not build (and leak) an sdist of itself per executor."""
import glob
import os
import tempfile

from tfx.utils import dependency_utils

from tfx_pipeline import pipeline as P


def test_setup_file_is_added_once_and_only_when_no_dependency_flag_is_given():
    args = P.with_setup_file(P.DEFAULT_BEAM_ARGS)
    assert args == [*P.DEFAULT_BEAM_ARGS, f"--setup_file={P.SETUP_FILE}"]
    assert os.path.isfile(P.SETUP_FILE) and P.SETUP_FILE.endswith(os.path.join("", "setup.py"))
    assert P.with_setup_file(args) == args
    for given in (["--setup_file=/elsewhere/setup.py"], ["--extra_packages=/x.tar.gz"], ["--extra_package=/x.tar.gz"],
                  ["--requirements_file=req.txt"], ["--sdk_container_image=img"],
                  ["--sdk-container-image=img"]):
        assert P.with_setup_file(given) == given


def test_tfx_keeps_the_args_and_builds_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where TFX's build directory would appear
    args = P.with_setup_file(P.DEFAULT_BEAM_ARGS)
    assert dependency_utils.make_beam_dependency_flags(args) == args
    assert glob.glob(str(tmp_path / "*")) == []


def test_the_default_runs_on_beams_local_runner_without_trying_prism(caplog):
    import logging

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.util import assert_that, equal_to

    caplog.set_level(logging.INFO, logger="apache_beam")
    with beam.Pipeline(options=PipelineOptions(list(P.DEFAULT_BEAM_ARGS))) as p:
        assert_that(p | beam.Create([1, 2, 3]) | beam.Map(lambda x: x * x), equal_to([1, 4, 9]))
    assert "Prism" not in caplog.text and "prism" not in caplog.text
