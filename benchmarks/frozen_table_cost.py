"""What holding the dual head's item tables as variables (``trainer.base.frozen_table``) costs its training step,
against the constants they were, measured in one process.

    TF_USE_LEGACY_KERAS=1 python benchmarks/frozen_table_cost.py --output artifacts --dataset movielens-100k \
        [--steps 60] [--block 5]

The item tables (codes, content, known) became variables so that served graphs stop growing with the catalogue
(``saved_model.pb`` is capped at 2 GB). On a pipeline run's training rows and item space, with the pipeline's
dual-head config, two fresh models from the same seed train side by side, one with the tables as variables
(the code's) and one with them as ``tf.constant`` (the former code); they take turns in blocks of ``--block``
steps on the same batches, so load from other processes falls on both alike. Prints the median step time of
each (the first, traced, step left out), their ratio, and whether the two models' losses are equal to the bit.
Writes ``docs/results/<dataset>.frozen_table_cost.json``.
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import recsys  # noqa: E402,F401  (legacy Keras before TensorFlow)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="artifacts", help="the pipeline run's artifact root")
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--steps", type=int, default=60, help="training steps per model (default: %(default)s)")
    p.add_argument("--block", type=int, default=5, help="steps per turn (default: %(default)s)")
    p.add_argument("--results", default="", help="JSON to write (default docs/results/<dataset>.frozen_table_cost.json)")
    args = p.parse_args(argv)
    if args.steps < 2 or args.block < 1:
        p.error("--steps must be at least 2 and --block at least 1")

    import tensorflow as tf

    from benchmarks.dual_head_ablation import _inputs
    from benchmarks.results_file import write_results
    from recsys import features as F
    from tfx_pipeline.pipeline import dual_head_trainer_config
    from trainer import dual_head
    from trainer.dual_head import items as items_module

    start = time.time()
    _, examples, items = _inputs(args.output, args.dataset)
    config = dual_head.DualHeadConfig.from_dict(dual_head_trainer_config({}))
    train = dual_head.load_sequences(examples, F.TRAIN, items, config)

    def build(tables_as_constants: bool):
        tf.keras.utils.set_random_seed(config.seed)
        if tables_as_constants:  # the former code: ItemTables.from_space built tf.constant tables
            saved = items_module.frozen_table
            items_module.frozen_table = lambda value, dtype=None: tf.constant(value, dtype)
            try:
                model = dual_head.DualHeadModel(items, config)
            finally:
                items_module.frozen_table = saved
        else:
            model = dual_head.DualHeadModel(items, config)
        model.build_variables()  # every weight drawn now, from the seed (not at the first step, after the other model)
        return dual_head.Trainer(model, config)

    trainers = {"variables": build(False), "constants": build(True)}
    assert isinstance(trainers["variables"].model.item_tables.content, tf.Variable)
    assert not isinstance(trainers["constants"].model.item_tables.content, tf.Variable)
    tf.keras.utils.set_random_seed(config.seed)
    sampler = dual_head.PairSampler(train, items, config)
    pairs = sampler.epoch()
    batches = [{k: tf.constant(v) for k, v in sampler.batch(pairs[s * config.batch_size:(s + 1) * config.batch_size]).items()}
               for s in range(args.steps)]
    times = {name: [] for name in trainers}
    losses = {name: [] for name in trainers}
    for s0 in range(0, args.steps, args.block):
        for name, trainer in trainers.items():
            for s in range(s0, min(s0 + args.block, args.steps)):
                t0 = time.perf_counter()
                out = trainer.train_step(batches[s], distill=False)
                losses[name].append(float(out["total"]))
                times[name].append(time.perf_counter() - t0)
    ms = {name: round(1000 * statistics.median(t[1:]), 1) for name, t in times.items()}
    ratio = ms["variables"] / ms["constants"]
    same = losses["variables"] == losses["constants"]
    gap = max(abs(a - b) for a, b in zip(losses["variables"], losses["constants"]))
    load = [round(x, 2) for x in os.getloadavg()]
    print(f"[frozen-tables] median step: variables {ms['variables']} ms, constants {ms['constants']} ms "
          f"(variables / constants = {ratio:.3f}); losses equal to the bit: {same} (largest gap {gap:.3g}); load {load}",
          flush=True)
    out = {"dataset": args.dataset,
           "command": "python benchmarks/frozen_table_cost.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "steps": args.steps, "block": args.block, "median_step_ms": ms, "ratio_variables_to_constants": round(ratio, 3),
           "losses_equal": same, "largest_loss_gap": gap, "load_average_after": load, "elapsed_s": round(time.time() - start, 1)}
    write_results(out, args.results, args.dataset, "frozen_table_cost", "frozen-tables")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
