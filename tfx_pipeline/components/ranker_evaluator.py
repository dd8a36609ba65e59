"""RankerEvaluator: the ranked top-10 end to end on validation and test, and the ranker's push gate.

Rows (``export/ranker_evaluate.py``): every candidate source's own top-10, the union in
retriever order, the exported ranker; beside them the full-ranking table of the
retrieval evaluator (baselines, two-tower). Gate (``gate.Gate``): the ranker's
validation NDCG@10 must beat the best single candidate source's by ``min_lift``.
"""
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
    eval_users: Parameter[int] = 0,
) -> None:
    from export.ranker_evaluate import evaluate_exposures
    from transform import examples_io, fileio
    from transform.exposures import SOURCES, STATS_FILE  # noqa: F811

    dataset = examples.get_string_custom_property("dataset")
    protocol = examples.get_string_custom_property("protocol")
    positions = examples_io.read_catalog(examples.uri).positions()
    ranker_dir = os.path.join(ranker.uri, N.SERVING_SUBDIR)
    known = spine_rows(baseline_evaluation.uri)
    out = {}
    for split, label in ((F.EVAL, "validation"), (F.TEST, "test")):
        rows = {f"{name} (candidates)" if name in SOURCES else name: values
                for name, values in evaluate_exposures(exposures.uri, split, positions, ranker_dir,
                                                       sample_users=eval_users).items()}
        for name, values in known.get(label, {}).items():
            rows.setdefault(name, values)
        out[label] = {"dataset": dataset, "protocol": f"{protocol} ({label} split)", "models": rows}
        print(format_rows(rows, f"{dataset} — {protocol}, {label} split, ranked candidates"), flush=True)
    out["exposures"] = fileio.read_json(os.path.join(exposures.uri, STATS_FILE))
    fileio.write_json(os.path.join(evaluation.uri, METRICS_FILE), out, indent=1)
    validation = out["validation"]["models"]
    Gate(N.RANKER, gate_baseline(validation), min_lift).apply(validation, blessing)


def gate_baseline(validation: dict) -> str:
    """The ranker's bar: the candidate source with the best validation NDCG@10 (its own top-10)."""
    from transform.exposures import SOURCES

    sources = [f"{s} (candidates)" for s in SOURCES if f"{s} (candidates)" in validation]
    return max(sources, key=lambda s: validation[s][GATE_METRIC])


def format_rows(rows: dict, title: str) -> str:
    """The standard five-metric table, then the rare-item share, median popularity and the ranker's heads."""
    from recsys.evaluation import report
    from recsys.evaluation.metrics import metric_names

    keys = metric_names(10)
    lines = [report.format_table({m: {k: v[k] for k in keys} for m, v in rows.items()}, title)]
    for m, v in rows.items():
        if "rare@10" in v:
            heads = (f"; CTR AUC {v['ctr_AUC']:.4f} GAUC {v['ctr_GAUC']:.4f} logloss {v['ctr_logloss']:.4f}, "
                     f"CTCVR AUC {v['ctcvr_AUC']:.4f} GAUC {v['ctcvr_GAUC']:.4f}" if "ctr_AUC" in v else "")
            lines.append(f"  {m}: items with <= 5 training interactions {v['rare@10']:.1%}, median popularity "
                         f"{v['median_pop@10']:.0f}{heads}")
    return "\n".join(lines)
