"""GraphEvaluator: full-ranking metrics of ``graph_retrieval`` and its push gate.

The graph retriever is asked by user id (``recommend_user``: its vectors are
trained on the training edges), with the history masked on leave-one-out data
like every general model. Gate (``gate.Gate``): its validation NDCG@10 must beat
item-CF's by ``min_lift``. The spine's rows (baselines, two-tower) are shown beside.
"""
import os

from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component

from recsys import names as N
from tfx_pipeline.components.evaluator import evaluate_splits, spine_rows
from tfx_pipeline.components.gate import Gate

MODEL = N.GRAPH_RETRIEVAL
GATE_BASELINE = "item_cf"


@component
def GraphEvaluator(  # noqa: N802
    examples: InputArtifact[tfx.types.standard_artifacts.Examples],
    bruteforce_model: InputArtifact[tfx.types.standard_artifacts.Model],
    scann_model: InputArtifact[tfx.types.standard_artifacts.Model],
    baseline_evaluation: InputArtifact[tfx.types.standard_artifacts.ModelEvaluation],
    evaluation: OutputArtifact[tfx.types.standard_artifacts.ModelEvaluation],
    blessing: OutputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    min_lift: Parameter[float] = 0.0,
    eval_users: Parameter[int] = 0,  # > 0: the users sampled (the spine's RetrievalEvaluator must use the same)
) -> None:
    dirs = {MODEL: os.path.join(bruteforce_model.uri, N.SERVING_SUBDIR),
            f"{MODEL}_scann": os.path.join(scann_model.uri, N.SERVING_SUBDIR)}
    out = evaluate_splits(examples, dirs, evaluation.uri, user_models=tuple(dirs),
                          known=spine_rows(baseline_evaluation.uri), sample_users=eval_users)
    Gate(MODEL, GATE_BASELINE, min_lift).apply(out["validation"]["models"], blessing)
