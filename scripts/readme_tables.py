"""README tables are generated from committed metrics JSON, never typed by hand.

    python scripts/readme_tables.py --collect artifacts artifacts-instacart   # copy a run's metrics to docs/results/
    python scripts/readme_tables.py                                           # rewrite README.md's tables
    python scripts/readme_tables.py --check                                   # exit 1 if README.md is out of date

A table in README.md is a block between two markers::

    <!-- table: docs/results/movielens-100k.json models -->
    ...generated rows...
    <!-- /table -->

The first word after ``table:`` is a JSON file (relative to the repository), the
second a dotted key inside it (several files, comma-separated, give their rows in file order, a model
listed in several files, e.g. a shared baseline, once; it must have the same metrics in each, else an error) whose value maps model → metrics (``models``,
``validation``, ``results.test``; ``wide:<key>`` for rows with more metrics than the
report's five, e.g. ``long_tail@10``), or ``semantic_ids`` for Semantic-ID quality
reports (then the first word is a comma-separated list of them), or ``latency``
for the serving-latency report, or ``scann_sweep`` / ``scann_defaults`` / ``scann_raw`` for
``benchmarks/scann_scale.py``'s report, or ``pipeline_scale`` for ``benchmarks/pipeline_scale.py``'s per-component
table of a whole run. ``tests/test_readme_tables.py`` fails when a
table differs from its JSON.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join("docs", "results")
_BLOCK = re.compile(r"(<!-- table: (\S+) (\S+) -->\n)(.*?)(<!-- /table -->)", re.S)


def _rows(path: str, key: str) -> dict:
    if "," in path:  # several reports' rows in file order; a model listed again (a shared baseline) once
        rows: dict = {}
        first: dict = {}
        for one in path.split(","):
            for name, value in _rows(one, key).items():
                if name in rows and rows[name] != value:  # never drop a different row silently
                    raise ValueError(f"model {name!r} is in {first[name]} and {one} with different metrics: "
                                     f"give one of them another name, or use separate tables")
                rows.setdefault(name, value)
                first.setdefault(name, one)
        return rows
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        value = json.load(f)
    for part in key.split("."):
        if part not in value:
            raise KeyError(f"{path}: no key {key!r} (missing {part!r})")
        value = value[part]
    return value


def markdown(rows: dict) -> str:
    from recsys.evaluation.report import markdown_table

    return markdown_table({"dataset": "-", "protocol": "-", "models": rows}) + "\n"


_DATASETS = {"movielens-100k": "MovieLens-100K", "instacart": "Instacart"}
_SOURCES = {"text": "text", "structure": "category + co-purchase", "precomputed": "precomputed"}


def semantic_ids_table(paths: list[str]) -> str:
    """One row per ``metrics/<dataset>.semantic_ids.json`` (the Semantic-ID quality report)."""
    lines = ["| dataset (embeddings) | items | reconstruction cosine / MSE | codebook usage (perplexity) per level "
             "| collisions before → after | first-level category purity (random) | kNN recall@10 |",
             "|---|---:|---|---|---|---|---:|"]
    for path in paths:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            r = json.load(f)
        name = os.path.basename(path).split(".")[0]
        levels = ", ".join(f"{lv['usage']:.0%} ({lv['perplexity']:.0f})" for lv in r["levels"])
        lines.append(
            f"| {_DATASETS.get(name, name)} ({_SOURCES.get(r['source'], r['source'])}, {r['config']['input_dim']}-d) "
            f"| {r['num_items']:,} | {r['reconstruction_cosine']:.3f} / {r['reconstruction_mse']:.5f} | {levels} "
            f"| {r['collision_rate']:.2%} → {r['collision_rate_disambiguated']:.0%} "
            f"| {r['category_purity']:.3f} ({r['random_category_purity']:.3f}) | {r['knn_recall@10']:.3f} |")
    return "\n".join(lines) + "\n"


def latency_table(path: str) -> str:
    """The serving-latency report of ``benchmarks/serving_latency.py``: one row per request path."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        r = json.load(f)
    lines = ["| path | p50 ms | p95 ms | p50 ratio |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {v['p50_ms']:.3f} | {v['p95_ms']:.3f} | {v['ratio']:.2f} |" for name, v in r["paths"].items()]
    return "\n".join(lines) + "\n"


