"""The pipeline's graph, built (not run): every input's producer is in the pipeline, per configuration."""
import pytest

from tfx_pipeline.pipeline import create_pipeline


def _build(**over):
    kwargs = dict(dataset="movielens-100k", pipeline_name="p", pipeline_root="/nowhere", metadata_path="/nowhere.db",
                  serving_dir="/serving")
    return create_pipeline(**dict(kwargs, **over))


@pytest.mark.parametrize("over, present, absent", [
    ({}, {"DualHeadExporter", "DualHeadEvaluator", "ExposureBuilder", "PushDualRetrieval"},
     {"PrefixDualHeadTrainer", "PushDualRetrievalForRanker"}),
    ({"ranking_config": {"student": "served"}}, {"PrefixDualHeadTrainer", "PrefixDualHeadExporter"},
     {"PushDualRetrievalForRanker"}),
    ({"ranking_config": {"student": "always"}}, {"PrefixDualHeadTrainer", "PushDualRetrievalForRanker",
                                                 "PushDualRetrievalBruteForceForRanker"}, set()),
    ({"dual_head": False}, {"ExposureBuilder"}, {"DualHeadTrainer", "PrefixDualHeadTrainer", "SequentialTrainer"}),
    ({"sequential": True}, {"DualHeadTrainer", "PushDualRetrieval", "SequentialTrainer", "SequentialExporter",
                            "SequentialEvaluator", "PushSequentialRetrieval", "PushSequentialRetrievalBruteForce"},
     set()),
    ({"sequential": True, "dual_head": False}, {"SequentialTrainer", "PushSequentialRetrieval"}, {"DualHeadTrainer"}),
])
def test_every_producer_is_in_the_pipeline(over, present, absent):
    pipeline = _build(**over)
    ids = {c.id for c in pipeline.components}
    assert present <= ids and not absent & ids, (present - ids, absent & ids)
    for c in pipeline.components:
        missing = {u.id for u in c.upstream_nodes} - ids
        assert not missing, f"{c.id} reads outputs of {missing}, which the pipeline does not run"


def test_student_modes_are_checked():
    with pytest.raises(ValueError, match="must be one of"):
        _build(ranking_config={"student": "sometimes"})
    with pytest.raises(ValueError, match="needs the dual head"):
        _build(dual_head=False, ranking_config={"student": "always"})


def _component(pipeline, component_id):
    return next(c for c in pipeline.components if c.id == component_id)


def test_the_sequence_model_is_the_dual_heads_components_with_the_sasrec_preset():
    """SequentialTrainer/Exporter/Evaluator are the dual head's components (not copies) run with the
    SASRec preset, exported and gated as sequential_retrieval, pushed (ScaNN + twin) on its own blessing."""
    import json

    from tfx_pipeline.components.dual_head_evaluator import DualHeadEvaluator
    from tfx_pipeline.components.dual_head_exporter import DualHeadExporter
    from trainer.dual_head import SASREC

    pipeline = _build(sequential=True, sequential_config={"epochs": 7, "d_model": 32})
    trainer, dual_trainer = _component(pipeline, "SequentialTrainer"), _component(pipeline, "DualHeadTrainer")
    assert trainer.exec_properties["run_fn"] == dual_trainer.exec_properties["run_fn"] == "trainer.dual_head.run_fn"
    config = json.loads(trainer.exec_properties["custom_config"])["dual_head"]
    assert {k: config[k] for k in SASREC} == SASREC and config["epochs"] == 7 and config["d_model"] == 32
    assert config["early_stopping_patience"] >= 1  # trained to its best validation epoch, epochs a ceiling
    exporter, evaluator = _component(pipeline, "SequentialExporter"), _component(pipeline, "SequentialEvaluator")
    assert type(exporter) is type(_component(pipeline, "DualHeadExporter")) is DualHeadExporter
    assert type(evaluator) is type(_component(pipeline, "DualHeadEvaluator")) is DualHeadEvaluator
    assert exporter.exec_properties["model_name"] == "sequential_retrieval"
    assert exporter.exec_properties["generative"] == 0
    assert evaluator.exec_properties["student"] == "sequential_retrieval"
    assert evaluator.inputs["baseline_evaluation"].producer_component_id == "RetrievalEvaluator"
    # the dual head's own instances keep their defaults (and so their cached executions)
    assert "model_name" not in _component(pipeline, "DualHeadExporter").exec_properties
    assert "student" not in _component(pipeline, "DualHeadEvaluator").exec_properties
    for push_id, output in (("PushSequentialRetrieval", "scann_model"),
                            ("PushSequentialRetrievalBruteForce", "bruteforce_model")):
        push = _component(pipeline, push_id)
        assert (push.inputs["model"].producer_component_id, push.inputs["model"].output_key) == (
            "SequentialExporter", output)
        assert (push.inputs["model_blessing"].producer_component_id, push.inputs["model_blessing"].output_key) == (
            "SequentialEvaluator", "retrieval_blessing")
    assert not any(c.id.startswith("PushSequential") and "Generative" in c.id for c in pipeline.components)


