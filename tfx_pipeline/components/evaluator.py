"""RetrievalEvaluator: full-ranking metrics on validation and test, and the push gate.

Blessing rule: the exported two-tower model's validation NDCG@10 must beat the
popularity baseline's by ``min_lift`` (relative). Test metrics are computed and
stored but never used to decide anything.
"""

import json
import os

from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component

from recsys import features as F
from tfx_pipeline.components.index_builder import SERVING_SUBDIR
METRICS_FILE = "metrics.json"
GATE_MODEL = "two_tower"
GATE_BASELINE = "popularity"
GATE_METRIC = "NDCG@10"


def model_dirs(bruteforce_uri: str, scann_uri: str) -> dict[str, str]:
    return {GATE_MODEL: os.path.join(bruteforce_uri, SERVING_SUBDIR),
            "two_tower_scann": os.path.join(scann_uri, SERVING_SUBDIR)}


@component
def RetrievalEvaluator(  # noqa: N802
    examples: InputArtifact[tfx.types.standard_artifacts.Examples],
    bruteforce_model: InputArtifact[tfx.types.standard_artifacts.Model],
    scann_model: InputArtifact[tfx.types.standard_artifacts.Model],
    evaluation: OutputArtifact[tfx.types.standard_artifacts.ModelEvaluation],
    blessing: OutputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    min_lift: Parameter[float] = 0.0,
) -> None:
    out = evaluate_splits(examples, model_dirs(bruteforce_model.uri, scann_model.uri), evaluation.uri)
    val = out["validation"]["models"]
    ours, base = val[GATE_MODEL][GATE_METRIC], val[GATE_BASELINE][GATE_METRIC]
    blessed = ours > base * (1.0 + min_lift)
    verdict = (f"{GATE_MODEL} validation {GATE_METRIC} {ours:.4f} vs {GATE_BASELINE} {base:.4f} "
               f"(required lift {min_lift:+.0%}): {'BLESSED' if blessed else 'NOT blessed, nothing will be pushed'}")
    write_blessing(blessing, blessed, verdict)


def evaluate_splits(examples, dirs: dict[str, str], evaluation_uri: str, known: dict | None = None) -> dict:
    """Baselines + the SavedModels in ``dirs`` on validation and test; prints and writes ``METRICS_FILE``.

    ``known``: rows already measured by another evaluator ({label: {model: metrics}}), added beside ours.
    """
    from recsys.evaluate import evaluate_split
    from recsys.evaluation import report

    dataset = examples.get_string_custom_property("dataset")
    protocol = examples.get_string_custom_property("protocol")
    out = {}
    for split, label in ((F.EVAL, "validation"), (F.TEST, "test")):
        models = evaluate_split(examples.uri, split, protocol, dirs)
        for name, values in (known or {}).get(label, {}).items():
            models.setdefault(name, values)
        out[label] = {"dataset": dataset, "protocol": f"{protocol} ({label} split)", "models": models}
        print(report.format_table(models, f"{dataset} — {protocol}, {label} split, full ranking"), flush=True)
    with open(os.path.join(evaluation_uri, METRICS_FILE), "w") as f:
        json.dump(out, f, indent=1)
    return out


def write_blessing(artifact, blessed: bool, verdict: str) -> None:
    """Marks a ModelBlessing artifact (the property the Pusher reads, a readable file) and prints the verdict."""
    artifact.set_int_custom_property("blessed", int(blessed))
    artifact.set_string_custom_property("reason", verdict)
    with open(os.path.join(artifact.uri, "BLESSED" if blessed else "NOT_BLESSED"), "w") as f:
        f.write(verdict + "\n")
    print(f"[evaluate] {verdict}", flush=True)
