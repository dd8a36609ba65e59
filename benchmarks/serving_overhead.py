"""What the model server adds to a model call: in-process vs REST vs gRPC, sequential and
concurrent, and server-side batching at equal p99 -- all from one run.

    python benchmarks/serving_overhead.py --output artifacts [--model retrieval]
        [--signature recommend_user] [--requests 100] [--rounds 10] [--concurrency 8]
        [--server_call] [--sweep 1,2,4,8,16,32] [--grpc_servers grpcio,h2] [--report PATH]

The model is a pushed SavedModel (default: ``retrieval``'s ``recommend_user``, real user
ids from the pipeline's test split). Paths:

* ``in-process``: the signature function called directly (``tf.saved_model.load``), the
  floor any server adds to;
* ``REST`` / ``gRPC``: :class:`serving.client.RecommenderClient.recommend` against
  :class:`serving.server.ModelServer` on loopback (one client per thread; REST connections
  are kept alive). ``--grpc_servers grpcio,h2`` runs a server process per gRPC server and
  a gRPC path for each (``h2``: the experiment in ``benchmarks/serving_grpc_h2.py``).

``sequential`` sends ``--requests`` one after another; ``concurrent`` runs
``--concurrency`` threads, each sending ``--requests`` / 2 requests. The paths take turns:
``--rounds`` rounds, each running every path's sequential block, then every path's concurrent
block, so drifting load from other processes falls on all of them alike. Printed: p50 and p99
latency (ms) over all rounds, throughput (requests/s), and each path's p50 overhead over
in-process and throughput ratio to in-process (medians of the per-round differences and
ratios), and CPU per sequential request (client and server process). Then the batching sweep: gRPC at 1..32 concurrent clients
without and with ``--enable_batching`` (``--batch_size``, ``--batch_timeout_us``), and the
best throughput of each whose p99 stays within the unbatched p99 at ``--concurrency``.
Figures are comparable within one run only (same machine, same load).
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import statistics
import sys
import threading
import time
from urllib.error import HTTPError

import recsys  # noqa: F401


# --grpc_servers: the model server with grpcio's gRPC server (serving.server), or with the
# experimental h2 one (benchmarks/serving_grpc_h2.py, not adopted).
GRPC_SERVER_COMMANDS = {
    "grpcio": None,
    "h2": [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        "serving_grpc_h2.py"), "--model_server"],
}


def summarize(latencies_s: list[float], wall_s: float) -> dict:
    ms = sorted(x * 1000 for x in latencies_s)
    p99 = ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))]
    return {"p50_ms": round(statistics.median(ms), 3), "p99_ms": round(p99, 3),
            "throughput_rps": round(len(ms) / wall_s, 1), "requests": len(ms)}


def process_cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system, all threads) of this process or of ``pid`` (Linux /proc)."""
    if pid is None:
        return time.process_time()
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def run_sequential(call, users: list[str], server_pid: int | None = None,
                   keep: bool = False) -> dict:
    """Also CPU ms per request: this process's and the server process's (if any). CPU time
    is what the request costs the machine; it varies far less with other load than latency.
    ``keep``: also return the latencies and the wall time (to pool several runs)."""
    latencies = []
    cpu0, server0 = process_cpu_seconds(), process_cpu_seconds(server_pid) if server_pid else 0.0
    start = time.perf_counter()
    for user in users:
        t0 = time.perf_counter()
        call(user)
        latencies.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    result = summarize(latencies, wall)
    if keep:
        result["latencies_s"], result["wall_s"] = latencies, wall
    result["client_cpu_ms"] = round((process_cpu_seconds() - cpu0) * 1000 / len(users), 3)
    result["server_cpu_ms"] = round((process_cpu_seconds(server_pid) - server0) * 1000
                                    / len(users), 3) if server_pid else 0.0
    return result


def run_concurrent(make_call, users: list[str], threads: int, per_thread: int,
                   keep: bool = False) -> dict:
    """``keep``: also return the latencies and the wall time (to pool several runs)."""
    calls = [make_call() for _ in range(threads)]
    for call in calls:
        call(users[0])  # connect, fetch metadata
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)

    def worker(index: int) -> None:
        mine = []
        barrier.wait()
        for i in range(per_thread):
            t0 = time.perf_counter()
            calls[index](users[(index * per_thread + i) % len(users)])
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in pool:
        thread.join()
    wall = time.perf_counter() - start
    result = summarize(latencies, wall)
    if keep:
        result["latencies_s"], result["wall_s"] = latencies, wall
    return result


