"""`recsys run --distribution-strategy` reaches the two-tower Trainer's custom_config (built, not run)."""
import json

from apps import cli
from trainer import distribute


def test_the_cli_offers_the_trainer_strategies():
    assert cli.DISTRIBUTION_STRATEGIES == distribute.STRATEGIES


def test_the_flag_reaches_the_two_tower_trainer(tmp_path, monkeypatch):
    from tfx_pipeline import local_runner
    from tfx_pipeline.pipeline import create_pipeline

    configs = {}

    def build_only(layout, **kwargs):
        kwargs.pop("data_path", None), kwargs.pop("fingerprint", None), kwargs.pop("beam_pipeline_args", None)
        p = create_pipeline(pipeline_name="p", pipeline_root=str(tmp_path / "r"), metadata_path=str(tmp_path / "m"),
                            serving_dir=str(tmp_path / "s"), **kwargs)
        (trainer,) = [c for c in p.components if c.id == "Trainer"]
        configs[flag] = json.loads(trainer.exec_properties["custom_config"])["two_tower"]
        raise SystemExit(0)

    monkeypatch.setattr(local_runner, "run", build_only)
    for flag in ("none", "mirrored", "multiworker"):
        try:
            cli.main(["run", "--dataset", "movielens-100k", "--output", str(tmp_path / "out"), "--no-semantic-ids",
                      "--distribution-strategy", flag])
        except SystemExit:
            pass
    assert "distribution_strategy" not in configs["none"]  # the default keeps the cache key of earlier runs
    assert configs["mirrored"]["distribution_strategy"] == "mirrored"
    assert configs["multiworker"]["distribution_strategy"] == "multiworker"
