"""Ranker ablation on one split, in one run: what each part of the second stage buys.

Reads a ``recsys run``'s artifacts (the ExposureBuilder's exposures, the content
embeddings, the splits) and trains, each to convergence with early stopping on the
validation units' end-to-end NDCG@10 (test read once, at the end):

* ``DCN``: the pipeline's model: DCN-v2 cross network + deep tower over ids, content, category,
  Semantic-ID codes, item age, retrieval scores/ranks, popularity, repeat and category-affinity
  features and the long-term user vector;
* ``- Semantic IDs``, ``- item age``, ``- both``: the same without the Semantic-ID code embeddings / the age
  feature / either;
* ``DCN + TransAct``: plus the TransAct block (the recent actions, early fusion, time-window mask);
* ``- time-window mask``: the same without the mask;
* ``DeepFM + TransAct``: FM interaction in place of the cross network;
* ``- student source``: the pipeline's model on the exposures without the dual-head student's
  candidates (those only the student retrieved removed, its features zeroed): what the
  student adds as a candidate source (needs a run with ``--ranker-student always|served``);

beside (a) each candidate source's own top-10 and (b) the candidate union in retriever order,
on the same units. Every row: HR/Recall/NDCG/coverage/entropy@10, ``rare@10`` (share of
recommended items with <= 5 training interactions) and ``median_pop@10``; ranker rows also
AUC / GAUC / logloss of the CTR head and the CTCVR product, best epoch and wall time.
Rows are means over ``--seeds``. Writes ``metrics/<dataset>.ranker_ablation.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VARIANTS = {
    "DCN": {},  # the pipeline's model
    "- Semantic IDs": {"semantic_ids": False},
    "- item age": {"item_age": False},
    "- both": {"semantic_ids": False, "item_age": False},
    "DCN + TransAct": {"transact": True},
    "- time-window mask": {"transact": True, "time_window": 0},
    "DeepFM + TransAct": {"interaction": "deepfm", "transact": True},
    "- student source": {"drop_source": "student"},
}
DATA_KEYS = ("drop_source",)  # variant keys that change the data, not the RankerConfig


def without_source(d, source: str, pad: int):
    """``d`` (an ExposureSet; ``pad`` its padding item index) as the ExposureBuilder would have built it without ``source``.

    Candidates only ``source`` retrieved are removed, its columns zeroed, and the rest kept in
    the merged retriever order of the remaining sources (best rank in any source, ties in
    ``SOURCES`` order), as ``transform.exposures.merge`` orders them.
    """
    import dataclasses

    from transform import exposures as X

    width = len(X.SOURCE_FEATURES)
    others = [i for i, s in enumerate(X.SOURCES) if s != source]
    drop = X.SOURCES.index(source)
    u, n = d.items.shape
    feats = d.features.copy()
    feats[..., drop * width:(drop + 1) * width] = 0.0
    rrank = feats[..., [i * width + 2 for i in others]]                     # [U, N, S-1] 1/rank, 0 = absent
    found = rrank > 0
    keep = d.mask & found.any(-1)
    rank = np.where(found, np.rint(1.0 / np.where(found, rrank, 1.0)) - 1, np.inf)
    best = rank.min(-1)
    tie = np.argmax(rank == best[..., None], -1)                           # first source with the best rank
    items = np.full_like(d.items, pad)
    out = {k: np.zeros_like(getattr(d, k)) for k in ("features", "click", "conversion")}
    mask = np.zeros_like(d.mask)
    for r in range(u):
        cols = np.flatnonzero(keep[r])
        cols = cols[np.lexsort((tie[r, cols], best[r, cols]))]
        m = len(cols)
        items[r, :m] = d.items[r, cols]
        out["features"][r, :m] = feats[r, cols]
        out["click"][r, :m] = d.click[r, cols]
        out["conversion"][r, :m] = d.conversion[r, cols]
        mask[r, :m] = True
    return dataclasses.replace(d, items=items, mask=mask, **out)


def _inputs(root: str, dataset: str):
    from tfx_pipeline.artifacts import latest_output_uri
    from tfx_pipeline.layout import Layout

    layout = Layout(os.path.abspath(root), dataset)
    return (layout, latest_output_uri(layout, "SequenceExampleGen", "examples"),
            latest_output_uri(layout, "ExposureBuilder", "exposures"),
            latest_output_uri(layout, "ContentEmbedder", "embeddings"),
            latest_output_uri(layout, "SemanticIdTrainer", "model"))


def _round(d: dict) -> dict:
    return {k: round(float(v), 4) for k, v in d.items()}


HEAD_KEYS = ("ctr_AUC", "ctr_GAUC", "ctr_logloss", "ctcvr_AUC", "ctcvr_GAUC", "ctcvr_logloss")


def split_heads(results: dict) -> tuple[dict, dict]:
    """(list metrics per label and row, exposure metrics of the ranker heads per label and ranker row)."""
    lists = {label: {m: {k: v for k, v in r.items() if k not in HEAD_KEYS} for m, r in rows.items()}
             for label, rows in results.items()}
    heads = {label: {m: {k: r[k] for k in HEAD_KEYS} for m, r in rows.items() if "ctr_AUC" in r}
             for label, rows in results.items()}
    return lists, heads


def ranker_rows(results: dict, variants: list[str]) -> dict:
    """``"<variant> (<label>)"`` -> the variant's row: the trained rankers alone, validation beside test."""
    return {f"{v} ({label})": results[label][v] for v in variants for label in ("validation", "test")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", default="artifacts")
    ap.add_argument("--dataset", default="movielens-100k")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    ap.add_argument("--max-epochs", type=int, default=0, help="cap on epochs (default: the config's)")
    ap.add_argument("--config", default="{}", help="RankerConfig overrides (JSON) applied to every variant")
    ap.add_argument("--name", default="ranker_ablation", help="the report is metrics/<dataset>.<name>.json")
    args = ap.parse_args(argv)
    from trainer import ranker as R
    from trainer.ranker import metrics as M
    from transform import exposures as X

    from trainer.semantic_id_trainer import content_space_paths

    layout, examples, exposures, content, semantic = _inputs(args.output, args.dataset)
    t = R.catalogue_tables(examples, content, content_space_paths(semantic)[0])
    n = len(t.positions)
    base = R.RankerConfig()
    actions = base.actions
    train = R.read_exposures(exposures, "train", t.positions, actions)
    sets = {"validation": R.read_exposures(exposures, "eval", t.positions, actions),
            "test": R.read_exposures(exposures, "test", t.positions, actions)}
    results: dict = {label: {} for label in sets}
    for label, d in sets.items():
        for s in X.SOURCES:
            sc = M.source_scores(d.features, s)
            if np.isfinite(sc).any():
                results[label][f"{s} (candidates)"] = _round(M.list_metrics(
                    d.items, d.mask & np.isfinite(sc), d.features, sc, d.targets, n))
        results[label]["candidates (retriever order)"] = _round(M.list_metrics(
            d.items, d.mask, d.features, M.merged_order_scores(d.mask), d.targets, n))
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    data = {(): (train, sets)}
    for name in names:
        drop = VARIANTS[name].get("drop_source")
        if drop and (drop,) not in data:
            if not np.any(train.features[..., X.FEATURE_NAMES.index(f"{drop}_in")]):
                ap.error(f"variant {name!r}: these exposures have no {drop!r} candidates "
                         f"(build them with recsys run --ranker-student always)")
            data[(drop,)] = (without_source(train, drop, n), {k: without_source(v, drop, n) for k, v in sets.items()})
            for label, d in data[(drop,)][1].items():
                results[label][f"candidates without {drop} (retriever order)"] = _round(M.list_metrics(
                    d.items, d.mask, d.features, M.merged_order_scores(d.mask), d.targets, n))
    training = {}
    for name in names:
        runs = {label: [] for label in sets}
        info = []
        drop = VARIANTS[name].get("drop_source")
        v_train, v_sets = data[(drop,) if drop else ()]
        for seed in range(args.seeds):
            over = dict(json.loads(args.config), **{k: v for k, v in VARIANTS[name].items() if k not in DATA_KEYS},
                        seed=seed)
            if args.max_epochs:
                over["max_epochs"] = args.max_epochs
            config = R.RankerConfig.from_dict(over)
            t0 = time.time()
            res = R.train(v_train, v_sets["validation"], config, t.items,
                          log=lambda m: print(f"[{name} seed {seed}] {m}", flush=True))
            runs["validation"].append(res.best_val)
            runs["test"].append(R.evaluate(res.model, v_sets["test"], n, [res.cvr_power])[res.cvr_power])
            info.append({"best_epoch": res.best_epoch, "epochs": len(res.history), "cvr_power": res.cvr_power,
                         "seconds_per_epoch": round(res.seconds_per_epoch, 1), "wall_s": round(time.time() - t0, 1)})
        for label, rows in runs.items():
            mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
            if args.seeds > 1:
                mean["NDCG@10 sd"] = float(np.std([r["NDCG@10"] for r in rows]))
            results[label][name] = _round(mean)
        training[name] = info
        print(f"[ablation] {name}: test NDCG@10 {results['test'][name]['NDCG@10']:.4f} "
              f"(validation {results['validation'][name]['NDCG@10']:.4f})", flush=True)
    with open(os.path.join(exposures, X.STATS_FILE)) as f:
        stats = json.load(f)
    results, heads = split_heads(results)
    report = {"dataset": args.dataset, "seeds": args.seeds, "config": json.loads(args.config), "heads": heads,
              "rankers": ranker_rows(results, list(training)), "exposures": stats["splits"], "training": training,
              "command": "python benchmarks/ranker_ablation.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
              "results": results}
    path = layout.metrics_path.replace(".json", f".{args.name}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    from recsys.evaluation.report import format_table

    from recsys.evaluation.metrics import metric_names

    for label in ("validation", "test"):
        rows = {m: {k: r[k] for k in metric_names(10)} for m, r in results[label].items()}
        print(format_table(rows, f"{args.dataset} — ranker ablation, {label} units"))
    print(f"[ablation] wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