def test_sequential_config_is_checked_when_the_pipeline_is_built():
    with pytest.raises(ValueError, match="another model"):
        _build(sequential=True, sequential_config={"variant": "dual_head"})
    with pytest.raises(ValueError, match="Unknown dual-head hyperparameters"):
        _build(sequential=True, sequential_config={"epoch": 3})
    with pytest.raises(ValueError, match="need the content space"):
        _build(semantic_ids=False, dual_head=False, graph=False, ranking=False, sequential=True)
    _build(semantic_ids=False, dual_head=False, graph=False, ranking=False)  # the default has no sequence model


def test_the_dual_head_trains_with_the_pipeline_defaults_under_the_callers_settings():
    import json

    from tfx_pipeline.pipeline import DUAL_HEAD_DEFAULTS

    pipeline = _build(dual_head_config={"epochs": 3, "distill_weight": 0.5}, ranking_config={"student": "served"})
    for trainer_id in ("DualHeadTrainer", "PrefixDualHeadTrainer"):
        config = json.loads(_component(pipeline, trainer_id).exec_properties["custom_config"])["dual_head"]
        assert config["epochs"] == 3 and config["distill_weight"] == 0.5  # the caller's settings win
        assert {k: config[k] for k in DUAL_HEAD_DEFAULTS if k != "distill_weight"} == {
            k: v for k, v in DUAL_HEAD_DEFAULTS.items() if k != "distill_weight"}
    default = json.loads(_component(_build(), "DualHeadTrainer").exec_properties["custom_config"])["dual_head"]
    assert {k: default[k] for k in DUAL_HEAD_DEFAULTS} == DUAL_HEAD_DEFAULTS and default["generative_weight"] > 0
    with pytest.raises(ValueError, match="Unknown dual-head hyperparameters"):
        _build(dual_head_config={"epoch": 3})


def test_dual_head_val_users_reaches_the_trainers_and_is_absent_by_default():
    """Issue 14: ``val_users`` (``recsys run --eval-users``) reaches the dual-head and sequence trainers' configs;
    unset, the configs have no such key, so runs without a sample keep their cache keys."""
    import json

    def configs(pipeline):
        return {c.id: json.loads(c.exec_properties["custom_config"])["dual_head"] for c in pipeline.components
                if c.id in ("DualHeadTrainer", "SequentialTrainer", "PrefixDualHeadTrainer")}

    plain = configs(_build(sequential=True, ranking_config={"student": "served"}))
    assert set(plain) == {"DualHeadTrainer", "SequentialTrainer", "PrefixDualHeadTrainer"}
    assert not any("val_users" in c for c in plain.values())
    sampled = configs(_build(sequential=True, ranking_config={"student": "served"},
                             dual_head_config={"val_users": 30}, sequential_config={"val_users": 30}))
    assert {k: c["val_users"] for k, c in sampled.items()} == {"DualHeadTrainer": 30, "SequentialTrainer": 30,
                                                               "PrefixDualHeadTrainer": 30}
    assert {k: {f: v for f, v in c.items() if f != "val_users"} for k, c in sampled.items()} == plain


def test_eval_users_reaches_the_ranker_trainer_and_evaluator_and_is_absent_by_default():
    """Issue 14: ``eval_users`` samples the ranker's per-epoch validation (``val_users``) and the RankerEvaluator's
    units; unset, neither has the key, so runs without a sample keep their cache keys."""
    import json

    plain = _build(ranking_config={"model": {"negatives": 20}})
    sampled = _build(ranking_config={"model": {"negatives": 20}}, eval_users=500)
    assert json.loads(_component(plain, "RankerTrainer").exec_properties["config_json"]) == {"negatives": 20}
    assert json.loads(_component(sampled, "RankerTrainer").exec_properties["config_json"]) == {
        "negatives": 20, "val_users": 500}
    assert "eval_users" not in _component(plain, "RankerEvaluator").exec_properties
    assert _component(sampled, "RankerEvaluator").exec_properties["eval_users"] == 500


def test_exposure_samples_reach_the_builder_and_are_absent_by_default():
    """Issue 14: ``eval_users`` builds the validation/test exposures of the evaluated users only, and
    ``ranking_config["window_users"]`` the ranker's training units of that many users; unset, the builder has
    neither key (its cache key as before)."""
    import pytest

    plain = _component(_build(ranking_config={}), "ExposureBuilder").exec_properties
    assert "eval_users" not in plain and "window_users" not in plain
    both = _component(_build(ranking_config={"window_users": 2000}, eval_users=500), "ExposureBuilder").exec_properties
    assert (both["eval_users"], both["window_users"]) == (500, 2000)
    window = _component(_build(ranking_config={"window_users": 7}), "ExposureBuilder").exec_properties
    assert window["window_users"] == 7 and "eval_users" not in window
    with pytest.raises(ValueError, match="window_users must be >= 0"):
        _build(ranking_config={"window_users": -1})
