"""RankerTrainer's input: peak memory and time of reading the exposures, the former reader against the new one,
or the exposures held in memory against the same exposures streamed.

    TF_USE_LEGACY_KERAS=1 python benchmarks/ranker_read_memory.py --users 4000 --items 20000 --events 80000 \
        --output docs/results/ranker_read_memory.json
    TF_USE_LEGACY_KERAS=1 python benchmarks/ranker_read_memory.py --readers new,stream --train-epochs 2 ...

Writes a ``train`` split of exposures the way ``ExposureBuilder`` does (``CandidateFn`` over the synthetic
generator's ranked units with the in-process retriever stand-ins of ``benchmarks/exposure_speed.py``; the records
are the pipeline's layout, ~230 candidates per unit on leave-one-out data), then reads it in fresh child
processes, one reader per process (a process's peak RSS never comes down), alternating ``--repeats`` times:

* ``read_exposures_lists``: the former reader (``examples_io.read_examples``: every value a python object
  first, then the padded arrays);
* ``read_exposures`` (``new``): batched ``tf.io.parse_example`` into flat numpy arrays, written into the padded
  arrays batch by batch;
* ``stream``: ``ExposureStream``, what ``RankerTrainer`` uses above ``RankerConfig.stream_above_mb``: its
  construction (one counting pass, the features' moments) is the "read", and training reads the records again
  each epoch through a shuffle buffer (``RankerConfig.shuffle_buffer``), never holding every unit.

``--readers`` picks the two compared (default ``old,new``).

Each child reports its RSS before the read (after importing TensorFlow), its peak RSS (``ru_maxrss``) and the
read's seconds; the figure that matters is peak minus before. With ``--train-epochs N`` each timed child then
does what RankerTrainer does next: reads the validation units and trains the ranker N epochs (``RankerConfig``
defaults without Semantic IDs; random content vectors), and reports the process's peak again. The two readers' arrays are compared once in a
child (element for element). Prints the figures and writes ``--output`` with the command and load averages.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import recsys  # noqa: E402,F401  (legacy Keras before TensorFlow)

HERE = os.path.abspath(__file__)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _load():
    return [round(x, 2) for x in os.getloadavg()]


def write_exposures(root: str, users: int, items: int, events: int, seed: int) -> dict:
    """The ``train`` split (window units) of an exposures artifact under ``root``; returns its sizes."""
    import tensorflow as tf

    from exposure_speed import StandIn, build_batches
    from transform import exposures as X

    batches, counts, category, _ = build_batches(users, items, events, seed)
    stand_in = StandIn(sorted(category), sorted(u for b in batches for u, _ in b), seed=seed)
    real = tf.saved_model.load
    tf.saved_model.load = lambda path: stand_in
    try:
        fn = X.CandidateFn(X.RetrieverSet("p_tt", "p_g", counts), X.RetrieverSet("tt", "g", counts), category,
                           exclude_history=True)
        fn.setup()
    finally:
        tf.saved_model.load = real
    writers = {}
    for split in ("train", "eval"):
        os.makedirs(os.path.join(root, f"Split-{split}"))
        writers[split] = tf.io.TFRecordWriter(os.path.join(root, f"Split-{split}", "data_tfrecord-00000-of-00001.gz"),
                                              options="GZIP")
    units = candidates = val_units = 0
    for b in batches:
        for o in fn.process(b):
            if o.tag in writers:
                writers[o.tag].write(o.value)
            elif o.tag == "stats" and o.value["split"] == "train":
                units += 1
                candidates += o.value["candidates"]
            elif o.tag == "stats" and o.value["split"] == "eval":
                val_units += 1
    for w in writers.values():
        w.close()
    items = sorted(category)
    with open(os.path.join(root, "positions.json"), "w") as f:
        json.dump({i: k for k, i in enumerate(items)}, f)
    with open(os.path.join(root, "categories.json"), "w") as f:
        json.dump([category[i] for i in items], f)
    split = os.path.join(root, "Split-train")
    size = sum(os.path.getsize(os.path.join(split, n)) for n in os.listdir(split))
    return {"units": units, "exposures": candidates, "validation_units": val_units, "file_mb": round(size / 2 ** 20, 1)}


def item_tables(root: str):
    """``ItemTables`` of the catalogue: random 32-d content vectors, the generator's categories, no Semantic IDs,
    creation times, brands or prices (the ranker's item-side inputs; their values do not matter for memory)."""
    import numpy as np

    from trainer.ranker.data import MISSING_CREATED_AT, ItemTables

    with open(os.path.join(root, "categories.json")) as f:
        cats = json.load(f)
    vocab = {c: k for k, c in enumerate(sorted(set(cats)))}
    n = len(cats)
    content = np.concatenate([np.random.default_rng(0).normal(size=(n, 32)), np.zeros((1, 32))]).astype(np.float32)
    return ItemTables(content, np.array([vocab[c] for c in cats] + [len(vocab)], np.int32), len(vocab),
                      np.zeros((n + 1, 0), np.int32), 0, np.full(n + 1, MISSING_CREATED_AT, np.int64))


def child(root: str, reader: str, actions: int, compare: bool, train_epochs: int = 0) -> None:
    import tensorflow as tf  # noqa: F401  (imported before the 'before' figure: both readers need it)

    from trainer.ranker import data as D

    with open(os.path.join(root, "positions.json")) as f:
        positions = json.load(f)
    before = _rss_mb()
    start = time.perf_counter()
    from trainer.ranker import RankerConfig

    config = RankerConfig(semantic_ids=False, actions=actions, max_epochs=max(train_epochs, 1))
    fn = D.read_exposures_lists if reader == "old" else D.read_exposures
    if reader == "stream":
        data = D.ExposureStream(root, "train", positions, actions, config.batch_size, config.shuffle_buffer, config.seed)
    else:
        data = fn(root, "train", positions, actions)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    trained = {}
    if train_epochs:  # what RankerTrainer does next: the validation units, then training (its peak includes the read)
        from trainer.ranker import train

        val = fn(root, "eval", positions, actions)
        t0 = time.perf_counter()
        result = train(data, val, config, item_tables(root), log=lambda m: None)
        trained = {"train_seconds": round(time.perf_counter() - t0, 1), "validation_units": len(val),
                   "trainer_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                   "validation_ndcg": round(result.best_val["NDCG@10"], 5)}
        trained["trainer_mb"] = trained["trainer_peak_mb"] - round(before)
    out = {"reader": reader, "seconds": round(seconds, 2), "rss_before_mb": round(before), "peak_mb": round(peak),
           "read_mb": round(peak - before), "units": len(data), **trained,
           "arrays_mb": 0 if reader == "stream" else round(sum(getattr(data, k).nbytes for k in (
               "items", "features", "click", "conversion", "mask", "actions", "action_type", "action_gap",
               "user_vector")) / 2 ** 20)}
    if compare:
        import numpy as np

        other = D.read_exposures_lists(root, "train", positions, actions)
        out["identical"] = bool(other.user_ids == data.user_ids and all(
            np.array_equal(getattr(other, k), getattr(data, k)) for k in
            ("items", "features", "click", "conversion", "mask", "actions", "action_type", "action_gap",
             "user_vector", "request_time")) and all(np.array_equal(a, b) for a, b in zip(other.targets, data.targets)))
    print("RESULT " + json.dumps(out), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=4000)
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--events", type=int, default=80000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--actions", type=int, default=20, help="RankerConfig.actions (the trainer's max_actions)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--train-epochs", type=int, default=0,
                    help="> 0: each child then reads the validation units and trains the ranker (RankerConfig "
                         "defaults, no Semantic IDs) this many epochs, as RankerTrainer does; its peak is reported too")
    ap.add_argument("--readers", default="old,new", help="the two readers compared: old, new, stream")
    ap.add_argument("--workdir", default="", help="where the exposures are written (default: a temporary dir)")
    ap.add_argument("--output", default="")
    ap.add_argument("--child", nargs=2, metavar=("ROOT", "READER"), help=argparse.SUPPRESS)
    ap.add_argument("--compare", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.actions, args.compare, args.train_epochs)
        return 0

    root = args.workdir or tempfile.mkdtemp(prefix="ranker_read_")
    try:
        t0 = time.time()
        sizes = write_exposures(os.path.join(root, "exposures"), args.users, args.items, args.events, args.seed)
        print(f"[ranker_read] {sizes['units']:,} window units, {sizes['exposures']:,} exposures, "
              f"{sizes['file_mb']} MB gzip; written in {time.time() - t0:.0f}s", flush=True)

        def run(reader: str, compare: bool = False) -> dict:
            before = _load()
            cmd = [sys.executable, HERE, "--actions", str(args.actions), "--child", os.path.join(root, "exposures"),
                   reader] + (["--compare"] if compare else ["--train-epochs", str(args.train_epochs)])
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            result = json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:])
            result.update(load_before=before, load_after=_load())
            print(f"[ranker_read] {reader:<4} read {result['seconds']:7.2f} s, RSS before {result['rss_before_mb']:,} MB, "
                  f"peak {result['peak_mb']:,} MB (+{result['read_mb']:,} MB; the arrays {result['arrays_mb']:,} MB)"
                  + (f", identical to the former reader: {result['identical']}" if compare else "")
                  + (f"; then {args.train_epochs} training epoch(s) in {result['train_seconds']} s: the process's "
                     f"peak {result['trainer_peak_mb']:,} MB (+{result['trainer_mb']:,} MB), validation NDCG@10 "
                     f"{result['validation_ndcg']}" if "trainer_mb" in result else ""), flush=True)
            return result

        check = run("new", compare=True)
        first, second = args.readers.split(",")
        timings = [run(reader) for _ in range(args.repeats) for reader in (first, second)]
    finally:
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)

    def median(reader, key):
        return statistics.median(t[key] for t in timings if t["reader"] == reader)

    # keys "<first>_read_mb" etc. ("old_"/"new_" with the default readers, as the first runs wrote them)
    summary = {f"{first}_read_mb": median(first, "read_mb"), f"{second}_read_mb": median(second, "read_mb"),
               f"{first}_seconds": median(first, "seconds"), f"{second}_seconds": median(second, "seconds"),
               "arrays_mb": check["arrays_mb"]}
    summary["memory_ratio"] = round(summary[f"{first}_read_mb"] / max(summary[f"{second}_read_mb"], 1), 2)
    if args.train_epochs:
        summary.update({f"{r}_{k}": median(r, k) for r in (first, second)
                        for k in ("trainer_mb", "validation_ndcg", "train_seconds")})
    summary["time_ratio"] = round(summary[f"{first}_seconds"] / max(summary[f"{second}_seconds"], 1e-9), 2)
    print(f"[ranker_read] medians of {args.repeats}: the read's RSS growth {summary[f'{first}_read_mb']:,} MB "
          f"({first}) -> {summary[f'{second}_read_mb']:,} MB ({second}) (x{summary['memory_ratio']} less; the padded "
          f"arrays themselves {summary['arrays_mb']:,} MB), {summary[f'{first}_seconds']} s -> "
          f"{summary[f'{second}_seconds']} s (x{summary['time_ratio']})", flush=True)
    if args.train_epochs:
        same = " (the same arrays, so the same model)" if {first, second} == {"old", "new"} else ""
        print(f"[ranker_read] with {args.train_epochs} training epoch(s): the process's growth "
              f"{summary[f'{first}_trainer_mb']:,} MB -> {summary[f'{second}_trainer_mb']:,} MB, training "
              f"{summary[f'{first}_train_seconds']} s -> {summary[f'{second}_train_seconds']} s; validation NDCG@10 "
              f"{summary[f'{first}_validation_ndcg']} / {summary[f'{second}_validation_ndcg']}{same}", flush=True)
    result = {"command": "python benchmarks/ranker_read_memory.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "users": args.users, "items": args.items, "events": args.events, "seed": args.seed,
              "actions": args.actions, "readers": [first, second], **sizes, "identical": check.get("identical"),
              "summary": summary,
              "runs": [check] + timings}
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=1)
        print(f"[ranker_read] wrote {args.output}", flush=True)
    return 0 if check.get("identical") else 1


if __name__ == "__main__":
    sys.exit(main())
