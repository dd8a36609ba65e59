"""ScaNN at a million items, through the served SavedModel path, against its brute-force twin.

    python benchmarks/scann_scale.py [--items 1000000] [--output docs/results/scann_scale.json]

Catalogue: ``--items`` clustered unit vectors of the two-tower's embedding dimension
(``TwoTowerConfig.embedding_dim``, 64): ``--clusters`` random unit centres, each item its
centre plus isotropic noise of norm ``--noise``, renormalised. Queries are drawn the same way
(fresh points, not catalogue items), like user vectors landing near the catalogue's clusters.

Every model is the exporter's: ``export.retrieval.RetrievalModule`` over an (untrained, real)
two-tower ``Towers`` with ``index=scann`` (the exporter's ``scann_layer``) or ``index=brute_force``,
``max_k=100`` and ``max_exclude=500`` as ``IndexBuilder`` exports them (ScaNN returns 600
candidates, the exclusion mask is applied, then top-k), saved with ``export.twins.save``,
loaded back with ``tf.saved_model.load`` in this process, and called through its
``recommend_vector`` signature (query vector, ``k``=10, no exclusions).

Per configuration: index build seconds, the ScaNN index's state (bytes of its serialised
searcher tensors) and the process's RSS growth on loading the SavedModel, SavedModel size on
disk, batched latency (``--batch`` queries per call, median over the batches) and queries/s,
single-request latency (p50/p95 over ``--single`` one-query calls) and recall@10 against the
brute-force twin's exact top-10 on the same queries (every query of every batch). Speed-ups
are ratios to the brute-force twin timed in the same stretch: both models stay loaded and are
called alternately, batch by batch and request by request (another job's load hits both alike).
Each row runs in a fresh process (TF never frees a loaded ScaNN searcher: one process for the
sweep grew to 13 GB at 1M items); the twin is saved once per catalogue size and loaded by each. Then the settings
``default_scann_params`` picks at 1,682 / 14,190 / 100,000 / 1,000,000 items (the first n
vectors of the same catalogue), each measured the same way.

Written to ``--output`` (JSON): section ``sweep`` and section ``defaults``, each with the command that
produced it and the load averages before/after every row; a run rewrites only the sections it ran
(``--sweep none`` or ``--default-sizes ''`` skips one).
"""
from __future__ import annotations

import argparse
import atexit
import gc
import json
import multiprocessing
import os
import resource
import shlex
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import recsys  # noqa: E402,F401  (legacy Keras before TF loads)

#: (num_leaves, num_leaves_to_search, num_reordering_candidates); final_k (600) is the floor for reordering
SWEEP = [
    (1000, 25, 600), (1000, 50, 600), (1000, 100, 600),
    (2000, 40, 600), (2000, 100, 600), (2000, 200, 600),
    (2000, 100, 1200),
    (4000, 100, 600), (4000, 200, 600),
]
DEFAULT_SIZES = [1682, 14190, 100_000, 1_000_000]


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def dir_mb(path: str) -> float:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files) / 2**20


def clustered_unit_vectors(n: int, dim: int, clusters: int, noise: float, rng) -> tuple:
    import numpy as np

    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(m):
        g = rng.standard_normal((m, dim)).astype(np.float32)
        g *= noise / np.linalg.norm(g, axis=1, keepdims=True)
        x = centres[rng.integers(0, clusters, m)] + g
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return draw, np.concatenate([draw(min(200_000, n - i)) for i in range(0, n, 200_000)])


def towers(dim: int, vocab_size: int):
    """A real (untrained) two-tower ``Towers`` module: the exporter traces its query tower into every model."""
    import tensorflow as tf

    from trainer.two_tower import Towers, TwoTowerConfig, TwoTowerModel

    config = TwoTowerConfig(embedding_dim=dim)
    model = TwoTowerModel(vocab_size, 4, config)
    model.query_tower(tf.zeros([1, config.max_history], tf.int32))
    model.item_tower(tf.zeros([1], tf.int32), tf.zeros([1], tf.int32))
    return Towers(model, config.max_history), config.max_history


