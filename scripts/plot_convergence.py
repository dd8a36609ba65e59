"""Convergence plots from the training logs of committed ablation reports (PNG, for docs/).

    python scripts/plot_convergence.py docs/results/movielens-100k.teacher_converged.json \
        --out docs/movielens-100k.convergence.png

Each report's ``training`` section holds, per variant, one log entry per epoch with the student's
validation ``val_HR@10`` / ``val_NDCG@10`` and, when the teacher was scored every epoch,
``val_teacher_HR@10`` / ``val_teacher_NDCG@10``. The figure has one panel per metric (HR@10,
NDCG@10); each variant is one colour, the student a solid line, the teacher a dashed one, and the
best epoch (the one the run kept) a marker. Nothing is plotted that is not in the reports.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

METRICS = ("HR@10", "NDCG@10")
HEADS = (("student", "val_{}", "-"), ("teacher", "val_teacher_{}", "--"))


def curves(reports: list[dict], variants: list[str] | None = None) -> list[dict]:
    """One entry per (report, variant, head) that has a logged curve: label, epochs, values per metric, best epoch."""
    out = []
    for report in reports:
        training = report.get("training")
        if not training:
            raise ValueError(f"report of {report.get('dataset', '?')!r} has no training logs")
        for name, run in training.items():
            if variants and name not in variants:
                continue
            log = run["log"]
            for head, key, style in HEADS:
                if not all(key.format(m) in e for e in log for m in METRICS):
                    continue
                out.append({"label": f"{name}: {head}", "variant": name, "style": style,
                            "epochs": [e["epoch"] for e in log], "best_epoch": run["best_epoch"],
                            "values": {m: [e[key.format(m)] for e in log] for m in METRICS}})
    if variants:
        missing = sorted(set(variants) - {c["variant"] for c in out})
        if missing:
            raise ValueError(f"no logged curve for variants {missing}")
    if not out:
        raise ValueError("no variant in these reports has a per-epoch validation log")
    return out


def plot(lines: list[dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(11, 4.2), dpi=110)
    colours = {}
    for line in lines:
        colour = colours.setdefault(line["variant"], f"C{len(colours)}")
        for ax, metric in zip(axes, METRICS):
            ys = line["values"][metric]
            ax.plot(line["epochs"], ys, line["style"], color=colour, label=line["label"])
            if line["best_epoch"] in line["epochs"]:
                i = line["epochs"].index(line["best_epoch"])
                ax.plot([line["best_epoch"]], [ys[i]], "o", color=colour)
    for ax, metric in zip(axes, METRICS):
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {metric}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reports", nargs="+", help="ablation report JSON files (docs/results/*.json)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--variants", default="", help="comma-separated variants to plot (default: every logged one)")
    p.add_argument("--title", default="", help="figure title (default: the datasets and 'validation per epoch')")
    args = p.parse_args(argv)
    reports = []
    for path in args.reports:
        with open(path, encoding="utf-8") as f:
            reports.append(json.load(f))
    variants = [v.strip() for v in args.variants.split(",") if v.strip()] or None
    try:
        lines = curves(reports, variants)
    except ValueError as e:
        p.error(str(e))
    title = args.title or ", ".join(sorted({r.get("dataset", "?") for r in reports})) + ": validation per epoch"
    plot(lines, args.out, title)
    print(f"[plot] {len(lines)} curves -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
