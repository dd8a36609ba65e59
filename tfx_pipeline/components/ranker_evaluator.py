"""RankerEvaluator: the ranked top-10 end to end on validation and test, and the ranker's push gate.

Rows (``export/ranker_evaluate.py``): every candidate source's own top-10, the union in
retriever order, the exported ranker; beside them the full-ranking table of the
retrieval evaluator (baselines, two-tower). Gate (``gate.Gate``): the ranker's
validation NDCG@10 must beat the best single candidate source's by ``min_lift``.
"""
import json
import os

from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component

from recsys import features as F
from recsys import names as N
from tfx_pipeline.components.evaluator import METRICS_FILE, spine_rows
from tfx_pipeline.components.gate import GATE_METRIC, Gate


@component
def RankerEvaluator(  # noqa: N802
    examples: InputArtifact[tfx.types.standard_artifacts.Examples],
    exposures: InputArtifact[tfx.types.standard_artifacts.Examples],
    ranker: InputArtifact[tfx.types.standard_artifacts.Model],
    baseline_evaluation: InputArtifact[tfx.types.standard_artifacts.ModelEvaluation],
    evaluation: OutputArtifact[tfx.types.standard_artifacts.ModelEvaluation],
    blessing: OutputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    min_lift: Parameter[float] = 0.0,
) -> None:
    from export.ranker_evaluate import evaluate_exposures
    from recsys.evaluation import report
    from transform import examples_io
    from transform.exposures import SOURCES, STATS_FILE

    dataset = examples.get_string_custom_property("dataset")
    protocol = examples.get_string_custom_property("protocol")
    positions = examples_io.read_catalog(examples.uri).positions()
    ranker_dir = os.path.join(ranker.uri, N.SERVING_SUBDIR)
    known = spine_rows(baseline_evaluation.uri)
    out = {}
    for split, label in ((F.EVAL, "validation"), (F.TEST, "test")):
        rows = {f"{name} (candidates)" if name in SOURCES else name: values
                for name, values in evaluate_exposures(exposures.uri, split, positions, ranker_dir).items()}
        for name, values in known.get(label, {}).items():
            rows.setdefault(name, values)
        out[label] = {"dataset": dataset, "protocol": f"{protocol} ({label} split)", "models": rows}
        print(report.format_table(rows, f"{dataset} — {protocol}, {label} split, ranked candidates"), flush=True)
    with open(os.path.join(exposures.uri, STATS_FILE)) as f:
        out["exposures"] = json.load(f)
    with open(os.path.join(evaluation.uri, METRICS_FILE), "w") as f:
        json.dump(out, f, indent=1)
    validation = out["validation"]["models"]
    sources = [f"{s} (candidates)" for s in SOURCES if f"{s} (candidates)" in validation]
    best = max(sources, key=lambda s: validation[s][GATE_METRIC])
    Gate(N.RANKER, best, min_lift).apply(validation, blessing)
