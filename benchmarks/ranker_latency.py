"""Latency of ranking 500 candidates for one user: in-process, and through the client over REST and gRPC.

    python benchmarks/ranker_latency.py --output artifacts [--candidates 500] [--requests 200]

The model is the pushed ``ranker`` (the latest version under ``<output>/serving/ranker``);
requests are real test users of the pipeline's exposures: their history (up to 500 items)
and ``--candidates`` candidates (the unit's merged candidates, topped up with catalogue items
when fewer) with their retrieval features. Printed and written to
``metrics/<dataset>.ranker_latency.json``: p50/p99 (ms) and throughput per path, and each
path's p50 over in-process, CPU milliseconds per request (client process and server process, all
threads), and the 1-minute load average before and after. Sequential requests; the server runs in
its own process.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import recsys  # noqa: E402,F401

from benchmarks.serving_overhead import ServerProcess, process_cpu_seconds, summarize  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", default="artifacts")
    ap.add_argument("--dataset", default="movielens-100k")
    ap.add_argument("--candidates", type=int, default=500)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args(argv)
    import numpy as np
    import tensorflow as tf

    from export.ranker_evaluate import batch_inputs, read_requests
    from recsys import names as N
    from serving.client import RecommenderClient
    from tfx_pipeline.artifacts import latest_output_uri
    from tfx_pipeline.layout import Layout
    from transform import examples_io

    layout = Layout(os.path.abspath(args.output), args.dataset)
    base = os.path.join(layout.serving_dir, N.RANKER)
    versions = sorted(glob.glob(os.path.join(base, "*")), key=lambda p: int(os.path.basename(p)))
    if not versions:
        raise SystemExit(f"no pushed ranker under {base}: run `recsys run` first (the ranker is pushed only when "
                         f"it passes its gate)")
    req = read_requests(latest_output_uri(layout, "ExposureBuilder", "exposures"), "test")
    catalogue = examples_io.read_catalog(latest_output_uri(layout, "SequenceExampleGen", "examples")).item_ids.tolist()
    n = args.candidates
    width = len(N.RANKER_SOURCES) * len(N.RANKER_SOURCE_FEATURES)
    for r in range(len(req["user_ids"])):  # top up every unit to exactly n candidates
        have = req["candidates"][r][:n]
        extra = [i for i in catalogue if i not in set(have)][:n - len(have)]
        feats = np.zeros((n, req["features"][r].shape[1]), np.float32)
        feats[:len(have)] = req["features"][r][:len(have)]
        req["candidates"][r], req["features"][r] = have + extra, feats
        req["history"][r], req["types"][r], req["gaps"][r] = (req["history"][r][-500:], req["types"][r][-500:],
                                                              req["gaps"][r][-500:])
    units = [r % len(req["user_ids"]) for r in range(args.requests)]
    fn = tf.saved_model.load(versions[-1]).signatures[N.RANK]
    wanted = set(fn.structured_input_signature[1])  # a ranker exported before request_time lacks it
    inputs = [{k: tf.constant(v) for k, v in batch_inputs(req, range(u, u + 1)).items() if k in wanted}
              for u in units]

    def timed(call, items, server_pid=None) -> dict:
        for x in items[:5]:
            call(x)  # warm
        lat = []
        cpu0, server0 = process_cpu_seconds(), process_cpu_seconds(server_pid) if server_pid else 0.0
        start = time.perf_counter()
        for x in items:
            t0 = time.perf_counter()
            call(x)
            lat.append(time.perf_counter() - t0)
        result = summarize(lat, time.perf_counter() - start)
        # CPU per request (all threads): what the call costs the machine, far less sensitive to
        # the other jobs on the cores than latency
        result["client_cpu_ms"] = round((process_cpu_seconds() - cpu0) * 1000 / len(items), 3)
        result["server_cpu_ms"] = round((process_cpu_seconds(server_pid) - server0) * 1000 / len(items), 3) \
            if server_pid else 0.0
        return result

    load_before = os.getloadavg()
    results = {"in-process": timed(lambda x: fn(**x), inputs)}
    sources = []
    for u in units:
        f = req["features"][u]
        by = {}
        for s_idx, s in enumerate(N.RANKER_SOURCES):
            got = [(req["candidates"][u][c], f[c, s_idx * 3 + 1], f[c, s_idx * 3 + 2]) for c in range(n)
                   if f[c, s_idx * 3] > 0]
            by[s] = [(i, sc) for i, sc, _ in sorted(got, key=lambda x: -x[2])]
        sources.append(by)
    with ServerProcess(N.RANKER, base) as server:
        for protocol, port in (("REST", server.rest_port), ("gRPC", server.grpc_port)):
            client = RecommenderClient(f"127.0.0.1:{port}", protocol=protocol.lower(), model_name=N.RANKER)

            def call(i, client=client):
                u = units[i]
                client.rank(req["user_ids"][u], req["candidates"][u], sources=sources[i], history=req["history"][u],
                            history_types=req["types"][u], history_gaps=[int(g) for g in req["gaps"][u]])

            results[protocol] = timed(call, list(range(len(units))), server.process.pid)
            client.close()
    floor = results["in-process"]["p50_ms"]
    for name, r in results.items():
        r["p50_over_in_process_ms"] = round(r["p50_ms"] - floor, 3)
        print(f"[ranker latency] {name:<10} p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  "
              f"{r['throughput_rps']:.0f} req/s  (+{r['p50_over_in_process_ms']:.2f} ms over in-process)  "
              f"CPU/request {r['client_cpu_ms']:.2f} client + {r['server_cpu_ms']:.2f} server ms")
    load_after = os.getloadavg()
    print(f"[ranker latency] load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min)")
    report = {"dataset": args.dataset, "model_version": os.path.basename(versions[-1]), "candidates": n,
              "requests": args.requests, "width": width,
              "command": "python benchmarks/ranker_latency.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
              "load_average_1min": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
              "cores": os.cpu_count(), "results": results}
    path = layout.metrics_path.replace(".json", ".ranker_latency.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"[ranker latency] wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
