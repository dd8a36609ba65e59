"""Training cost of the graph retriever's two objectives as the graph grows: seconds per epoch, in one run.

    python benchmarks/graph_epoch_cost.py [--scales 1,4,16] [--epochs 2] [--output docs/results/graph_epoch_cost.json]

Graphs shaped like MovieLens-100K and scaled by ``s``: 943·s users, 1,682·s items, about 100k·s edges (user
degrees log-normal around ML-100K's mean of 106 with its minimum of 20, items drawn by a Zipf
popularity, duplicates dropped), two behaviours (45% click, 55% purchase, as ML-100K's ratings < 4 and
>= 4), 10 item neighbours per item, 384-d content vectors. They are random: only the cost depends on
their shape, no quality metric is read here (``benchmarks/graph_ablation.py`` measures quality).

Per scale and variant (``ultragcn``: the pipeline's ``GraphConfig`` defaults, semantic initialisation on;
``lightgcn``: the ablation's RecBole settings), one untimed epoch (tracing), then ``--epochs`` timed
epochs; the two variants run one after the other in this process and the ratio LightGCN / UltraGCN is
printed. LightGCN propagates the whole graph at every step, so its epoch costs O(edges²); the
UltraGCN-style step touches only its batch (``GraphModel.ultragcn_loss``), so its epoch is O(edges).
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

ML_USERS, ML_ITEMS, ML_MEAN_DEGREE, ML_MIN_DEGREE = 943, 1682, 106, 20
CONTENT_DIM, NEIGHBOURS = 384, 10


def synthetic_graph(scale: int, seed: int = 0):
    """A random two-behaviour graph of MovieLens-100K's shape times ``scale`` (see the module docstring)."""
    from trainer.graph import GraphData

    rng = np.random.default_rng(seed)
    users, items = ML_USERS * scale, ML_ITEMS * scale
    degree = np.maximum(ML_MIN_DEGREE, rng.lognormal(np.log(ML_MEAN_DEGREE) - 0.5, 1.0, users)).astype(np.int64)
    degree = np.minimum(degree, items // 2)
    popularity = 1.0 / np.arange(1, items + 1)
    cdf = np.cumsum(popularity / popularity.sum())
    edge_user, edge_item = [], []
    for u, d in enumerate(degree):
        draws = np.minimum(np.searchsorted(cdf, rng.random(4 * d)), items - 1)
        _, first = np.unique(draws, return_index=True)
        picked = draws[np.sort(first)][:d]   # the first d distinct items drawn
        edge_user.append(np.full(len(picked), u))
        edge_item.append(picked)
    edge_user, edge_item = np.concatenate(edge_user), np.concatenate(edge_item)
    e = len(edge_user)
    behaviour = (rng.random(e) < 0.55).astype(np.int32)     # 0 click, 1 purchase
    neighbours = np.minimum(np.searchsorted(cdf, rng.random((items, NEIGHBOURS))), items - 1).astype(np.int64)
    omega = np.full((items, NEIGHBOURS), 0.1, np.float32)
    return GraphData(np.array([f"i{i}" for i in range(items)], dtype=object),
                     np.array([f"u{u}" for u in range(users)], dtype=object), ("click", "purchase"),
                     edge_user.astype(np.int64), edge_item.astype(np.int64), behaviour, np.ones(e, np.int64),
                     rng.random(e).astype(np.float32), neighbours, omega,
                     rng.normal(size=(items, CONTENT_DIM)).astype(np.float32))


def seconds_per_epoch(graph, overrides: dict, epochs: int) -> float:
    import dataclasses

    from trainer.graph import GraphConfig
    from trainer.graph.training import Trainer

    config = GraphConfig.from_dict(overrides)
    trainer = Trainer(graph if config.semantic_init else dataclasses.replace(graph, content=None), config)
    trainer.epoch(0)                       # traces the in-graph epoch loop
    start = time.perf_counter()
    for e in range(1, epochs + 1):
        trainer.epoch(e)
    return (time.perf_counter() - start) / epochs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scales", default="1,4,16", help="graph sizes as multiples of MovieLens-100K (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per variant and scale (default: %(default)s)")
    p.add_argument("--output", default="docs/results/graph_epoch_cost.json")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    scales = [int(s) for s in args.scales.split(",") if s.strip()]
    if not scales or min(scales) < 1 or args.epochs < 1:
        p.error("--scales must be positive integers and --epochs >= 1")
    from benchmarks.graph_ablation import VARIANTS

    variants = {"ultragcn": {}, "lightgcn": {k: v for k, v in VARIANTS["lightgcn"].items()
                                             if k not in ("eval_every", "patience", "max_epochs")}}
    start, rows = time.time(), {}
    for s in scales:
        t0 = time.time()
        graph = synthetic_graph(s)
        label = f"x{s}: {graph.num_users:,} users, {graph.num_items:,} items, {len(graph.edge_user):,} edges"
        print(f"[graph-cost] {label} (built in {time.time() - t0:.0f}s)", flush=True)
        row = {"users": graph.num_users, "items": graph.num_items, "edges": len(graph.edge_user)}
        for name, overrides in variants.items():
            row[f"{name} s/epoch"] = round(seconds_per_epoch(graph, overrides, args.epochs), 3)
            print(f"[graph-cost]   {name}: {row[f'{name} s/epoch']:.2f} s/epoch", flush=True)
        row["lightgcn / ultragcn"] = round(row["lightgcn s/epoch"] / row["ultragcn s/epoch"], 2)
        print(f"[graph-cost]   LightGCN / UltraGCN: {row['lightgcn / ultragcn']}x per epoch "
              f"(load average {os.getloadavg()[0]:.1f})", flush=True)
        rows[label] = row
    out = {"command": "python benchmarks/graph_epoch_cost.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "configs": variants, "epochs_timed": args.epochs, "results": rows, "elapsed_s": round(time.time() - start, 1)}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(out, f, indent=1)
    print(f"[graph-cost] wrote {args.output} in {time.time() - start:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
