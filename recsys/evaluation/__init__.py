"""Offline full-ranking evaluation and classic baselines (numpy/scipy only, no TensorFlow).

* :mod:`.metrics`   -- ``top_k``, ``ranking_metrics``, ``evaluate_scorer``.
* :mod:`.baselines` -- ``Popularity``, ``ItemCF``, ``ItemKNN``, ``UserMostFrequent``.
* :mod:`.report`    -- text/Markdown tables and the JSON report format.
"""
from recsys.evaluation.baselines import ItemCF, ItemKNN, Popularity, UserMostFrequent
from recsys.evaluation.metrics import (
    ENTROPY_LOG_BASE,
    METRIC_BASES,
    RankingAccumulator,
    count_skipped_users,
    evaluate_scorer,
    metric_names,
    ranking_metrics,
    top_k,
)
from recsys.evaluation.report import (
    ReportFormatError,
    format_table,
    markdown_table,
    read_report,
    validate_report,
    write_report,
)

__all__ = [
    "ENTROPY_LOG_BASE",
    "METRIC_BASES",
    "ItemCF",
    "ItemKNN",
    "Popularity",
    "RankingAccumulator",
    "ReportFormatError",
    "UserMostFrequent",
    "count_skipped_users",
    "evaluate_scorer",
    "format_table",
    "markdown_table",
    "metric_names",
    "ranking_metrics",
    "read_report",
    "top_k",
    "validate_report",
    "write_report",
]
