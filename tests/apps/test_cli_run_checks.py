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


def test_run_options_build_a_pipeline_with_or_without_the_ranking_space(tmp_path, monkeypatch):
    """--no-graph and --no-semantic-ids drop the ranker with the graph (whose candidates it ranks), --no-ranker alone."""
    from apps import cli
    from tfx_pipeline import local_runner
    from tfx_pipeline.pipeline import create_pipeline

    built = {}

    def fake_run(layout, **kwargs):  # build (not run) the pipeline the CLI asks for, then stop
        kwargs.pop("data_path", None), kwargs.pop("fingerprint", None), kwargs.pop("beam_pipeline_args", None)
        p = create_pipeline(pipeline_name="p", pipeline_root=str(tmp_path / "r"), metadata_path=str(tmp_path / "m"),
                            serving_dir=str(tmp_path / "s"), **kwargs)
        built["ids"] = {c.id for c in p.components}
        raise SystemExit(0)

    monkeypatch.setattr(local_runner, "run", fake_run)
    for flags, has_ranker in (([], True), (["--no-ranker"], False), (["--no-graph"], False),
                              (["--no-semantic-ids"], False)):
        built.clear()
        try:
            cli.main(["run", "--dataset", "movielens-100k", "--output", str(tmp_path / "out"), *flags])
        except SystemExit:
            pass
        assert ("RankerTrainer" in built["ids"]) is has_ranker, flags


def test_sequential_is_an_opt_in_switch_of_run(tmp_path, monkeypatch, capsys):
    """`recsys run` leaves the sequence model out (its training would take `make run` past 20 minutes);
    --sequential adds its trainer, exporter, evaluator and pushers, --sequential-epochs caps its epochs."""
    import json

    from tfx_pipeline import local_runner
    from tfx_pipeline.pipeline import create_pipeline

    built = {}

    def fake_run(layout, **kwargs):  # build (not run) the pipeline the CLI asks for, then stop
        kwargs.pop("data_path", None), kwargs.pop("fingerprint", None), kwargs.pop("beam_pipeline_args", None)
        p = create_pipeline(pipeline_name="p", pipeline_root=str(tmp_path / "r"), metadata_path=str(tmp_path / "m"),
                            serving_dir=str(tmp_path / "s"), **kwargs)
        built["components"] = {c.id: c for c in p.components}
        raise SystemExit(0)

    monkeypatch.setattr(local_runner, "run", fake_run)
    for flags, has_sequential in (([], False), (["--sequential"], True),
                                  (["--sequential", "--sequential-epochs", "3"], True)):
        built.clear()
        try:
            cli.main(["run", "--dataset", "movielens-100k", "--output", str(tmp_path / "out"), *flags])
        except SystemExit:
            pass
        ids = set(built["components"])
        assert ({"SequentialTrainer", "SequentialExporter", "SequentialEvaluator", "PushSequentialRetrieval",
                 "PushSequentialRetrievalBruteForce"} <= ids) is has_sequential, flags
        assert "DualHeadTrainer" in ids
        if "3" in flags:
            config = json.loads(built["components"]["SequentialTrainer"].exec_properties["custom_config"])
            assert config["dual_head"]["epochs"] == 3 and config["dual_head"]["variant"] == "sasrec"
    assert cli.main(["run", "--dataset", "movielens-100k", "--output", str(tmp_path / "out"), "--sequential",
                     "--no-semantic-ids"]) == 2
    assert "--sequential needs the content space" in capsys.readouterr().err


def test_synthetic_sizes_and_eval_users_reach_the_pipeline(tmp_path, monkeypatch, capsys):
    """--users/--items/--events/--seed size --dataset synthetic (issue 14); --eval-users samples the evaluators."""
    import json

    from tfx_pipeline import local_runner

    seen = {}

    def fake_run(layout, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(local_runner, "run", fake_run)
    try:
        cli.main(["run", "--dataset", "synthetic", "--users", "300", "--items", "200", "--events", "6000",
                  "--seed", "2", "--eval-users", "50", "--ranker-users", "120", "--max-steps-per-epoch", "30",
                  "--output", str(tmp_path)])
    except SystemExit:
        pass
    assert seen["dataset_options"] == {"n_users": 300, "n_items": 200, "n_events": 6000, "seed": 2}
    assert seen["eval_users"] == 50
    capped = {"max_steps_per_epoch": 30}  # every trainer's epoch is its first 30 batches
    assert seen["graph_config"] == {"val_users": 50, **capped}  # the graph trainer's model selection samples the same way
    assert seen["dual_head_config"] == {"val_users": 50, **capped}  # and the dual head's and the sequence model's epochs
    assert seen["sequential_config"] == {"val_users": 50, **capped}
    assert seen["two_tower"] == {"val_users": 50, **capped}  # its per-epoch HR@10 too
    assert seen["ranking_config"] == {"window_users": 120, "model": capped}  # the ranker's training units of 120 users
    from recsys.data import dataset_fingerprint

    assert seen["fingerprint"] == dataset_fingerprint("synthetic", None, n_users=300, n_items=200, n_events=6000,
                                                      seed=2)
    json.dumps(seen["dataset_options"])  # the example generator's options_json


def test_bad_synthetic_sizes_stop_before_the_pipeline(tmp_path, capsys):
    for flags, message in ((["--dataset", "movielens-100k", "--items", "5"],
                            "--items size the generated data of --dataset synthetic"),
                           (["--dataset", "synthetic", "--items", "0"], "--items must be a positive integer; got 0"),
                           (["--dataset", "synthetic", "--events", "-3"], "--events must be a positive integer"),
                           (["--dataset", "synthetic", "--seed", "-1"], "--seed must be >= 0"),
                           (["--dataset", "synthetic", "--eval-users", "-1"], "--eval-users must be >= 0"),
                           (["--dataset", "synthetic", "--ranker-users", "-2"], "--ranker-users must be >= 0"),
                           (["--dataset", "synthetic", "--max-steps-per-epoch", "-1"],
                            "--max-steps-per-epoch must be >= 0")):
        assert cli.main(["run", *flags, "--output", str(tmp_path)]) == 2, flags
        err = capsys.readouterr().err
        assert err.startswith("recsys run: error: ") and message in err, (flags, err)
    assert not os.path.exists(tmp_path / "pipelines")
