"""MovieLens-100K read inside Beam: the example generator's records are the launcher-side path's.

The first 50 users (``recsys run --max-users 50``'s slice): every split's records (as
deterministic re-serializations: tf.Example's feature map has no fixed byte order, so neither
path's files are byte-stable run to run), ``load_report.txt`` and ``protocol.txt`` byte for byte.
"""
import importlib.util
import os

import pytest

pytestmark = pytest.mark.integration


def _case():
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "transform", "test_event_source.py")
    spec = importlib.util.spec_from_file_location("_event_source_case", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_movielens_slice_same_records_read_in_beam_or_in_the_launcher(tmp_path, monkeypatch):
    case = _case()
    beam_side = case.run_example_gen(str(tmp_path / "beam"), "", 50)
    launcher_side = case.run_example_gen(str(tmp_path / "launcher"), "", 50, True, monkeypatch)
    assert len(case._records(beam_side.uri, "train")) > 4000
    case.assert_same_examples(beam_side, launcher_side)


def test_movielens_slice_same_records_on_the_multi_process_runner(tmp_path, monkeypatch):
    """Beam's local runner with two worker processes (docs/scale.md's multi-process row): the workers import
    only the package's code (nothing of this test), and every split's records and both reports are the same."""
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    from tfx_pipeline.pipeline import with_setup_file

    case = _case()
    started = []
    start = worker_handlers.SubprocessSdkWorkerHandler.start_worker
    monkeypatch.setattr(worker_handlers.SubprocessSdkWorkerHandler, "start_worker",
                        lambda self: (started.append(self), start(self))[1])
    multi = with_setup_file(["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
                             "--direct_num_workers=2"])
    two = case.run_example_gen(str(tmp_path / "multi"), "", 50, beam_args=multi)
    assert len(started) == 2  # two worker processes ran the pipeline
    monkeypatch.undo()
    one = case.run_example_gen(str(tmp_path / "one"), "", 50)
    assert len(case._records(two.uri, "train")) > 4000
    case.assert_same_examples(two, one)