class Bench:
    def __init__(self, args, item_ids, embeddings, queries):
        self.args = args
        self.ids = item_ids
        self.emb = embeddings
        self.queries = queries  # [num_batches * batch, D]
        self.towers, self.max_history = towers(embeddings.shape[1], 1000)

    def module(self, n: int, index: str, params):
        from export.retrieval import RetrievalModule

        vocab = [str(i) for i in self.ids[:1000]]
        users = ["u0", "u1"]
        return RetrievalModule(self.towers, vocab, self.ids[:n], self.emb[:n], users, [vocab[:3], vocab[3:5]],
                               index=index, max_k=self.args.max_k, max_exclude=self.args.max_exclude,
                               max_history=self.max_history, scann_params=params)

    def serve(self, n: int, index: str, params, keep_dir: str = "") -> tuple[dict, object]:
        """Builds, saves and loads one served model; returns its build figures and ``call(queries) -> top-10 ids``.

        ``keep_dir``: save it there and keep it (the brute-force twin, loaded again by each ScaNN row)."""
        import numpy as np
        import tensorflow as tf

        from export import twins

        gc.collect()
        t0 = time.perf_counter()
        m = self.module(n, index, params)
        build_s = time.perf_counter() - t0
        state_mb = None
        if index == "scann":
            state = m.scann._serialized_searcher
            state_mb = sum(int(np.prod(v.shape)) * v.dtype.size if v.dtype != tf.string else
                           sum(len(s) for s in np.atleast_1d(v.numpy())) for v in state.variables) / 2**20
        path = keep_dir or tempfile.mkdtemp(prefix=f"scann_scale_{index}_", dir=self.args.workdir)
        t0 = time.perf_counter()
        twins.save(m, path)
        save_s = time.perf_counter() - t0
        del m
        gc.collect()
        size_mb = dir_mb(path)
        rss0 = rss_mb()
        t0 = time.perf_counter()
        call = self.load(path)
        load_s = time.perf_counter() - t0
        rss_load_mb = rss_mb() - rss0
        if not keep_dir:
            shutil.rmtree(path, ignore_errors=True)
        info = {"index": index, "items": n, "params": None if params is None else vars(params),
                "build_s": round(build_s, 2), "save_s": round(save_s, 2), "load_s": round(load_s, 2),
                "index_state_mb": None if state_mb is None else round(state_mb, 1),
                "rss_on_load_mb": round(rss_load_mb, 1), "savedmodel_mb": round(size_mb, 1)}
        return info, call

    def load(self, path: str):
        """``call(queries) -> top-10 ids`` of the SavedModel at ``path`` (loaded and called once)."""
        import tensorflow as tf

        loaded = tf.saved_model.load(path)
        fn = loaded.signatures["recommend_vector"]

        def call(q):
            b = len(q)
            out = fn(embedding=tf.constant(q), k=tf.fill([b], 10), exclude=tf.fill([b, 1], ""))
            return out["item_ids"].numpy()

        call.loaded = loaded  # keeps the model alive as long as ``call``
        call(self.queries[:self.args.batch])  # first call: creates the searcher from its state
        return call

    def time_interleaved(self, calls: dict) -> dict:
        """Times every model of ``calls`` on the same queries, alternating model by model, batch by batch and
        request by request, so that a change of machine load hits all of them alike."""
        import numpy as np

        a = self.args
        batch_ms = {k: [] for k in calls}
        single_ms = {k: [] for k in calls}
        got = {k: [] for k in calls}
        for i in range(0, len(self.queries), a.batch):
            for k, call in calls.items():
                t0 = time.perf_counter()
                got[k].append(call(self.queries[i:i + a.batch]))
                batch_ms[k].append((time.perf_counter() - t0) * 1000)
        for i in range(a.single + 5):
            for k, call in calls.items():
                t0 = time.perf_counter()
                call(self.queries[i:i + 1])
                if i >= 5:
                    single_ms[k].append((time.perf_counter() - t0) * 1000)
        out = {}
        for k in calls:
            med = float(np.median(batch_ms[k]))
            out[k] = {"batch_ms": round(med, 3), "queries_per_s": round(a.batch / med * 1000, 1),
                      "single_p50_ms": round(float(np.percentile(single_ms[k], 50)), 3),
                      "single_p95_ms": round(float(np.percentile(single_ms[k], 95)), 3),
                      "top10": np.concatenate(got[k])}
        return out

    def raw(self, configs, log) -> dict:
        """Where the served time goes: the bare ScaNN layer (``scann_layer``, no SavedModel, no id/exclusion
        handling) returning 10 and ``scann_k`` neighbours, and a bare TF matmul + top_k(10), timed interleaved."""
        import numpy as np
        import tensorflow as tf

        from export.retrieval import ScannParams, scann_layer

        a = self.args
        n = len(self.ids)
        k = a.max_k + a.max_exclude
        cand = tf.constant(self.emb)

        @tf.function(input_signature=[tf.TensorSpec([None, self.emb.shape[1]], tf.float32)])
        def brute_force(q):
            return tf.math.top_k(tf.matmul(q, cand, transpose_b=True), 10).indices

        exact = np.concatenate([brute_force(self.queries[i:i + a.batch]).numpy()
                                for i in range(0, len(self.queries), a.batch)])
        exact = self.ids[exact].astype(bytes)  # the layer returns ids
        rows = []
        for cfg in configs:
            p = cfg if isinstance(cfg, ScannParams) else ScannParams(*cfg)
            load0 = load_average()
            t0 = time.perf_counter()
            layer = scann_layer(self.emb, self.ids, k, p)
            build_s = time.perf_counter() - t0
            calls = {"bf": lambda q: brute_force(q).numpy(),
                     "scann_k10": lambda q: layer(tf.constant(q), k=10)[1].numpy(),
                     f"scann_k{k}": lambda q: layer(tf.constant(q))[1].numpy()[:, :10]}
            for c in calls.values():
                c(self.queries[:a.batch])
            t = self.time_interleaved(calls)
            row = {"params": vars(p), "build_s": round(build_s, 2), "load_average_before": load0}
            for name, v in t.items():
                got = v.pop("top10")
                if name != "bf":
                    v["recall@10"] = round(float(np.mean([len(set(g) & set(e)) / 10 for g, e in
                                                          zip(got.tolist(), exact.tolist())])), 4)
                    v["speedup_batch"] = round(t["bf"]["batch_ms"] / v["batch_ms"], 2)
                    v["speedup_single"] = round(t["bf"]["single_p50_ms"] / v["single_p50_ms"], 2)
                row[name] = v
            row["load_average_after"] = load_average()
            rows.append(row)
            log(f"[raw] {n:,} items {p}: bare brute force batch {t['bf']['batch_ms']:.1f} ms single "
                f"{t['bf']['single_p50_ms']:.2f} ms; " + "; ".join(
                    f"{name} recall@10 {v['recall@10']:.4f} batch {v['batch_ms']:.2f} ms ({v['speedup_batch']:.1f}x) "
                    f"single {v['single_p50_ms']:.3f} ms ({v['speedup_single']:.1f}x)"
                    for name, v in row.items() if name.startswith("scann_")) + f"; load {row['load_average_after']}")
            del layer
            gc.collect()
        return {"rows": rows}

    def brute_force_row(self, n: int, twin_dir: str) -> dict:
        """The twin alone: saved to ``twin_dir`` (kept for the ScaNN rows), its exact top-10 beside it."""
        import numpy as np

        load0 = load_average()
        bf, call = self.serve(n, "brute_force", None, keep_dir=twin_dir)
        t = self.time_interleaved({"bf": call})["bf"]
        np.save(os.path.join(twin_dir, "exact_top10.npy"), t.pop("top10").astype(str))
        bf.update(t, load_average_before=load0, load_average_after=load_average())
        return bf

    def scann_row(self, n: int, params: dict, twin_dir: str) -> dict:
        """One ScaNN configuration, timed interleaved with the twin loaded from ``twin_dir``."""
        import numpy as np

        from export.retrieval import ScannParams

        p = ScannParams(**params)
        load0 = load_average()
        row, call = self.serve(n, "scann", p)
        bf_call = self.load(twin_dir)
        exact = np.load(os.path.join(twin_dir, "exact_top10.npy"))
        t = self.time_interleaved({"scann": call, "bf": bf_call})
        got = t["scann"].pop("top10").astype(str)
        hits = [len(set(g) & set(e)) / 10 for g, e in zip(got.tolist(), exact.tolist())]
        row.update(t["scann"], **{"recall@10": round(float(np.mean(hits)), 4)})
        row["brute_force_batch_ms"] = t["bf"]["batch_ms"]
        row["brute_force_single_p50_ms"] = t["bf"]["single_p50_ms"]
        row["speedup_batch"] = round(t["bf"]["batch_ms"] / row["batch_ms"], 2)
        row["speedup_single"] = round(t["bf"]["single_p50_ms"] / row["single_p50_ms"], 2)
        row.update(load_average_before=load0, load_average_after=load_average())
        return row


