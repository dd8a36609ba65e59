"""Training speed of the dual-head model on a pipeline run's MovieLens data: the old step against the new one.

    TF_USE_LEGACY_KERAS=1 python benchmarks/dual_head_speed.py --output artifacts --dataset movielens-100k

Loads the training and validation rows as the trainer does (``load_item_space`` + ``load_sequences``, the
default ``DualHeadConfig``), then in one process, on the same batches and from the same initial weights:

* the cost of the input side per batch (``PairSampler.batch`` in numpy, conversion to tensors);
* ``Trainer.train_step`` with the old teacher scoring (``shared_teacher=False``: the full teacher-forced
  decode per distillation candidate), the shared one (``shared_teacher=True, jit_teacher=False``: a row's
  memory/BOS decoder states once for its candidates) and the new default (shared + the scoring as one XLA
  cluster, ``jit_teacher=True``), with distillation (every epoch after the warm-up) and without (the
  warm-up epoch; the same graph in all three, so its ratio is the noise floor); timed step by step in turn
  (old, shared, new on one batch, then the next) so a change of the machine's load hits all three;
  examples/s, the ratios of the medians and the median of the paired per-step ratios;
* the numerics check: the loss terms of the first steps of every path from the same weights, batches and seed;
* the per-epoch validation cost (``evaluate(..., generative=False)``, what ``train`` runs per epoch) and the
  ``tf.function`` trace counts.

Prints the figures and writes ``docs/results/<dataset>.dual_head_speed.json`` (with the command and the load
averages at each timing: the machine is shared, compare the ratios, not the absolute figures).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import recsys  # noqa: E402,F401  (legacy Keras before TensorFlow)
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load():
    return [round(x, 2) for x in os.getloadavg()]


def _catalogue_fallback():
    """Artifacts built before the catalogue had ``created_at`` fail ``read_catalog``; the dual head does not read
    that column, so read the catalogue without it (zeros) rather than rebuilding the artifacts."""
    from recsys import features as F
    from transform import examples_io

    original = examples_io.read_catalog

    def read_catalog(uri):
        try:
            return original(uri)
        except Exception:  # noqa: BLE001 (tf raises InvalidArgumentError for the missing feature)
            spec = F.feature_spec(tuple(f for f in F.CATALOG_FEATURES if f is not F.CREATED_AT))
            cols = examples_io.read_examples(examples_io.split_files(uri, F.CATALOG), spec)
            ids = np.array(examples_io._decode(cols[F.ITEM_ID.name]), dtype=object)
            return examples_io.Catalog(ids, np.array(examples_io._decode(cols[F.CATEGORY.name]), dtype=object),
                                       np.zeros(len(ids), np.int64),
                                       np.array(examples_io._decode(cols[F.BRAND.name]), dtype=object),
                                       np.asarray(cols[F.PRICE.name], np.float32))

    examples_io.read_catalog = read_catalog


def main(argv=None) -> int:
    import tensorflow as tf

    from benchmarks.dual_head_ablation import _inputs
    from recsys import features as F
    from trainer import dual_head as D

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="artifacts")
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--steps", type=int, default=12, help="timed steps per path per round")
    p.add_argument("--rounds", type=int, default=3, help="timing rounds (each: every timed batch, distillation then warm-up)")
    p.add_argument("--check-steps", type=int, default=3, help="steps of the numerics check")
    p.add_argument("--json", default=None, help="default: docs/results/<dataset>.dual_head_speed.json")
    args = p.parse_args(argv)
    command = "TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/dual_head_speed.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    report = {"dataset": args.dataset, "command": command, "load_avg_start": _load()}

    _catalogue_fallback()
    t0 = time.perf_counter()
    _, examples, items = _inputs(args.output, args.dataset)
    config = D.DualHeadConfig()
    train = D.load_sequences(examples, F.TRAIN, items, config)
    val = D.load_sequences(examples, F.EVAL, items, config)
    exclude = D.exclude_history_for(examples)
    report["load_s"] = round(time.perf_counter() - t0, 1)
    tf.keras.utils.set_random_seed(config.seed)
    sampler = D.PairSampler(train, items, config)
    steps_per_epoch = len(sampler.pair_target) // config.batch_size
    report["data"] = {"training_pairs": int(len(sampler.pair_target)), "items": items.num_items,
                      "code_sizes": [int(x) for x in D.DualHeadModel(items, config).sizes],
                      "validation_rows": len(val.history), "batch_size": config.batch_size,
                      "steps_per_epoch": steps_per_epoch, "distill_candidates": config.distill_candidates}
    print(f"[speed] {report['data']}", flush=True)

    # input side
    n_batches = 1 + args.check_steps + args.steps
    pairs = sampler.epoch()
    t = time.perf_counter()
    np_batches = [sampler.batch(pairs[i * config.batch_size:(i + 1) * config.batch_size]) for i in range(n_batches)]
    sampler_ms = (time.perf_counter() - t) / n_batches * 1000
    t = time.perf_counter()
    batches = [{k: tf.constant(v) for k, v in b.items()} for b in np_batches]
    convert_ms = (time.perf_counter() - t) / n_batches * 1000
    report["input_ms_per_batch"] = {"sampler_numpy": round(sampler_ms, 2), "to_tensors": round(convert_ms, 2)}
    print(f"[speed] input per batch: sampler {sampler_ms:.2f} ms, to tensors {convert_ms:.2f} ms", flush=True)

    def build(shared: bool, jit: bool):
        tf.keras.utils.set_random_seed(config.seed)
        model = D.DualHeadModel(items, config)
        model.build_variables()
        return model, D.Trainer(model, config, shared_teacher=shared, jit_teacher=jit)

    # old: the full decode per distillation candidate; shared: a row's memory/BOS states once; new: shared + XLA
    paths = {"old": build(False, False), "shared": build(True, False), "new": build(True, True)}

    # numerics: the same weights, the same batches, the same seed → the same losses
    check = {}
    for name, (model, trainer) in paths.items():
        tf.keras.utils.set_random_seed(config.seed + 1)
        check[name] = [{k: float(v) for k, v in trainer.train_step(b, distill=True).items()}
                       for b in batches[:args.check_steps]]
    diff = max(abs(o[k] - n[k]) for name in ("shared", "new") for o, n in zip(check["old"], check[name]) for k in o)
    report["numerics"] = {"steps": args.check_steps, **check, "max_abs_loss_difference_vs_old": diff}
    print(f"[speed] numerics: max |loss_old - loss_new| over {args.check_steps} steps = {diff:.2e}; "
          f"step 1 total old {check['old'][0]['total']:.6f} new {check['new'][0]['total']:.6f}", flush=True)

    # timings, interleaved step by step
    timed = batches[1 + args.check_steps:]
    times = {(name, distill): [] for name in paths for distill in (False, True)}
    loads = []
    for name, (_, trainer) in paths.items():  # trace both graphs before timing
        for distill in (False, True):
            trainer.train_step(batches[0], distill=distill)
    for r in range(args.rounds):
        for distill in (True, False):
            # interleaved step by step (old, shared, new on the same batch, then the next batch), so a change of
            # the shared machine's load hits every path alike; each step is timed to its loss on the host
            for b in timed:
                for name, (_, trainer) in paths.items():
                    t = time.perf_counter()
                    float(trainer.train_step(b, distill=distill)["total"])
                    times[(name, distill)].append(time.perf_counter() - t)
        loads.append(_load())
        n = len(timed)
        print(f"[speed] round {r + 1}/{args.rounds}: " + ", ".join(
            f"{nm} distill={d} {1000 * float(np.median(v[-n:])):.0f} ms/step" for (nm, d), v in times.items())
            + f"; load {loads[-1]}", flush=True)
    steps = {}
    for (name, distill), v in times.items():
        ms = 1000 * float(np.median(v))
        steps[f"{name}_{'distill' if distill else 'warmup'}"] = {
            "ms_per_step_median": round(ms, 1), "ms_per_step_quartiles": [round(1000 * float(np.percentile(v, q)), 1)
                                                                          for q in (25, 75)], "steps_timed": len(v),
            "examples_per_s": round(config.batch_size / ms * 1000, 1)}
    ratios = {"distill_steps_new_over_old_examples_per_s": round(
                  steps["old_distill"]["ms_per_step_median"] / steps["new_distill"]["ms_per_step_median"], 2),
              "distill_steps_shared_over_old_examples_per_s": round(
                  steps["old_distill"]["ms_per_step_median"] / steps["shared_distill"]["ms_per_step_median"], 2),
              "warmup_steps_new_over_old_examples_per_s": round(
                  steps["old_warmup"]["ms_per_step_median"] / steps["new_warmup"]["ms_per_step_median"], 2),
              "distill_steps_new_over_old_median_of_paired_step_ratios": round(float(np.median(
                  np.array(times[("old", True)]) / np.array(times[("new", True)]))), 2),
              "warmup_steps_new_over_old_median_of_paired_step_ratios (same graph: the noise floor)": round(float(
                  np.median(np.array(times[("old", False)]) / np.array(times[("new", False)]))), 2)}
    report.update(steps=steps, ratios=ratios, load_avg_per_round=loads)

    # validation per epoch (what train() runs after each epoch: the student, full ranking, no beam search)
    model = paths["new"][0]
    report["distill_share_of_training"] = "every epoch after distill_warmup_epochs (1) distils: " \
        "with early stopping most epochs are distill epochs"
    D.evaluate(model, val, exclude, generative=False)
    t = time.perf_counter()
    D.evaluate(model, val, exclude, generative=False)
    val_s = time.perf_counter() - t
    report["validation_s_per_epoch"] = round(val_s, 2)
    report["tf_function_traces"] = {f"{name} distill={d}": int(fn.experimental_get_tracing_count())
                                    for name, (_, trainer) in paths.items() for d, fn in trainer._steps.items()}
    epoch = {}
    for name in paths:
        warm, dist = steps[f"{name}_warmup"]["ms_per_step_median"], steps[f"{name}_distill"]["ms_per_step_median"]
        epoch[name] = {"warmup_epoch_s": round(steps_per_epoch * (warm + sampler_ms + convert_ms) / 1000 + val_s, 1),
                       "distill_epoch_s": round(steps_per_epoch * (dist + sampler_ms + convert_ms) / 1000 + val_s, 1)}
    report["estimated_epoch_s"] = epoch
    report["load_avg_end"] = _load()
    print(f"[speed] validation per epoch {val_s:.2f} s; traces {report['tf_function_traces']}")
    for k, v in steps.items():
        print(f"[speed] {k}: {v['ms_per_step_median']} ms/step, {v['examples_per_s']} examples/s")
    print(f"[speed] ratios (new/old examples/s): {ratios}; estimated s/epoch: {epoch}; load {report['load_avg_end']}")
    path = args.json or os.path.join(ROOT, "docs", "results", f"{args.dataset}.dual_head_speed.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"[speed] written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
