"""Graph retriever ablation on one split, in one run: what each part of the design buys.

Reads a ``recsys run``'s artifacts (the GraphBuilder's graph, the content
embeddings, the splits) and trains, each to convergence with early stopping on
validation NDCG@10 (test read once, at the end):

* ``lightgcn``: LightGCN on the same graph (behaviours collapsed), BPR, RecBole's defaults;
* ``ultragcn multi-behaviour``: the pipeline's model (every behaviour, purchase-aligned score,
  semantic initialisation, item–item constraint) without repeat-count edge weights;
* ``- auxiliary behaviours``: purchase edges only;
* ``- target alignment``: every behaviour scored by the same dot product (no learned relation), so the
  served score is "any interaction" rather than the purchase preference;
* ``- semantic init``: free random embeddings, no content map;
* ``+ repeat-count edge weights``: an edge weighs ``1 + log(events on it)`` (repeat purchases): the
  pipeline's default (on MovieLens every edge has one event, so it equals the row above);
* ``+ session shift``: the full model (and LightGCN) with each row's last ``session_items`` history
  items' query vectors (their own vectors, their audience's, or a blend) mixed into the user vector,
  rule and weight chosen on validation;

beside the item-CF / ItemKNN / popularity baselines of the same rows. Each variant is trained with
``--seeds`` seeds (default 3): rows are means, ``NDCG@10 sd`` the standard deviation over seeds
(943 MovieLens test users put one run's NDCG@10 within about +-0.007 of its expectation). Every row has
HR/Recall/NDCG/coverage/entropy@10 and the **long-tail share** (recommended slots outside
the 20% most popular training items), full ranking, history masked on leave-one-out
data. A **cold-item slice** (test targets with <= 5 training interactions: the rows that have one,
their targets cut to the cold ones) compares semantic init on and off. A **purchase-target slice** (when
some targets are not purchases, as on MovieLens where a rating < 4 is a click: the rows with a purchase
target, targets cut to those) shows what target alignment is for. Training cost: seconds per epoch and to convergence,
UltraGCN over LightGCN printed as ratios. Writes ``metrics/<dataset>.graph_ablation.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

COLD_MAX = 5
BASE = {"count_weight": 0.0}  # the pipeline's GraphConfig defaults without repeat-count edge weights
VARIANTS = {
    # RecBole 1.2.1's LightGCN: free embeddings (xavier-scale init), 64-d, 2 layers, reg 1e-5, lr 1e-3, batch
    # 2048; its BPR edges carry the same recency weights as the UltraGCN-style model's
    "lightgcn": dict(variant="lightgcn", semantic_init=False, init_std=0.03, embedding_dim=64, l2=1e-5, count_weight=0.0,
                     batch_size=2048, learning_rate=1e-3, eval_every=5, patience=6, max_epochs=400),
    "ultragcn multi-behaviour": BASE,
    "- auxiliary behaviours": dict(BASE, behaviours=["purchase"]),
    "- target alignment": dict(BASE, target_aligned=False),
    "- semantic init": dict(BASE, semantic_init=False),
    "+ repeat-count edge weights": {},  # = the pipeline's defaults
}
SESSION = "+ session shift"


def _inputs(root: str, dataset: str):
    from tfx_pipeline.artifacts import latest_output_uri
    from tfx_pipeline.layout import Layout

    layout = Layout(os.path.abspath(root), dataset)
    return (layout, latest_output_uri(layout, "SequenceExampleGen", "examples"),
            latest_output_uri(layout, "GraphBuilder", "graph"), latest_output_uri(layout, "ContentEmbedder", "embeddings"))


def _row(top: np.ndarray, rows, n: int, tail: np.ndarray) -> dict:
    from recsys.evaluation import metrics

    out = metrics.ranking_metrics(top, rows.targets, n, k=10)
    out["long_tail@10"] = metrics.long_tail_share(top, tail)
    return {k: round(float(v), 4) for k, v in out.items()}


def _cold_slice(rows, train_counts: np.ndarray):
    from trainer.graph import EvalRows

    """Rows with a cold target (<= COLD_MAX training interactions), their targets cut to the cold ones."""
    cold = [t[train_counts[t] <= COLD_MAX] for t in rows.targets]
    keep = [r for r, t in enumerate(cold) if len(t)]
    return keep, EvalRows(rows.users[keep], [cold[r] for r in keep], [rows.histories[r] for r in keep],
                          [rows.user_ids[r] for r in keep])


def _purchase_slice(rows):
    """Rows with a purchase target, their targets cut to the purchases (None when every target is a purchase)."""
    from recsys import features as F
    from trainer.graph import EvalRows

    bought = [b == F.TARGET_BEHAVIOUR for b in rows.target_behaviours]
    if all(m.all() for m in bought):
        return None
    keep = [r for r, m in enumerate(bought) if m.any()]
    return EvalRows(rows.users[keep], [rows.targets[r][bought[r]] for r in keep], [rows.histories[r] for r in keep],
                    [rows.user_ids[r] for r in keep], [rows.target_behaviours[r][bought[r]] for r in keep])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="artifacts", help="artifact root of a `recsys run` (default: artifacts)")
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    p.add_argument("--seeds", type=int, default=3, help="seeds per variant; rows are means (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a GraphConfig field for every variant (JSON value)")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from recsys import features as F
    from recsys.evaluation import baselines, metrics
    from trainer import graph as G
    from trainer.graph.training import scores_topk, session_vectors

    start = time.time()
    layout, examples, graph_uri, embeddings = _inputs(args.output, args.dataset)
    with open(os.path.join(examples, "protocol.txt")) as f:
        exclude = f.read().strip() == "leave_one_out"
    content = G.catalogue_content(examples, embeddings)
    overrides = dict(kv.split("=", 1) for kv in args.set)
    overrides = {k: json.loads(v) for k, v in overrides.items()}
    full = G.load_graph(graph_uri, examples, tuple(F.INTERACTION_TYPES), G.GraphConfig().neighbours, content)
    val, test = G.load_eval_rows(examples, F.EVAL, full), G.load_eval_rows(examples, F.TEST, full)
    n = full.num_items
    # training interactions per item (any behaviour) -> head / long tail and the cold slice
    train_counts = np.bincount(full.edge_item, weights=full.edge_count, minlength=n)
    tail = metrics.long_tail_items(train_counts)
    cold_rows, cold = _cold_slice(test, train_counts)
    purchase = _purchase_slice(test)
    slices = [("validation", val), ("test", test), ("cold_test", cold)] + ([("purchase_test", purchase)] if purchase else [])
    print(f"[graph-ablation] {args.dataset}: {len(full.edge_user):,} edges, {full.num_users:,} users, {n:,} items; "
          f"test rows {len(test.users):,} (cold-target slice: {len(cold.users):,} rows with <= {COLD_MAX} training "
          f"interactions{f'; purchase-target slice: {len(purchase.users):,} rows' if purchase else ''})", flush=True)

    results: dict[str, dict] = {label: {} for label, _ in slices}
    training: dict[str, dict] = {}
    # the baselines exactly as the pipeline's evaluator fits them (export.evaluate): every training
    # interaction, repeats included
    from transform import examples_io

    pos = {item: i for i, item in enumerate(full.item_ids.tolist())}
    train_hist = [np.array([pos[i] for i in h if i in pos], np.int64)
                  for h in examples_io.training_interactions(examples).values()]
    scorers = [("popularity", baselines.Popularity()), ("item_cf", baselines.ItemCF()),
               ("item_knn", baselines.ItemKNN())]
    if not exclude:  # basket data: the user's own most frequent items, as in the pipeline's table
        scorers.append(("user_most_frequent", baselines.UserMostFrequent()))
    for name, scorer in scorers:
        scorer.fit(train_hist, n)
        for label, rows in slices:
            top = np.concatenate([metrics.top_k(scorer.score(rows.users[s:s + 512], rows.histories[s:s + 512]), 10,
                                                rows.histories[s:s + 512] if exclude else None)
                                  for s in range(0, len(rows.users), 512)])
            results[label][name] = dict(_row(top, rows, n, tail), **{"NDCG@10 sd": 0.0})
        print(f"[graph-ablation] {name}: test NDCG@10 {results['test'][name]['NDCG@10']:.4f}", flush=True)

    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(chosen) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; known: {list(VARIANTS)}")
    seeds = list(range(args.seeds))
    per_seed: dict[str, dict[str, list]] = {}  # row -> split -> [metrics per seed]
    full_name = "ultragcn multi-behaviour"

    def add(row: str, label: str, metrics_: dict) -> None:
        per_seed.setdefault(row, {}).setdefault(label, []).append(metrics_)

    for name in chosen:
        runs = []
        for seed in seeds:
            cfg = G.GraphConfig.from_dict({**overrides, **VARIANTS[name], "seed": seed})
            data = full.only(cfg.behaviours) if set(cfg.behaviours) != set(full.behaviours) else full
            data = data if cfg.semantic_init else dataclasses.replace(data, content=None)
            print(f"[graph-ablation] training {name!r} (seed {seed}): {len(data.edge_user):,} edges", flush=True)
            r = G.train(data, val, cfg, exclude, log=lambda m: print(m, flush=True), name=name)
            for label, rows in slices:
                add(name, label, _row(scores_topk(r.users, r.items, rows, exclude), rows, n, tail))
            if name in (full_name, "lightgcn"):  # + session shift, at the weight chosen on validation
                shifted = SESSION if name == full_name else f"lightgcn {SESSION}"
                for label, rows in slices:
                    q = session_vectors(r.users, r.query_items, rows, r.session_weight, cfg.session_items)
                    add(shifted, label, _row(scores_topk(r.users, r.items, rows, exclude, user_vectors=q), rows, n,
                                             tail))
            runs.append({"seed": seed, "best_epoch": r.best_epoch, "epochs_run": r.log[-1]["epoch"],
                         "seconds_per_epoch": round(r.seconds_per_epoch, 3), "wall_s": round(r.wall_s, 1),
                         "seconds_to_best": round(r.seconds_per_epoch * r.best_epoch, 1),
                         "session_weight": r.session_weight, "query_self_weight": r.query_self_weight,
                         "session_validation_ndcg": r.session_val,
                         "test_NDCG@10": per_seed[name]["test"][-1]["NDCG@10"], "log": r.log})
            print(f"[graph-ablation] {name} (seed {seed}): best epoch {r.best_epoch}, test NDCG@10 "
                  f"{per_seed[name]['test'][-1]['NDCG@10']:.4f}, {r.seconds_per_epoch:.2f} s/epoch", flush=True)
        training[name] = {"config": {**overrides, **VARIANTS[name]}, "runs": runs,
                          **{k: round(float(np.mean([x[k] for x in runs])), 3)
                             for k in ("best_epoch", "seconds_per_epoch", "seconds_to_best", "wall_s")}}
    for row, by_label in per_seed.items():
        for label, values in by_label.items():
            mean = {k: round(float(np.mean([v[k] for v in values])), 4) for k in values[0]}
            mean["NDCG@10 sd"] = round(float(np.std([v["NDCG@10"] for v in values])), 4)
            results[label][row] = mean
    ratios = {}
    if "lightgcn" in training and full_name in training:
        lg, ug = training["lightgcn"], training[full_name]
        ratios = {"lightgcn_over_ultragcn_seconds_per_epoch": round(lg["seconds_per_epoch"] / ug["seconds_per_epoch"], 2),
                  "lightgcn_over_ultragcn_seconds_to_best": round(lg["seconds_to_best"] / max(ug["seconds_to_best"], 1e-9), 2)}
        print(f"[graph-ablation] LightGCN / UltraGCN: {ratios['lightgcn_over_ultragcn_seconds_per_epoch']}x seconds "
              f"per epoch, {ratios['lightgcn_over_ultragcn_seconds_to_best']}x seconds to the best epoch", flush=True)

    from recsys.evaluation import report

    for label in [x for x in ("test", "cold_test", "purchase_test") if x in results]:
        print(report.format_table({k: {m: v for m, v in row.items() if m not in ("long_tail@10", "NDCG@10 sd")}
                                   for k, row in results[label].items()},
                                  f"{args.dataset}: graph ablation, {label}"), flush=True)
        print("long-tail share@10: " + ", ".join(f"{k} {v['long_tail@10']:.3f}" for k, v in results[label].items()),
              flush=True)
    out = {"dataset": args.dataset, "command": "python benchmarks/graph_ablation.py " + shlex.join(argv or sys.argv[1:]),
           "protocol": "full ranking, history masked" if exclude else "full ranking, repeats allowed",
           "cold_target_max_training_interactions": COLD_MAX, "cold_test_rows": len(cold.users),
           "purchase_test_rows": len(purchase.users) if purchase else None,
           "test_rows": len(test.users), "results": results, "training": training, "ratios": ratios,
           "elapsed_s": round(time.time() - start, 1)}
    path = layout.metrics_path.replace(".json", ".graph_ablation.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"[graph-ablation] wrote {path} in {time.time() - start:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