def wide_table(rows: dict) -> str:
    """model → metrics with any metric columns (e.g. ``long_tail@10``), in the first row's order, 4 decimals
    (integers as counts)."""
    cols = list(next(iter(rows.values())))
    lines = ["| Model | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    cell = lambda x: f"{x:,}" if isinstance(x, int) else f"{x:.4f}"  # noqa: E731  (counts stay counts)
    lines += [f"| {name} | " + " | ".join(cell(v[c]) for c in cols) + " |" for name, v in rows.items()]
    return "\n".join(lines) + "\n"


def _p(params: dict) -> str:
    return f"{params['num_leaves']:,} / {params['num_leaves_to_search']:,} / {params['num_reordering_candidates']:,}"


def scann_scale_table(path: str, key: str) -> str:
    """``benchmarks/scann_scale.py``'s report: ``scann_sweep`` (settings at 1M items; ``scann_sweep_<name>`` for the
    section ``--sweep-name sweep_<name>`` wrote), ``scann_defaults``
    (what ``default_scann_params`` picks per catalogue size) or ``scann_raw`` (bare layers, no SavedModel)."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        r = json.load(f)
    if key == "scann_raw":
        lines = ["| leaves / searched / reorder | bare brute force, batch / single ms | bare ScaNN k=10: batch ms (x), "
                 "single ms (x), recall@10 | bare ScaNN k=600: batch ms (x), single ms (x) | load avg after |",
                 "|---|---:|---:|---:|---|"]
        for row in r["raw"]["rows"]:
            k = [name for name in row if name.startswith("scann_k") and name != "scann_k10"][0]
            a, b = row["scann_k10"], row[k]
            lines.append(f"| {_p(row['params'])} | {row['bf']['batch_ms']:,.0f} / {row['bf']['single_p50_ms']:.1f} "
                         f"| {a['batch_ms']:.1f} ({a['speedup_batch']:.0f}x), {a['single_p50_ms']:.2f} "
                         f"({a['speedup_single']:.0f}x), {a['recall@10']:.4f} | {b['batch_ms']:.1f} ({b['speedup_batch']:.0f}x), "
                         f"{b['single_p50_ms']:.2f} ({b['speedup_single']:.0f}x) | {row['load_average_after'][0]:.1f} |")
        return "\n".join(lines) + "\n"
    head = ("| {first} | recall@10 | batch ms: ScaNN / brute force (x) | single p50 ms: ScaNN / brute force (x) "
            "| build s | index MB | SavedModel MB (twin) | load avg after |")
    sep = "|---|---:|---:|---:|---:|---:|---:|---:|"

    def line(first: str, row: dict, bf: dict) -> str:
        return (f"| {first} | {row['recall@10']:.4f} | {row['batch_ms']:.1f} / {row['brute_force_batch_ms']:,.1f} "
                f"({row['speedup_batch']:.1f}x) | {row['single_p50_ms']:.2f} / {row['brute_force_single_p50_ms']:.2f} "
                f"({row['speedup_single']:.1f}x) | {row['build_s']:.0f} | {row['index_state_mb']:.0f} "
                f"| {row['savedmodel_mb']:,.0f} ({bf['savedmodel_mb']:,.0f}) | {row['load_average_after'][0]:.1f} |")

    if key.startswith("scann_sweep"):  # scann_sweep, scann_sweep_max_exclude_100, ...: a sweep section
        s = r[key[len("scann_"):]]
        lines = [head.format(first="leaves / searched / reorder"), sep]
        lines += [line(_p(row["params"]), row, s["brute_force"]) for row in s["scann"]]
    elif key == "scann_defaults":
        lines = [head.format(first="items: default leaves / searched / reorder"), sep]
        for n, size in r["defaults"]["sizes"].items():
            (row,) = size["scann"]
            lines.append(line(f"{int(n):,}: {_p(row['params'])}", row, size["brute_force"]))
    else:
        raise KeyError(f"{path}: no ScaNN table {key!r}")
    return "\n".join(lines) + "\n"


def pipeline_scale_table(path: str) -> str:
    """``benchmarks/pipeline_scale.py``'s table (its ``table``, as ``--table`` prints it) of a run's result JSON."""
    import importlib.util

    code = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("pipeline_scale", os.path.join(code, "benchmarks", "pipeline_scale.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return module.table(json.load(f)) + "\n"


def _table(source: str, key: str) -> str:
    if key.startswith("wide:"):
        return wide_table(_rows(source, key[len("wide:"):]))
    if key == "latency":
        return latency_table(source)
    if key == "semantic_ids":
        return semantic_ids_table(source.split(","))
    if key.startswith("scann_"):
        return scann_scale_table(source, key)
    if key == "pipeline_scale":
        return pipeline_scale_table(source)
    return markdown(_rows(source, key))


def render(text: str) -> str:
    """``text`` with every marked table regenerated from its JSON."""
    return _BLOCK.sub(lambda m: m.group(1) + _table(m.group(2), m.group(3)) + m.group(5), text)


def collect(roots: list[str]) -> list[str]:
    """Copies ``<root>/metrics/*.json`` of finished runs into docs/results/; returns what was copied."""
    copied = []
    for root in roots:
        files = sorted(glob.glob(os.path.join(root, "metrics", "*.json")))
        if not files:
            raise FileNotFoundError(f"{root}/metrics/ holds no JSON: run `recsys run --output {root}` first")
        for path in files:
            dest = os.path.join(ROOT, RESULTS, os.path.basename(path))
            shutil.copyfile(path, dest)
            copied.append(os.path.relpath(dest, ROOT))
    return copied


def main(argv=None) -> int:
    sys.path.insert(0, ROOT)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--collect", nargs="+", metavar="ROOT", help="artifact roots whose metrics/ to copy first")
    p.add_argument("--check", action="store_true", help="only check; exit 1 when README.md is out of date")
    p.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    args = p.parse_args(argv)
    if args.collect:
        for path in collect(args.collect):
            print(f"[tables] {path}")
    with open(args.readme, encoding="utf-8") as f:
        text = f.read()
    new = render(text)
    n = len(_BLOCK.findall(text))
    if args.check:
        if new != text:
            print(f"[tables] {args.readme} is out of date: run python scripts/readme_tables.py", file=sys.stderr)
            return 1
        print(f"[tables] {n} tables up to date")
        return 0
    with open(args.readme, "w", encoding="utf-8") as f:
        f.write(new)
    print(f"[tables] {n} tables regenerated in {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