def _row_process(data_dir: str, args: dict, method: str, row_args: tuple, out) -> None:
    """A row in a fresh process: a loaded ScaNN searcher is never freed (TF's resource manager keeps it),
    so one process for the whole sweep would grow by about a model per row (13 GB at 1M items)."""
    import numpy as np

    import scann  # noqa: F401
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    emb = np.load(os.path.join(data_dir, "embeddings.npy"))
    queries = np.load(os.path.join(data_dir, "queries.npy"))
    ids = np.load(os.path.join(data_dir, "ids.npy")).astype(object)
    bench = Bench(argparse.Namespace(**args), ids, emb, queries)
    row = getattr(bench, method)(*row_args)
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out.put(row)


def in_fresh_process(data_dir: str, args, method: str, *row_args) -> dict:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_row_process, args=(data_dir, vars(args), method, row_args, out))
    proc.start()
    row = out.get()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"{method}{row_args} failed (exit code {proc.exitcode})")
    return row


def run_size(data_dir: str, args, n: int, configs, label: str, log) -> dict:
    """The brute-force twin, then each ScaNN configuration timed against it, each row in a fresh process."""
    from export.retrieval import ScannParams

    twin_dir = tempfile.mkdtemp(prefix="scann_scale_twin_", dir=args.workdir)
    try:
        bf = in_fresh_process(data_dir, args, "brute_force_row", n, twin_dir)
        log(f"[{label}] {n:,} items brute force: batch {bf['batch_ms']:.1f} ms ({bf['queries_per_s']:.0f} q/s), "
            f"single p50 {bf['single_p50_ms']:.2f} ms, SavedModel {bf['savedmodel_mb']:.0f} MB; "
            f"load {bf['load_average_after']}")
        rows = []
        for cfg in configs:
            p = cfg if isinstance(cfg, ScannParams) else ScannParams(*cfg)
            row = in_fresh_process(data_dir, args, "scann_row", n, vars(p), twin_dir)
            rows.append(row)
            log(f"[{label}] {n:,} items ScaNN {p}: recall@10 {row['recall@10']:.4f}, build {row['build_s']:.1f} s, "
                f"batch {row['batch_ms']:.2f} ms vs {row['brute_force_batch_ms']:.1f} ({row['speedup_batch']:.1f}x), "
                f"single p50 {row['single_p50_ms']:.3f} ms vs {row['brute_force_single_p50_ms']:.2f} "
                f"({row['speedup_single']:.1f}x), index {row['index_state_mb']:.0f} MB, SavedModel "
                f"{row['savedmodel_mb']:.0f} MB, peak RSS {row['peak_rss_mb']:,.0f} MB; load {row['load_average_after']}")
    finally:
        shutil.rmtree(twin_dir, ignore_errors=True)
    return {"brute_force": bf, "scann": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--noise", type=float, default=0.6, help="norm of each point's offset from its cluster centre")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--batches", type=int, default=4, help="batches of queries (recall is over all of them)")
    ap.add_argument("--single", type=int, default=200, help="single-query requests")
    ap.add_argument("--max-k", type=int, default=100)
    ap.add_argument("--max-exclude", type=int, default=500)
    ap.add_argument("--sweep", default="all", help="'all', 'none', or ';'-separated leaves,search,reorder")
    ap.add_argument("--sweep-name", default="sweep", help="the JSON section the sweep is written to")
    ap.add_argument("--raw", default="none", help="';'-separated leaves,search,reorder to time as bare layers")
    ap.add_argument("--default-sizes", default=",".join(map(str, DEFAULT_SIZES)), help="'' to skip")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="where SavedModels are written (deleted after each)")
    ap.add_argument("--output", default="docs/results/scann_scale.json")
    args = ap.parse_args(argv)

    import numpy as np
    import scann  # noqa: F401  (registers the ScaNN ops for loading)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # Keras' save-time warnings about the untrained towers

    from export.retrieval import default_scann_params
    from trainer.two_tower import TwoTowerConfig

    dim = TwoTowerConfig().embedding_dim
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    draw, emb = clustered_unit_vectors(args.items, dim, args.clusters, args.noise, rng)
    queries = draw(args.batch * args.batches)
    ids = np.array([f"i{i:07d}" for i in range(args.items)], dtype=object)
    print(f"[scann_scale] {args.items:,} x {dim} clustered unit vectors ({args.clusters} clusters, noise {args.noise}) "
          f"and {len(queries)} queries in {time.perf_counter() - t0:.1f} s; TF threads intra "
          f"{tf.config.threading.get_intra_op_parallelism_threads()} inter "
          f"{tf.config.threading.get_inter_op_parallelism_threads()}, {os.cpu_count()} CPUs; load {load_average()}",
          flush=True)
    data_dir = tempfile.mkdtemp(prefix="scann_scale_data_", dir=args.workdir)  # the vectors, for the row processes
    atexit.register(shutil.rmtree, data_dir, True)
    np.save(os.path.join(data_dir, "embeddings.npy"), emb)
    np.save(os.path.join(data_dir, "queries.npy"), queries)
    np.save(os.path.join(data_dir, "ids.npy"), ids.astype(str))
    log = lambda m: print(m, flush=True)  # noqa: E731
    if args.sweep == "all":
        sweep = SWEEP
    elif args.sweep == "none":
        sweep = []
    else:
        sweep = [tuple(int(x) for x in s.split(",")) for s in args.sweep.split(";")]
    k = args.max_k + args.max_exclude
    command = "python benchmarks/" + os.path.basename(__file__) + "".join(
        " " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    setup = {"items": args.items, "dim": dim, "clusters": args.clusters, "noise": args.noise, "seed": args.seed,
             "batch": args.batch, "batches": args.batches, "single_requests": args.single,
             "max_k": args.max_k, "max_exclude": args.max_exclude, "scann_k": k, "cpus": os.cpu_count()}
    # each section keeps the command that produced it: a run rewrites only the sections it ran
    result = {}
    if os.path.exists(args.output):
        with open(args.output, encoding="utf-8") as f:
            result = json.load(f)
    if sweep:
        start, load0 = time.perf_counter(), load_average()
        result[args.sweep_name] = dict(command=command, setup=setup, load_average_start=load0,
                               **run_size(data_dir, args, args.items, sweep, "sweep", log),
                               load_average_end=load_average(), elapsed_s=round(time.perf_counter() - start, 1))
    if args.raw != "none":
        start, load0 = time.perf_counter(), load_average()
        raw = Bench(args, ids, emb, queries).raw([tuple(int(x) for x in c.split(",")) for c in args.raw.split(";")], log)
        result["raw"] = dict(command=command, setup=setup, load_average_start=load0, **raw,
                             load_average_end=load_average(), elapsed_s=round(time.perf_counter() - start, 1))
    sizes = [min(int(s), args.items) for s in args.default_sizes.split(",") if s]
    if sizes:
        start, load0 = time.perf_counter(), load_average()
        rows = {}
        for n in sizes:
            rows[str(n)] = run_size(data_dir, args, n, [default_scann_params(n, k)], "default", log)
        result["defaults"] = dict(command=command, setup=setup, load_average_start=load0, sizes=rows,
                                  load_average_end=load_average(), elapsed_s=round(time.perf_counter() - start, 1))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"[scann_scale] wrote {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
