"""Our Beam transforms on the in-memory runner and on Beam's Dask runner (a local dask.distributed cluster).

    python benchmarks/dask_runner.py [--users 50] [--runs 3] [--workers 2] [--npartitions 2] [--output FILE.json]

Builds the first ``--users`` MovieLens-100K users' events as ``SequenceExampleGen`` does and runs each of
``BuildSequenceRows``, ``SplitRankingWindow`` and ``BuildGraph`` (``transform/``) ``--runs`` times on each
runner, alternating: ``DEFAULT_BEAM_ARGS`` (``FnApiRunner``, in memory, one worker) and
``--runner=apache_beam.runners.dask.dask_runner.DaskRunner --dask_client_address=<scheduler>
--dask_npartitions=<--npartitions>`` (``0``: leave it out, Beam's 128 elements per partition) against a
``LocalCluster`` of ``--workers`` single-threaded worker processes, started once (its start-up and one
warm-up run per transform, which imports TensorFlow in the workers, are not timed). Every output of a
pipeline flows into one sink (the Dask runner computes only the pipeline's last leaf), the same on both
runners. Prints seconds per run (median) and Dask / in-memory, and whether the outputs are equal:
``tests/transform/test_dask_runner.py`` says which differ and why. Timings on a shared machine: run
it alone, e.g. ``taskset -c 1`` for one core.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import apache_beam as beam  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from recsys import features as F  # noqa: E402
from tfx_pipeline.pipeline import DEFAULT_BEAM_ARGS  # noqa: E402
from transform import graph as G  # noqa: E402
from transform import ranking_window as RW  # noqa: E402
from transform import sequences  # noqa: E402

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"


def _dump(value, path):
    with open(path, "wb") as f:
        pickle.dump(value, f)


def run(build, args, path, sort: bool = True) -> dict[str, list]:
    """``build(pipeline) -> {name: PCollection}`` run with ``args``; the outputs' elements by name (sorted when
    ``sort``). All outputs flow into one sink (a file the workers write), the pipeline's last transform: the
    Dask runner computes only the last leaf. ``tests/transform/test_dask_runner.py`` runs through this too."""
    if os.path.exists(path):
        os.remove(path)
    p = beam.Pipeline(options=PipelineOptions(list(args)))
    outputs = build(p)
    tagged = [pc | f"Tag-{name}" >> beam.Map(lambda x, n=name: (n, x)) for name, pc in outputs.items()]
    tagged.append(p | "Ran" >> beam.Create([(None, None)]))  # the sink writes even when every output is empty
    # one GroupByKey, not combiners.ToList: a global combine reads its result as a side input, which the Dask
    # runner computes again inside a worker task (its upstream graph twice)
    _ = (tagged | "Outputs" >> beam.Flatten() | "OneKey" >> beam.Map(lambda x: (None, x))
         | "All" >> beam.GroupByKey() | "Dump" >> beam.MapTuple(lambda _, pairs: _dump(list(pairs), str(path))))
    result = p.run()
    try:
        result.wait_until_finish()
    finally:
        if getattr(result, "client", None) is not None:  # the Dask runner leaves its client open
            result.client.close()
    with open(path, "rb") as f:
        pairs = pickle.load(f)
    assert (None, None) in pairs
    got = {name: [x for n, x in pairs if n == name] for name in outputs}
    return {name: sorted(v) for name, v in got.items()} if sort else got


def movielens(users: int):
    from recsys.data import load_dataset

    ds = load_dataset("movielens-100k")
    keep = set(sorted(ds.events["user_id"].unique())[:users])
    ev = ds.events[ds.events["user_id"].isin(keep)]
    records = [(u, sequences.Event(int(t), i, e, o, int(seq)))
               for seq, u, i, e, t, o in zip(ev.index, ev["user_id"], ev["item_id"], ev["event_type"],
                                             ev["timestamp"], ev["order_id"])]
    return records, dict(zip(ds.items["item_id"], ds.items["category"])), ds.items["item_id"].tolist(), ds.protocol


def canon(out: dict[str, list]) -> dict[str, list]:
    import tensorflow as tf

    return {k: sorted(tf.train.Example.FromString(r).SerializeToString(deterministic=True) for r in v)
            for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--npartitions", type=int, default=2, help="--dask_npartitions; 0: Beam's default")
    ap.add_argument("--output", default="")
    a = ap.parse_args()

    from distributed import LocalCluster

    records, category, item_ids, protocol = movielens(a.users)
    tmp = tempfile.mkdtemp(prefix="dask_bench_")
    train = run(lambda p: (p | beam.Create(records, reshuffle=False)
                           | sequences.BuildSequenceRows(category, protocol, 50)),
                DEFAULT_BEAM_ARGS, os.path.join(tmp, "rows.pkl"))[F.TRAIN]

    def graph(p):
        out = p | beam.Create(train, reshuffle=False) | G.BuildGraph(item_ids, protocol)
        return {F.EDGES: out[F.EDGES], F.ITEM_NEIGHBOURS: out[F.ITEM_NEIGHBOURS]}

    transforms = {
        "BuildSequenceRows": lambda p: (p | beam.Create(records, reshuffle=False)
                                        | sequences.BuildSequenceRows(category, protocol, 50)),
        "SplitRankingWindow": lambda p: p | beam.Create(train, reshuffle=False) | RW.SplitRankingWindow(window=3),
        "BuildGraph": graph,
    }
    rows = []
    with LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        runners = {"in_memory": list(DEFAULT_BEAM_ARGS),
                   "dask": [f"--runner={DASK_RUNNER}", f"--dask_client_address={cluster.scheduler_address}"]
                   + ([f"--dask_npartitions={a.npartitions}"] if a.npartitions else [])}
        for name, build in transforms.items():
            outputs = {r: canon(run(build, args, os.path.join(tmp, f"{r}.pkl"))) for r, args in runners.items()}
            secs = {r: [] for r in runners}
            for _ in range(a.runs):
                for r, args in runners.items():
                    start = time.perf_counter()
                    run(build, args, os.path.join(tmp, f"{r}.pkl"))
                    secs[r].append(time.perf_counter() - start)
            med = {r: statistics.median(s) for r, s in secs.items()}
            same = {k: outputs["dask"][k] == outputs["in_memory"][k] for k in outputs["in_memory"]}
            rows.append({"transform": name, "in_memory_s": round(med["in_memory"], 2), "dask_s": round(med["dask"], 2),
                         "ratio": round(med["dask"] / med["in_memory"], 2), "same_output": same,
                         "runs": {r: [round(x, 2) for x in s] for r, s in secs.items()}})
            print(f"{name:<20} in-memory {med['in_memory']:6.2f} s   dask {med['dask']:6.2f} s   "
                  f"dask/in-memory {med['dask'] / med['in_memory']:5.2f}x   same output: "
                  + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in same.items()), flush=True)
    result = {"users": a.users, "events": len(records), "runs": a.runs, "dask_workers": a.workers,
              "dask_npartitions": a.npartitions or "Beam's default (128 elements per partition)",
              "load_average": os.getloadavg(), "rows": rows}
    if a.output:
        with open(a.output, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
