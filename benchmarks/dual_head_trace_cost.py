"""What the dual head's training step costs to trace, with and without AutoGraph, measured in one process.

    TF_USE_LEGACY_KERAS=1 python benchmarks/dual_head_trace_cost.py --output artifacts --dataset movielens-100k \
        [--steps 20]

On a pipeline run's training rows and item space, with the pipeline's dual-head config
(``tfx_pipeline.pipeline.dual_head_trainer_config``), trains a fresh model for ``--steps`` steps twice, from the
same seed: once with the step traced without AutoGraph (``Trainer.train_step``'s default) and once with it
(the former default). Prints the first step's time (tracing and the first run) and the rest's, their ratio,
and whether the two runs' losses are equal to the bit. Writes ``docs/results/<dataset>.dual_head_trace_cost.json``.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import recsys  # noqa: E402,F401  (legacy Keras before TensorFlow)


def run(train, items, config, steps: int, autograph: bool) -> dict:
    """``steps`` training steps of a fresh model from ``config.seed``: first-step and later seconds, losses."""
    import tensorflow as tf

    from trainer import dual_head

    tf.keras.utils.set_random_seed(config.seed)
    sampler = dual_head.PairSampler(train, items, config)
    trainer = dual_head.Trainer(dual_head.DualHeadModel(items, config), config)
    pairs = sampler.epoch()
    losses, first, rest = [], 0.0, 0.0
    for s in range(steps):
        batch = {k: tf.constant(v) for k, v in sampler.batch(
            pairs[s * config.batch_size:(s + 1) * config.batch_size]).items()}
        t0 = time.perf_counter()
        out = trainer.train_step(batch, distill=False, autograph=autograph)
        losses.append(float(out["total"]))
        if s == 0:
            first = time.perf_counter() - t0
        else:
            rest += time.perf_counter() - t0
    return {"first_step_s": round(first, 2), "later_steps_ms": round(1000 * rest / max(steps - 1, 1), 1),
            "losses": losses}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="artifacts", help="the pipeline run's artifact root")
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--steps", type=int, default=20, help="training steps per run (default: %(default)s)")
    p.add_argument("--results", default="", help="JSON to write (default docs/results/<dataset>.dual_head_trace_cost.json)")
    args = p.parse_args(argv)
    if args.steps < 2:
        p.error("--steps must be at least 2 (the first step is timed apart)")

    from benchmarks.dual_head_ablation import _inputs
    from benchmarks.results_file import write_results
    from recsys import features as F
    from tfx_pipeline.pipeline import dual_head_trainer_config
    from trainer import dual_head

    start = time.time()
    _, examples, items = _inputs(args.output, args.dataset)
    config = dual_head.DualHeadConfig.from_dict(dual_head_trainer_config({}))
    train = dual_head.load_sequences(examples, F.TRAIN, items, config)
    runs = {}
    for name, autograph in (("without AutoGraph", False), ("with AutoGraph", True)):
        runs[name] = run(train, items, config, args.steps, autograph)
        r = runs[name]
        print(f"[trace-cost] {name:18s} first step {r['first_step_s']:6.1f} s, later steps {r['later_steps_ms']:6.1f} ms",
              flush=True)
    new, old = runs["without AutoGraph"], runs["with AutoGraph"]
    same = new["losses"] == old["losses"]
    ratio = old["first_step_s"] / max(new["first_step_s"], 1e-9)
    print(f"[trace-cost] first step {ratio:.2f}x faster without AutoGraph; losses equal to the bit: {same}", flush=True)
    out = {"dataset": args.dataset,
           "command": "python benchmarks/dual_head_trace_cost.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "steps": args.steps, "runs": {k: {kk: vv for kk, vv in v.items() if kk != "losses"} for k, v in runs.items()},
           "first_step_ratio": round(ratio, 2), "losses_equal": same,
           "elapsed_s": round(time.time() - start, 1)}
    write_results(out, args.results, args.dataset, "dual_head_trace_cost", "trace-cost")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
