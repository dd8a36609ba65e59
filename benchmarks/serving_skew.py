"""What a request loses when it leaves out the structure the dual head was trained on: test metrics per encoding.

    TF_USE_LEGACY_KERAS=1 python benchmarks/serving_skew.py --output artifacts --dataset movielens-100k [--teacher]

Loads the pipeline run's trained dual-head model (``DualHeadTrainer``) and its test rows as the trainer does
(``load_sequences``), then scores the same rows four ways, full ranking, history masked:

* ``as trained``: order positions (MovieLens: one order per day; Instacart: baskets) and logged behaviours
  (click/purchase). What ``recommend_user``/``user_vector`` now use for stored users, and what
  ``recommend_orders`` gets when a client sends order positions of a purchase-only history.
* ``no behaviours``: every history item gets the most frequent training behaviour (what any served request
  without behaviours gets).
* ``no order positions``: every item its own order (``serving_default``'s reading of a bare history).
* ``neither``: a bare history (``serving_default`` / ``user_embedding``: no positions, no behaviours); until
  this change ``user_vector`` encoded stored users this way too.

The student (retrieval head) always; the teacher (beam search) with ``--teacher``. Prints a table and writes
``docs/results/<dataset>.serving_skew.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import recsys  # noqa: E402,F401  (legacy Keras before TensorFlow)
import numpy as np  # noqa: E402


def encodings(data, pad: int, default_event: int, max_orders: int) -> dict:
    """The test rows under each request encoding (see the module docstring); ``data`` is ``as trained``."""
    from trainer.dual_head import relative_orders

    valid = data.history != pad
    own = np.zeros_like(data.order_rel)
    for r in range(len(own)):
        n = int(valid[r].sum())
        own[r, :n] = relative_orders(np.arange(n), n, max_orders)   # item j of n is n - j orders back
    default = np.where(valid, default_event, 0).astype(data.events.dtype)
    return {"as trained": data,
            "no behaviours": dataclasses.replace(data, events=default),
            "no order positions": dataclasses.replace(data, order_rel=own),
            "neither": dataclasses.replace(data, events=default, order_rel=own)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="artifacts", help="the pipeline run's artifact root")
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--teacher", action="store_true", help="also the generative head (beam search; slower)")
    p.add_argument("--results", default="", help="JSON to write (default docs/results/<dataset>.serving_skew.json)")
    args = p.parse_args(argv)
    from recsys import features as F
    from recsys import names as N
    from tfx_pipeline.artifacts import latest_output_uri
    from tfx_pipeline.layout import Layout
    from trainer import dual_head
    from trainer.dual_head import EVENT_TYPES

    start = time.time()
    layout = Layout(os.path.abspath(args.output), args.dataset)
    model_dir = os.path.join(latest_output_uri(layout, "DualHeadTrainer", "model"), N.SERVING_SUBDIR)
    examples = latest_output_uri(layout, "SequenceExampleGen", "examples")
    net, items, info = dual_head.load_trained(model_dir)
    test = dual_head.load_sequences(examples, F.TEST, items, net.config)
    test = test.rows([i for i, pos in enumerate(test.positives) if len(pos)])
    default = EVENT_TYPES.index(info["default_event"])
    kinds = sorted({EVENT_TYPES[e] for e in np.unique(test.events[test.history < items.num_items])})
    print(f"[serving-skew] {args.dataset}: {len(test.history)} test rows, behaviours in histories {kinds}, "
          f"default {info['default_event']!r}; order positions {'on' if net.config.order_positions else 'off'}",
          flush=True)
    exclude = bool(info.get("exclude_history", True))
    results = {}
    for name, data in encodings(test, items.pad, default, net.config.max_orders).items():
        m = dual_head.evaluate(net, data, exclude, generative=args.teacher)
        results[name] = {head: {k: round(float(v), 4) for k, v in mm.items()} for head, mm in m.items()}
        print(f"[serving-skew]   {name:20s} " + "  ".join(
            f"{head}: NDCG@10 {mm['NDCG@10']:.4f} HR@10 {mm['HR@10']:.4f}" for head, mm in results[name].items()),
            flush=True)
    heads = {}  # head -> encoding -> metrics (+ the NDCG@10 ratio to the training encoding): the README's tables
    for head in results["as trained"]:
        base = results["as trained"][head]["NDCG@10"]
        heads[head] = {name: dict(r[head], **{"NDCG@10 / as trained": round(r[head]["NDCG@10"] / base, 3)
                                              if base else None}) for name, r in results.items()}
    out = {"dataset": args.dataset, "command": "python benchmarks/serving_skew.py " + shlex.join(argv or sys.argv[1:]),
           "model": model_dir, "test_rows": len(test.history), "default_event": info["default_event"],
           "protocol": "full ranking, history masked" if exclude else "full ranking, repeats allowed",
           "heads": heads, "elapsed_s": round(time.time() - start, 1)}
    path = args.results or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "results",
                                        f"{args.dataset}.serving_skew.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"[serving-skew] wrote {path} in {time.time() - start:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
