"""Resident memory of loading one SavedModel again and again, with and without a garbage collection in between.

    TF_USE_LEGACY_KERAS=1 python benchmarks/saved_model_reload_memory.py \\
        --model-dir artifacts-scale-1m/pipelines/synthetic/DualHeadExporter/bruteforce_model/<id>/Format-Serving

A loaded SavedModel (``tf.saved_model.load``) sits in reference cycles, so dropping the last name of it does not
free it until Python's cyclic collector runs. ``export.evaluate.evaluate_split`` loads each evaluated model once
per split and mode, and collects after each (issue 14: the 1M rung's DualHeadEvaluator was killed at 22 GB after
five loads). Each mode runs in a fresh process: ``--loads`` loads, each followed by ``del`` (and ``gc.collect()``
in the ``gc`` mode); prints the resident memory after each load and the growth per load after the first.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def _rss_gb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 2 ** 20


def _child(model_dir: str, loads: int, collect: bool) -> dict:
    import gc

    import tensorflow as tf
    import scann  # noqa: F401  (ScaNN ops, for a ScaNN twin)

    after = []
    for _ in range(loads):
        start = time.perf_counter()
        model = tf.saved_model.load(model_dir)
        seconds = time.perf_counter() - start
        after.append(round(_rss_gb(), 2))
        del model
        if collect:
            gc.collect()
        print(f"  load in {seconds:.1f} s, resident {after[-1]:.2f} GB", file=sys.stderr, flush=True)
    return {"rss_after_each_load_gb": after,
            "growth_per_reload_gb": round((after[-1] - after[0]) / max(loads - 1, 1), 2)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--loads", type=int, default=3)
    p.add_argument("--mode", choices=("gc", "no_gc"), help=argparse.SUPPRESS)  # the child's
    args = p.parse_args(argv)
    if args.loads < 2:
        p.error("--loads must be at least 2")
    if not os.path.isdir(args.model_dir):
        p.error(f"--model-dir {args.model_dir} is not a directory")
    if args.mode:
        print(json.dumps(_child(args.model_dir, args.loads, args.mode == "gc")))
        return {}
    out = {}
    for mode in ("no_gc", "gc"):
        print(f"[{mode}] {args.loads} loads of {args.model_dir} (a fresh process)", flush=True)
        run = subprocess.run([sys.executable, os.path.abspath(__file__), "--model-dir", args.model_dir,
                              "--loads", str(args.loads), "--mode", mode], stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, TF_USE_LEGACY_KERAS="1"))
        if run.returncode != 0:
            raise SystemExit(f"[{mode}] failed with return code {run.returncode}")
        out[mode] = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"  resident after each load {out[mode]['rss_after_each_load_gb']} GB; "
              f"+{out[mode]['growth_per_reload_gb']} GB per reload", flush=True)
    print(f"growth per reload: {out['no_gc']['growth_per_reload_gb']} GB without a collection, "
          f"{out['gc']['growth_per_reload_gb']} GB with one")
    return out


if __name__ == "__main__":
    main()