def server_call(args, version_dir: str, warm_user: str):
    """The server's own model call (``Servable.predict``: checks, feeds, the signature and the
    per-row k) on the same SavedModel, in this process."""
    import numpy as np

    from serving.servable import Servable

    servable = Servable(args.model, int(os.path.basename(version_dir)), version_dir).load()
    k_array, exclude_array = np.array([args.k], np.int32), np.array([[b""]], object)
    user_signature = args.signature == "recommend_user"
    query, shape = ("user_id", (1,)) if user_signature else ("history", (1, 1))

    def call(user: str):
        feeds = {"k": k_array, "exclude": exclude_array,
                 query: np.array([user.encode()], object).reshape(shape)}
        return servable.predict(args.signature, feeds)

    call(warm_user)
    return call


def run_interleaved(callers: dict, users: list[str], args, per_thread: int,
                    server_pids: dict[str, int]) -> dict[str, dict]:
    """Every path in turn, ``args.rounds`` times: a sequential block, then (after all the
    sequential blocks of the round) a concurrent block per path. Load from other processes
    drifts on a shared machine; interleaving gives every path the same share of it, and the
    overheads and ratios are taken within each round, then their median is reported."""
    calls = {name: make() for name, make in callers.items()}
    for call in calls.values():
        call(users[0])  # connect, fetch metadata
    blocks: dict[str, list[dict]] = {}
    for _ in range(args.rounds):
        for name, call in calls.items():
            blocks.setdefault(f"{name} sequential", []).append(
                run_sequential(call, users[: args.requests], server_pids.get(name), keep=True))
        for name, make in callers.items():
            if name.startswith("in-process,"):
                continue  # the server's call, sequentially only
            blocks.setdefault(f"{name} concurrent", []).append(
                run_concurrent(make, users, args.concurrency, per_thread, keep=True))
    results = {}
    for name, runs in blocks.items():
        latencies = [x for r in runs for x in r.pop("latencies_s")]
        wall = sum(r["wall_s"] for r in runs)
        result = summarize(latencies, wall)
        if "client_cpu_ms" in runs[0]:
            for key in ("client_cpu_ms", "server_cpu_ms"):
                result[key] = round(statistics.median(r[key] for r in runs), 3)
        reference = blocks["in-process " + name.split()[-1]]
        result["p50_overhead_ms"] = round(statistics.median(
            r["p50_ms"] - ref["p50_ms"] for r, ref in zip(runs, reference)), 3)
        result["throughput_ratio"] = round(statistics.median(
            ref["throughput_rps"] / r["throughput_rps"] for r, ref in zip(runs, reference)), 2)
        result["rounds"] = [{k: r[k] for k in ("p50_ms", "p99_ms", "throughput_rps")}
                            for r in runs]
        results[name] = result
    return results


