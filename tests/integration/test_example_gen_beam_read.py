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
