"""RetrievalEvaluator: full-ranking metrics on validation and test, and the two-tower's push gate.

Blessing rule (``gate.Gate``): the exported two-tower model's validation NDCG@10
must beat the popularity baseline's by ``min_lift`` (relative). Test metrics are
computed and stored but never used to decide anything.
"""

import os

from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component

from recsys import features as F
from recsys import names as N
from transform import fileio
from tfx_pipeline.components.gate import Gate

METRICS_FILE = "metrics.json"
GATE_MODEL = "two_tower"
GATE_BASELINE = "popularity"


def model_dirs(bruteforce_uri: str, scann_uri: str) -> dict[str, str]:
    return {GATE_MODEL: os.path.join(bruteforce_uri, N.SERVING_SUBDIR),
            "two_tower_scann": os.path.join(scann_uri, N.SERVING_SUBDIR)}


@component
def RetrievalEvaluator(  # noqa: N802
    examples: InputArtifact[tfx.types.standard_artifacts.Examples],
    bruteforce_model: InputArtifact[tfx.types.standard_artifacts.Model],
    scann_model: InputArtifact[tfx.types.standard_artifacts.Model],
    evaluation: OutputArtifact[tfx.types.standard_artifacts.ModelEvaluation],
    blessing: OutputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    min_lift: Parameter[float] = 0.0,
    eval_users: Parameter[int] = 0,
) -> None:
    out = evaluate_splits(examples, model_dirs(bruteforce_model.uri, scann_model.uri), evaluation.uri,
                          sample_users=eval_users)
    Gate(GATE_MODEL, GATE_BASELINE, min_lift).apply(out["validation"]["models"], blessing)


def spine_rows(evaluation_uri: str) -> dict:
    """{label: {model: metrics}} of the RetrievalEvaluator's table (baselines, two-tower), to show beside others."""
    spine = fileio.read_json(os.path.join(evaluation_uri, METRICS_FILE))
    return {label: spine[label]["models"] for label in ("validation", "test")}


def evaluate_splits(examples, dirs: dict[str, str], evaluation_uri: str, known: dict | None = None,
                    user_models: tuple[str, ...] = (), sample_users: int = 0,
                    batch_sizes: dict[str, int] | None = None) -> dict:
    """Baselines + the SavedModels in ``dirs`` on validation and test; prints and writes ``METRICS_FILE``.

    ``known``: rows already measured by another evaluator ({label: {model: metrics}}), added beside ours;
    the baselines are then not measured again (the spine's are on the same splits, from the same
    training interactions). ``user_models``: models asked by user id (``export.evaluate.evaluate_split``).
    ``sample_users`` > 0: that many users of each split, the same ones in every evaluator (``evaluate_split``; the
    pipeline's ``eval_users``), with 95% confidence half-widths in the rows. ``batch_sizes``: requests per call
    for some models (``export.evaluate.evaluate_split``).
    """
    from export.evaluate import BASELINES, evaluate_split
    from recsys.evaluation import report
    from transform import examples_io

    dataset = examples.get_string_custom_property("dataset")
    protocol = examples.get_string_custom_property("protocol")
    baselines = known is None
    training = examples_io.training_interactions(examples.uri) if baselines else None  # read once, both splits
    out = {}
    for split, label in ((F.EVAL, "validation"), (F.TEST, "test")):
        models = evaluate_split(examples.uri, split, protocol, dirs, user_models=user_models, baselines=baselines,
                                training=training, sample_users=sample_users, batch_sizes=batch_sizes)
        shown = (known or {}).get(label, {})
        # the table's order as when every evaluator measured its baselines: baselines, ours, the rest shown
        models = {**{n: shown[n] for n in BASELINES if n in shown and n not in models}, **models}
        for name, values in shown.items():
            models.setdefault(name, values)
        out[label] = {"dataset": dataset, "protocol": f"{protocol} ({label} split)", "models": models}
        print(report.format_table(models, f"{dataset} — {protocol}, {label} split, full ranking"), flush=True)
    fileio.write_json(os.path.join(evaluation_uri, METRICS_FILE), out, indent=1)
    return out