class ServerProcess:
    """``python -m serving.server`` in its own process (as deployed: no GIL shared with the
    clients), on free loopback ports; returns once both ports answer."""

    def __init__(self, model: str | None, base_path: str | None, flags: list[str] = (),
                 model_config_file: str | None = None, command: list[str] | None = None):
        """One model (``model`` at ``base_path``) or, with ``model_config_file``, its models.
        ``command``: what to run instead of ``python -m serving.server`` (same flags)."""
        import socket
        import subprocess

        ports = []
        for _ in range(2):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                ports.append(sock.getsockname()[1])
        self.grpc_port, self.rest_port = ports
        self.process = subprocess.Popen(
            [*(command or [sys.executable, "-m", "serving.server"]),
             *([f"--model_config_file={model_config_file}"] if model_config_file else
               [f"--model_name={model}", f"--model_base_path={base_path}"]), f"--port={self.grpc_port}",
             f"--rest_api_port={self.rest_port}", "--file_system_poll_wait_seconds=0",
             "--log_level=WARNING", *flags],
            env=dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2"))

    def __enter__(self) -> "ServerProcess":
        import urllib.request

        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.rest_port}/v1/models/"
                                            "x", timeout=5):
                    break
            except HTTPError:
                break  # answering (404 for model x)
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the model server did not start") from None
                time.sleep(0.2)
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(30)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default="artifacts")
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--model", default="retrieval")
    p.add_argument("--signature", default="recommend_user")
    p.add_argument("--requests", type=int, default=100,
                   help="sequential requests per path and round (concurrent: half per client)")
    p.add_argument("--rounds", type=int, default=10,
                   help="rounds; each runs every path in turn (interleaved)")
    p.add_argument("--server_call", action="store_true",
                   help="also time the server's own model call (serving.servable.Servable."
                        "predict) in-process, sequentially")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--grpc_servers", default="grpcio",
                   help="gRPC servers to compare, comma-separated, of "
                        f"{','.join(GRPC_SERVER_COMMANDS)}: one server process each, every one "
                        "a path (h2: the experiment in benchmarks/serving_grpc_h2.py)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--batch_timeout_us", type=int, default=2000)
    p.add_argument("--sweep", default="1,2,4,8,16,32",
                   help="client counts of the batching sweep ('' skips it)")
    p.add_argument("--report", default=None,
                   help="where to write the JSON report (default: the run's metrics directory, "
                        "<output>/metrics/<dataset>.serving_overhead.json)")
    args = p.parse_args(argv)

    import tensorflow as tf

    from recsys import features as F
    from serving.client import RecommenderClient
    from serving.servable import import_custom_ops
    from tfx_pipeline.artifacts import latest_version_dir
    from tfx_pipeline.layout import Layout
    from transform import examples_io

    layout = Layout(os.path.abspath(args.output), args.dataset)
    base = os.path.join(layout.serving_dir, args.model)
    try:
        version_dir = latest_version_dir(base)
    except Exception:
        print(f"No pushed model {args.model} under {layout.serving_dir}; run `recsys run "
              f"--output {args.output}` first.", file=sys.stderr)
        return 1
    examples = sorted(glob.glob(os.path.join(layout.pipeline_root, "SequenceExampleGen",
                                             "examples", "*")))
    if examples:
        users = examples_io.read_rows(examples[-1], F.TEST).user_ids[: args.requests]
    else:
        users = [str(i) for i in range(1, args.requests + 1)]
    user_signature = args.signature == "recommend_user"

    import_custom_ops()
    fn = tf.saved_model.load(version_dir).signatures[args.signature]
    exclude = tf.constant([[""]])
    k = tf.constant([args.k])

    def in_process(user: str):
        if user_signature:
            return fn(user_id=tf.constant([user]), k=k, exclude=exclude)
        return fn(history=tf.constant([[user]]), k=k, exclude=exclude)

    def client_call(client):
        if user_signature:
            return lambda user: client.recommend(user_id=user, k=args.k)
        return lambda user: client.recommend(history=[user], k=args.k)

    in_process(users[0])
    load_before = os.getloadavg()
    per_thread = max(1, args.requests // 2)
    servable_call = server_call(args, version_dir, users[0]) if args.server_call else None
    grpc_servers = [x for x in args.grpc_servers.split(",") if x]
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(ServerProcess(args.model, base,
                                                     command=GRPC_SERVER_COMMANDS[kind]))
                   for kind in grpc_servers]
        server = servers[0]
        callers = {"in-process": lambda: in_process}
        if servable_call is not None:
            callers["in-process, the server's call"] = lambda: servable_call
        paths = [("REST", "rest", server.rest_port, server.process.pid)]
        for kind, each in zip(grpc_servers, servers):
            name = "gRPC" if len(grpc_servers) == 1 else f"gRPC ({kind})"
            paths.append((name, "grpc", each.grpc_port, each.process.pid))
        server_pids = {}
        for name, protocol, port, pid in paths:
            def make(protocol=protocol, port=port):
                return client_call(RecommenderClient(f"127.0.0.1:{port}", protocol,
                                                     model_name=args.model, timeout=30))
            callers[name] = make
            server_pids[name] = pid
        results = run_interleaved(callers, users, args, per_thread, server_pids)

    load = os.getloadavg()
    print(f"{args.model}/{args.signature}, k={args.k}, {len(users)} users; {args.rounds} rounds, "
          f"each path in turn per round: {args.requests} sequential requests, then "
          f"{args.concurrency} concurrent clients x {per_thread} requests; load average "
          f"{load_before[0]:.2f} before, {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} after, on "
          f"{os.cpu_count()} cores")
    print(f"{'path':40s} {'p50 ms':>8s} {'p99 ms':>8s} {'req/s':>8s} {'p50 - in-process':>17s} "
          f"{'req/s ratio':>12s}")
    for name, r in results.items():
        print(f"{name:40s} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['throughput_rps']:8.1f} "
              f"{r['p50_overhead_ms']:+17.3f} {r['throughput_ratio']:11.2f}x")
    print("(p50 - in-process and the req/s ratio: medians over the rounds of the differences and "
          "ratios within each round)")
    print("CPU per sequential request (client + server process, all threads), ms:")
    for name, r in results.items():
        if "client_cpu_ms" in r:
            print(f"  {name:24s} client {r['client_cpu_ms']:.3f} + server {r['server_cpu_ms']:.3f}"
                  f" = {r['client_cpu_ms'] + r['server_cpu_ms']:.3f}")

    # ---------------------------------------------------------------- batching sweep
    sweep = [int(x) for x in args.sweep.split(",") if x.strip()]
    report = {"model": args.model, "signature": args.signature, "k": args.k,
              "command": "python benchmarks/serving_overhead.py "
                         + " ".join(argv if argv is not None else sys.argv[1:]),
              "cores": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
              "load_average": [round(x, 2) for x in load],
              "paths": results}
    path = args.report or layout.metrics_path.replace(".json", ".serving_overhead.json")
    if sweep:
        report["batching"] = batching_sweep(args, sweep, base, client_call, users, per_thread)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"[overhead] written to {path}")
    return 0


