"""`recsys run` says what is too small before any pipeline component runs (issue 13, tiny data)."""
import os

from apps import cli


def test_a_slice_smaller_than_one_training_batch_stops_before_the_pipeline(tmp_path, capsys):
    # the first 5 MovieLens users give a few hundred training pairs, fewer than one batch of 1,024
    assert cli.main(["run", "--dataset", "movielens-100k", "--max-users", "5", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recsys run: error: ") and "too little data to train" in err
    assert "batch size of at most" in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "pipelines")
