"""Training throughput of the SASRec-style model (``sequential_retrieval``) at two batch sizes, interleaved.

    TF_USE_LEGACY_KERAS=1 python benchmarks/sequential_batch_speed.py --output artifacts --dataset movielens-100k

Loads the training rows as the trainer does (``load_item_space`` + ``load_sequences`` with the SASRec
preset), builds one model and trainer per batch size (the same seed), and times ``Trainer.train_step`` in
turn, a block of steps of each size then the next, so a change of the shared machine's load hits both;
the first ``--warmup`` blocks (tracing) are left out. Prints examples/s per size and their ratio: a
ratio near 1 says the step is compute-bound (bigger batches buy nothing), far above 1 that it is
overhead-bound. Writes ``docs/results/<dataset>.sequential_batch_speed.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import recsys  # noqa: E402,F401  (legacy Keras before TensorFlow)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    import tensorflow as tf

    from dual_head_ablation import _inputs
    from recsys import features as F
    from trainer import dual_head
    from trainer.dual_head.sampler import PairSampler
    from trainer.dual_head.training import Trainer

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="artifacts", help="artifact root of a `recsys run` (default: %(default)s)")
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--batch-sizes", default="256,1024", help="two batch sizes, the first the default's")
    p.add_argument("--rows-per-block", type=int, default=4096, help="training rows per timed block and size")
    p.add_argument("--blocks", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2, help="blocks left out of the timing (tracing)")
    args = p.parse_args(argv)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    if len(sizes) != 2 or min(sizes) <= 0 or args.rows_per_block % max(sizes) or args.blocks <= args.warmup:
        p.error("give two positive batch sizes dividing --rows-per-block, and more --blocks than --warmup")
    load_start = [round(x, 2) for x in os.getloadavg()]
    _, examples, items = _inputs(args.output, args.dataset)
    train = dual_head.load_sequences(examples, F.TRAIN, items, dual_head.sasrec_config({}))
    runs = {}
    for bs in sizes:
        cfg = dual_head.sasrec_config({"batch_size": bs})
        tf.keras.utils.set_random_seed(cfg.seed)
        sampler = PairSampler(train, items, cfg)
        runs[bs] = (sampler, Trainer(dual_head.DualHeadModel(items, cfg), cfg), sampler.epoch())
    seconds, rows = {bs: 0.0 for bs in sizes}, {bs: 0 for bs in sizes}
    for block in range(args.blocks):
        for bs, (sampler, trainer, pairs) in runs.items():
            steps = args.rows_per_block // bs
            for s in range(steps):
                j = (block * steps + s) % (len(pairs) // bs)
                batch = {k: tf.constant(v) for k, v in sampler.batch(pairs[j * bs:(j + 1) * bs]).items()}
                t0 = time.perf_counter()
                float(trainer.train_step(batch, distill=False)["total"])
                if block >= args.warmup:
                    seconds[bs] += time.perf_counter() - t0
                    rows[bs] += bs
    speed = {str(bs): round(rows[bs] / seconds[bs], 1) for bs in sizes}
    ratio = round((rows[sizes[1]] / seconds[sizes[1]]) / (rows[sizes[0]] / seconds[sizes[0]]), 3)
    report = {"dataset": args.dataset, "command": "TF_USE_LEGACY_KERAS=1 python benchmarks/sequential_batch_speed.py "
              + " ".join(argv if argv is not None else sys.argv[1:]),
              "training_rows": int(len(train.history)), "examples_per_s": speed,
              f"ratio_{sizes[1]}_over_{sizes[0]}": ratio, "timed_rows_per_size": rows[sizes[0]],
              "load_avg_start": load_start, "load_avg_end": [round(x, 2) for x in os.getloadavg()]}
    for bs in sizes:
        print(f"batch {bs}: {speed[str(bs)]:.0f} examples/s")
    print(f"ratio {sizes[1]}/{sizes[0]}: {ratio:.2f} (load {report['load_avg_start']} -> {report['load_avg_end']})")
    path = os.path.join(ROOT, "docs", "results", f"{args.dataset}.sequential_batch_speed.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
