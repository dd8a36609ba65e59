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
    ({"dual_head": False}, {"ExposureBuilder"}, {"DualHeadTrainer", "PrefixDualHeadTrainer"}),
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
