"""The dual head's item input at catalogue scale: the whole content table projected per batch, or only the items asked for.

    TF_USE_LEGACY_KERAS=1 python benchmarks/dual_head_catalogue_scale.py --items 1000000

``SemanticIdItems.encoder_input`` (the encoder's item input: Semantic ID code embeddings + a projection of the
content embedding) projected the whole ``[N + 2, Dc]`` content table on every call, then gathered the batch's
items. Up to ``WHOLE_TABLE_ROWS`` catalogue rows it still does (a batch holds more items than MovieLens' or
Instacart's catalogue); above, it gathers the batch's content rows first. This script builds the model over a
generated catalogue of ``--items`` items with ``--content-dim``-d content (the 1M rung: 1,000,000 × 512) and the
default ``DualHeadConfig``, and runs, in a fresh process per path (the threshold set so that each path is taken):

* ``--steps`` training steps (``Trainer.train_step`` with distillation, on ``PairSampler`` batches of generated
  rows): seconds per step (median of the steps after the first, which traces) and the peak resident memory the
  steps add over the built model;
* the retrieval head's user vectors of ``--users`` rows (``evaluation.user_vectors``: what the exporter and the
  evaluators run): seconds and the peak memory added.

Then the ratios, whole table over per item, and the largest difference between the two paths' item inputs on
a batch (the same weights: the paths differ by float rounding only). Writes
``docs/results/dual_head_catalogue_scale.json`` unless ``--no-write``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.proc_memory import child_json, reset_peak, status_mb  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATHS = ("per_item", "whole_table")


def _measure(args) -> dict:
    """In this process: build, then time and measure ``args.path`` (a child of ``main``)."""
    import recsys  # noqa: F401  (legacy Keras before TensorFlow)
    import numpy as np
    import tensorflow as tf

    from trainer import dual_head as D
    from trainer.dual_head import items as item_blocks
    from trainer.dual_head.sampler import PairSampler
    from trainer.semantic_ids import disambiguate

    item_blocks.WHOLE_TABLE_ROWS = 2 ** 62 if args.path == "whole_table" else 0
    rng = np.random.default_rng(0)
    n = args.items
    codes = disambiguate(rng.integers(0, 256, (n, 3))).astype(np.int32)  # unique, as the generative head needs
    items = D.ItemSpace(np.array([f"item{j:07d}" for j in range(n)], dtype=object), codes,
                        rng.normal(size=(n, args.content_dim)).astype(np.float32),
                        (np.arange(n) % 50).astype(np.int32), rng.integers(0, 20, n).astype(np.float32))
    config = D.DualHeadConfig()
    tf.keras.utils.set_random_seed(0)
    model = D.DualHeadModel(items, config)
    model.build_variables()
    h = config.max_history
    rows = args.rows
    lengths = rng.integers(1, h + 1, rows)
    hist = np.full((rows, h), items.pad, np.int32)
    rel = np.zeros((rows, h), np.int32)
    for r, m in enumerate(lengths):
        hist[r, :m] = rng.integers(0, n, m)
        rel[r, :m] = np.arange(m, 0, -1)
    events = np.where(hist < n, 4, 0).astype(np.int32)
    positives = [np.unique(rng.integers(0, n, int(rng.integers(1, 4)))) for _ in range(rows)]
    data = D.SequenceData(hist, rel, events, positives, [hist[r, :m].astype(np.int64) for r, m in enumerate(lengths)],
                          [f"u{r}" for r in range(rows)])
    sampler = PairSampler(data, items, config)
    pairs = sampler.epoch()
    batches = [{k: tf.constant(v) for k, v in sampler.batch(pairs[s:s + config.batch_size]).items()}
               for s in range(0, config.batch_size * args.steps, config.batch_size)]
    probe = tf.constant(hist[:64])
    built = status_mb("VmRSS")
    trainer = D.Trainer(model, config)
    reset_peak()
    seconds = []
    for batch in batches:
        start = time.perf_counter()
        trainer.train_step(batch, distill=True)
        seconds.append(time.perf_counter() - start)
    train_peak = status_mb("VmHWM") - built
    before = status_mb("VmRSS")
    reset_peak()
    start = time.perf_counter()
    vectors = D.user_vectors(model, data.rows(list(range(min(args.users, rows)))))
    user_s = time.perf_counter() - start
    return {"path": args.path, "built_rss_mb": round(built), "first_step_s": round(seconds[0], 2),
            "step_s": round(float(np.median(seconds[1:])), 3), "steps": len(seconds),
            "train_peak_added_mb": round(train_peak), "user_vectors_s": round(user_s, 2),
            "user_vectors_rows": len(vectors), "user_vectors_peak_added_mb": round(status_mb("VmHWM") - before),
            "item_input_probe": model.item_input(probe).numpy()[:, :, :8].tolist()}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--content-dim", type=int, default=512)
    p.add_argument("--rows", type=int, default=20_000, help="generated training rows (histories)")
    p.add_argument("--steps", type=int, default=8, help="training steps per path (the first traces)")
    p.add_argument("--users", type=int, default=4096, help="rows whose user vectors are computed")
    p.add_argument("--path", choices=PATHS, help=argparse.SUPPRESS)  # the child's path
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    if args.steps < 2:
        p.error("--steps must be at least 2 (the first step traces)")
    if args.path:
        print(json.dumps(_measure(args)), flush=True)
        return {}
    import numpy as np

    out = {}
    for path in PATHS:
        cmd = [sys.executable, os.path.abspath(__file__), "--path", path] + [
            a for a in (argv if argv is not None else sys.argv[1:]) if a != "--no-write"]
        print(f"[{path}] {args.items:,} items × {args.content_dim}-d content: {args.steps} training steps, "
              f"{args.users:,} user vectors (a fresh process)", flush=True)
        out[path] = child_json(cmd, path)
        r = out[path]
        print(f"  model built at {r['built_rss_mb']:,} MB; step {r['step_s']:.3f} s (first {r['first_step_s']:.1f} s), "
              f"+{r['train_peak_added_mb']:,} MB peak while training; user vectors {r['user_vectors_s']:.2f} s, "
              f"+{r['user_vectors_peak_added_mb']:,} MB", flush=True)
    per, whole = out["per_item"], out["whole_table"]
    diff = float(np.max(np.abs(np.array(per.pop("item_input_probe")) - np.array(whole.pop("item_input_probe")))))
    result = {
        "command": "python benchmarks/dual_head_catalogue_scale.py " + " ".join(
            a for a in (argv if argv is not None else sys.argv[1:]) if a != "--no-write"),
        "items": args.items, "content_dim": args.content_dim, "rows": args.rows, "load_avg": os.getloadavg()[:2],
        "paths": out,
        "ratios_whole_over_per_item": {
            "step_s": round(whole["step_s"] / per["step_s"], 2),
            "train_peak_added": round(whole["train_peak_added_mb"] / max(per["train_peak_added_mb"], 1), 2),
            "user_vectors_s": round(whole["user_vectors_s"] / per["user_vectors_s"], 2)},
        "max_abs_item_input_difference": diff}
    r = result["ratios_whole_over_per_item"]
    print(f"whole table / per item: step time {r['step_s']}x, training peak memory added {r['train_peak_added']}x, "
          f"user vectors {r['user_vectors_s']}x; item inputs differ by at most {diff:.2e}", flush=True)
    if not args.no_write:
        path = os.path.join(ROOT, "docs", "results", "dual_head_catalogue_scale.json")
        with open(path, "w") as f:
            json.dump(result, f, indent=1)
        print("written", path)
    return result


if __name__ == "__main__":
    main()
