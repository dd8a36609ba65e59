"""Evaluation reports: fixed-width text table, JSON file (write/read/validate), Markdown table.

JSON shape (``k`` is the common cut-off of all models)::

    {"dataset": str, "protocol": str,
     "models": {"<model>": {"HR@k": float, "Recall@k": float, "NDCG@k": float,
                            "coverage@k": float, "entropy@k": float,
                            (a sampled evaluation: "HR@k ci95", "Recall@k ci95", "NDCG@k ci95",
                             "users evaluated", "users in split")}, ...},
     ...extra top-level keys (e.g. "n_users")}
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

from recsys.evaluation.metrics import metric_names

REQUIRED_KEYS: tuple[str, ...] = ("dataset", "protocol", "models")

_NAME = re.compile(r"^(?P<base>[A-Za-z]+)@(?P<k>[1-9][0-9]*)$")


class ReportFormatError(ValueError):
    """A report (or a models mapping) does not have the expected shape."""


#: what a sampled evaluation (``--eval-users``: ``export.evaluate``) adds to a model's row: the 95% confidence
#: half-width of a metric ("NDCG@10 ci95"; coverage and entropy have none) and the sample's size
CI_SUFFIX = " ci95"
CI_METRICS: tuple[str, ...] = ("HR", "Recall", "NDCG")  # ``metrics.RankingAccumulator.confidence``'s
SAMPLE_KEYS: tuple[str, ...] = ("users evaluated", "users in split")


def sample_keys(keys: list[str], metrics: Mapping[str, float]) -> list[str]:
    """The sampled-evaluation keys ``metrics`` has, in canonical order: the half-widths of ``keys``' HR, Recall
    and NDCG, then ``SAMPLE_KEYS``."""
    ci = [f"{key}{CI_SUFFIX}" for key in keys if key.split("@")[0] in CI_METRICS]
    return [k for k in ci + list(SAMPLE_KEYS) if k in metrics]


def metric_keys(models: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Return the canonical metric key order shared by all models, e.g. ``metric_names(10)``.

    Raises:
      ReportFormatError: if ``models`` is empty, a model lacks/extends the five metrics,
        values are not finite numbers, or models use different ``k``.
    """
    if not isinstance(models, Mapping) or not models:
        raise ReportFormatError("'models' must be a non-empty mapping of model name -> metrics")
    expected: list[str] | None = None
    for name, metrics in models.items():
        if not isinstance(name, str) or not isinstance(metrics, Mapping):
            raise ReportFormatError(f"model {name!r}: expected str -> mapping of metrics")
        ks = {m.group("k") for m in map(_NAME.match, map(str, metrics)) if m}
        if len(ks) != 1:
            raise ReportFormatError(f"model {name!r}: metric names must be '<metric>@<k>' with one k; got {sorted(metrics)}")
        keys = metric_names(int(ks.pop()))
        if not set(keys) <= set(metrics) or set(metrics) - set(keys) - set(sample_keys(keys, metrics)):
            raise ReportFormatError(f"model {name!r}: expected metrics {keys} (and, from a sampled evaluation, "
                                    f"their '{CI_SUFFIX.strip()}' half-widths and {list(SAMPLE_KEYS)}); "
                                    f"got {sorted(metrics)}")
        if expected is not None and keys != expected:
            raise ReportFormatError(f"model {name!r}: uses {keys[0]} but other models use {expected[0]}")
        for key in keys + sample_keys(keys, metrics):
            value = metrics[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ReportFormatError(f"model {name!r}: {key} must be a finite number; got {value!r}")
        expected = keys
    assert expected is not None
    return expected


def format_table(models: Mapping[str, Mapping[str, float]], title: str) -> str:
    """Fixed-width text table: title line, header, one row per model, values with 4 decimals; a sampled
    evaluation's half-widths get a column each (blank for the models measured on every user)."""
    keys = metric_keys(models)
    shown = {k for m in models.values() for k in sample_keys(keys, m)}
    keys = keys + [k for k in (f"{key}{CI_SUFFIX}" for key in keys) if k in shown]
    name_w = max(len("model"), *(len(n) for n in models))
    col_w = [max(len(k), 10) for k in keys]
    header = "model".ljust(name_w) + "".join(f"  {k:>{w}}" for k, w in zip(keys, col_w))
    lines = [title, header, "-" * len(header)]
    for name, metrics in models.items():
        cells = "".join(f"  {float(metrics[k]):>{w}.4f}" if k in metrics else "  " + " " * w
                        for k, w in zip(keys, col_w))
        lines.append(name.ljust(name_w) + cells)
    return "\n".join(lines)


def write_report(
    path: str | os.PathLike[str],
    dataset: str,
    protocol: str,
    models: Mapping[str, Mapping[str, float]],
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Validate and write the report JSON to ``path`` (parent dirs are created).

    ``extra`` adds top-level keys (must not clash with ``dataset``/``protocol``/``models``).
    Metric values are written as floats in the canonical metric order.
    """
    keys = metric_keys(models)
    report: dict[str, Any] = {
        "dataset": dataset,
        "protocol": protocol,
        "models": {name: {k: float(m[k]) for k in keys + sample_keys(keys, m)} for name, m in models.items()},
    }
    clash = set(extra or {}) & set(REQUIRED_KEYS)
    if clash:
        raise ReportFormatError(f"extra keys clash with reserved keys: {sorted(clash)}")
    report.update(extra or {})
    validate_report(report)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, out)


def validate_report(report: Any, source: str = "report") -> dict[str, Any]:
    """Check the report shape (see module docstring); return it or raise ReportFormatError."""
    if not isinstance(report, dict):
        raise ReportFormatError(f"{source}: top level must be a JSON object; got {type(report).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in report]
    if missing:
        raise ReportFormatError(f"{source}: missing top-level keys {missing}")
    for key in ("dataset", "protocol"):
        if not isinstance(report[key], str):
            raise ReportFormatError(f"{source}: {key!r} must be a string; got {report[key]!r}")
    try:
        metric_keys(report["models"])
    except ReportFormatError as err:
        raise ReportFormatError(f"{source}: {err}") from None
    return report


def read_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and validate a report written by :func:`write_report`."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ReportFormatError(f"{path}: not valid JSON ({err})") from None
    return validate_report(report, source=str(path))


def markdown_table(report: Mapping[str, Any]) -> str:
    """GitHub-flavoured Markdown table of ``report["models"]`` (4 decimals), for the README."""
    report = validate_report(dict(report))
    models = report["models"]
    keys = metric_keys(models)
    lines = [
        "| Model | " + " | ".join(keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for name, metrics in models.items():
        cell = name.replace("|", "\\|")
        lines.append(f"| {cell} | " + " | ".join(f"{float(metrics[k]):.4f}" for k in keys) + " |")
    return "\n".join(lines)


__all__ = [
    "ReportFormatError",
    "format_table",
    "markdown_table",
    "metric_keys",
    "sample_keys",
    "read_report",
    "validate_report",
    "write_report",
]
