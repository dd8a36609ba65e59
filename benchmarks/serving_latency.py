"""Latency of the pushed models: ScaNN vs brute force, retrieval vs generative, in-process vs REST vs gRPC.

    python benchmarks/serving_latency.py --output artifacts [--requests 200]

Every figure is measured in this process against a baseline measured in the
same run (the brute-force twin called in-process), on real users' histories
from the pipeline's test split. Prints a table of p50/p95 milliseconds per
single-user request and the ratio to the baseline, plus ScaNN's recall@10
against brute force on the same requests, and writes them to
``metrics/<dataset>.serving_latency.json`` (the README's latency table). Models that were not pushed (the
dual-head ones when they did not pass their gate) are skipped and listed.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time

import numpy as np

import recsys  # noqa: F401


def _percentiles(ms: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(ms, n=20)
    return statistics.median(ms), q[18]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--output", default="artifacts")
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--extra", action="append", default=[], metavar="NAME=DIR",
                   help="also time a SavedModel that was not pushed (in-process only), e.g. the "
                        "DualHeadExporter's bruteforce_model/<id>/Format-Serving")
    args = p.parse_args(argv)

    import scann  # noqa: F401
    import tensorflow as tf

    from recsys import features as F
    from transform import examples_io
    from serving.client import RecommenderClient
    from serving.server import ModelServer, model_server_config
    from tfx_pipeline.artifacts import latest_version_dir
    from tfx_pipeline.layout import Layout

    layout = Layout(os.path.abspath(args.output), args.dataset)
    examples = sorted(glob.glob(os.path.join(layout.pipeline_root, "SequenceExampleGen", "examples", "*")))
    if not examples:
        print(f"No pipeline output under {layout.pipeline_root}; run `recsys run --output {args.output}` first.",
              file=sys.stderr)
        return 1
    rows = examples_io.read_rows(examples[-1], F.TEST)
    histories = [h[-50:] for h in rows.histories][: args.requests]
    from tfx_pipeline.artifacts import ArtifactNotFound
    from recsys.names import (DUAL_RETRIEVAL, DUAL_RETRIEVAL_BRUTE_FORCE, GENERATIVE, RETRIEVAL,
                              RETRIEVAL_BRUTE_FORCE)

    dirs = {}
    for name in (RETRIEVAL, RETRIEVAL_BRUTE_FORCE, DUAL_RETRIEVAL, DUAL_RETRIEVAL_BRUTE_FORCE, GENERATIVE):
        try:
            dirs[name] = latest_version_dir(os.path.join(layout.serving_dir, name))
        except ArtifactNotFound:
            print(f"(skipping {name}: not pushed)")
    if RETRIEVAL_BRUTE_FORCE not in dirs:
        print("The baseline retrieval_bruteforce was never pushed; nothing to compare against.", file=sys.stderr)
        return 1

    extra = dict(kv.split("=", 1) for kv in args.extra)
    results: dict[str, list[float]] = {}
    answers: dict[str, list[list[str]]] = {}
    for name, path in {**dirs, **extra}.items():
        fn = tf.saved_model.load(path).signatures["serving_default"]
        fn(history=tf.constant([histories[0]]), k=tf.constant([args.k]), exclude=tf.constant([[""]]))  # trace
        ms, out = [], []
        for h in histories:
            t0 = time.perf_counter()
            res = fn(history=tf.constant([h]), k=tf.constant([args.k]), exclude=tf.constant([[""]]))
            ms.append((time.perf_counter() - t0) * 1000)
            out.append([i.decode() for i in res["item_ids"].numpy()[0]])
        results[f"{name} in-process"] = ms
        answers[name] = out

    config = model_server_config({n: os.path.dirname(d) for n, d in dirs.items()})
    with ModelServer(config, grpc_port=0, rest_port=0, poll_seconds=0, host="127.0.0.1") as server:
        for protocol, port in (("rest", server.rest_port), ("grpc", server.grpc_port)):
            for name in dirs:
                client = RecommenderClient(f"127.0.0.1:{port}", protocol=protocol, model_name=name, timeout=30)
                client.recommend(history=histories[0], k=args.k)
                ms = []
                for h in histories:
                    t0 = time.perf_counter()
                    client.recommend(history=h, k=args.k)
                    ms.append((time.perf_counter() - t0) * 1000)
                results[f"{name} {protocol.upper()}"] = ms

    base_p50, _ = _percentiles(results["retrieval_bruteforce in-process"])
    print(f"{len(histories)} single-user requests, k={args.k}, {args.dataset} test-split histories")
    print(f"{'path':40s} {'p50 ms':>8s} {'p95 ms':>8s} {'p50 / brute-force in-process':>30s}")
    report = {"dataset": args.dataset, "requests": len(histories), "k": args.k, "paths": {}, "scann_recall": {}}
    for name, ms in results.items():
        p50, p95 = _percentiles(ms)
        print(f"{name:40s} {p50:8.3f} {p95:8.3f} {p50 / base_p50:30.2f}")
        report["paths"][name] = {"p50_ms": round(p50, 3), "p95_ms": round(p95, 3), "ratio": round(p50 / base_p50, 2)}
    for scann_name, exact in ((RETRIEVAL, RETRIEVAL_BRUTE_FORCE), (DUAL_RETRIEVAL, DUAL_RETRIEVAL_BRUTE_FORCE)):
        if scann_name in answers and exact in answers:
            recall = np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(answers[scann_name], answers[exact])])
            print(f"{scann_name}: ScaNN recall@{args.k} against brute force on these requests: {recall:.4f}")
            report["scann_recall"][scann_name] = round(float(recall), 4)
    path = layout.metrics_path.replace(".json", ".serving_latency.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"[latency] written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