def batching_sweep(args, sweep: list[int], base: str, client_call, users: list[str],
                   per_thread: int) -> dict:
    """gRPC at each client count of ``sweep``, without and with server-side batching."""
    import tempfile

    from serving.batching import BatchingParameters
    from serving.client import RecommenderClient

    batching = BatchingParameters(max_batch_size=args.batch_size,
                                  batch_timeout_micros=args.batch_timeout_us,
                                  max_enqueued_batches=64, num_batch_threads=2,
                                  pad_variable_length_inputs=True)
    curves: dict[str, dict[int, dict]] = {}
    batching_file = os.path.join(tempfile.mkdtemp(prefix="batching-"), "batching.config")
    with open(batching_file, "w") as f:
        f.write(f"max_batch_size {{ value: {batching.max_batch_size} }}\n"
                f"batch_timeout_micros {{ value: {batching.batch_timeout_micros} }}\n"
                f"max_enqueued_batches {{ value: {batching.max_enqueued_batches} }}\n"
                f"num_batch_threads {{ value: {batching.num_batch_threads} }}\n"
                "pad_variable_length_inputs: true\n")
    for label, flags in (("unbatched", []),
                         ("batched", ["--enable_batching",
                                      f"--batching_parameters_file={batching_file}"])):
        with ServerProcess(args.model, base, [f"--grpc_max_threads={max(sweep)}", *flags]) \
                as server:
            def make(port=server.grpc_port):
                return client_call(RecommenderClient(f"127.0.0.1:{port}", "grpc",
                                                     model_name=args.model, timeout=30))
            curves[label] = {n: run_concurrent(make, users, n, max(per_thread, 4 * n) // n * 4)
                             for n in sweep}
    target = curves["unbatched"][min(sweep, key=lambda n: abs(n - args.concurrency))]["p99_ms"]
    print(f"\nServer-side batching over gRPC (max_batch_size {args.batch_size}, "
          f"batch_timeout_micros {args.batch_timeout_us}):")
    print(f"{'clients':>7s} {'unbatched p99':>14s} {'req/s':>8s} {'batched p99':>12s} "
          f"{'req/s':>8s}")
    for n in sweep:
        u, b = curves["unbatched"][n], curves["batched"][n]
        print(f"{n:7d} {u['p99_ms']:14.3f} {u['throughput_rps']:8.1f} {b['p99_ms']:12.3f} "
              f"{b['throughput_rps']:8.1f}")
    best = {label: max((r["throughput_rps"] for r in curve.values() if r["p99_ms"] <= target),
                       default=0.0) for label, curve in curves.items()}
    gain = best["batched"] / best["unbatched"] if best["unbatched"] else float("nan")
    print(f"Best throughput with p99 <= {target:.3f} ms (unbatched p99 at {args.concurrency} "
          f"clients): unbatched {best['unbatched']:.1f} req/s, batched "
          f"{best['batched']:.1f} req/s ({gain:.2f}x)")
    return {"parameters": {"max_batch_size": args.batch_size,
                           "batch_timeout_micros": args.batch_timeout_us},
            "curves": {label: {str(n): r for n, r in curve.items()}
                       for label, curve in curves.items()},
            "p99_target_ms": target, "best_throughput_rps": best}


if __name__ == "__main__":
    sys.exit(main())
