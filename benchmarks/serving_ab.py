"""Interleaved A/B of whole code trees (model server and client) on one machine.

    python benchmarks/serving_ab.py --base_path artifacts-rank/serving/retrieval \\
        --protocol rest --rounds 12 [--clients 8] before=/tmp/before-tree after=.

Each ``label=tree`` (a checkout or ``git archive`` of the repository; the same tree may be given
twice to see the noise) gets its own ``python -m serving.server`` and its own client process,
both importing that tree (``PYTHONPATH=<tree>:<tree>/clients/python/src``). The driver then
takes turns: per round, every variant runs a block of ``--requests`` requests
(``RecommenderClient.recommend(user_id=..., k=10)`` against ``recommend_user``; ``--clients``
threads share the block). Printed per variant: the median over rounds of the block's p50, p99,
requests/s and CPU per request of the client process and of the server process (all threads).

Why: on a shared 2-core machine whose load from other jobs drifts by a factor of two within
minutes, only figures taken in alternation are comparable; a client process without TensorFlow
also keeps the client's cost apart from the benchmark process's. The ``--server_flags label=...``
option passes flags to one variant's server (e.g. thread counts).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

WORKER = r'''
import json, statistics, sys, threading, time
from serving.client import RecommenderClient
port, protocol, threads, model = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
clients = [RecommenderClient(f"127.0.0.1:{port}", protocol, model_name=model, timeout=30)
           for _ in range(threads)]
for c in clients:
    for i in range(50):
        c.recommend(user_id=str(i + 1), k=10)
print("ready", flush=True)
round_ = 0
for line in sys.stdin:
    n = int(line)
    latencies = [[] for _ in range(threads)]

    def work(t):
        for i in range(n):
            t0 = time.perf_counter()
            clients[t].recommend(user_id=str((round_ * n + i * 7 + t) % 900 + 1), k=10)
            latencies[t].append(time.perf_counter() - t0)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - wall0
    ms = sorted(x * 1e3 for row in latencies for x in row)
    print(json.dumps({"p50": statistics.median(ms), "p99": ms[int(0.99 * (len(ms) - 1))],
                      "rps": len(ms) / wall,
                      "client_cpu": (time.process_time() - cpu0) / len(ms) * 1e3}), flush=True)
    round_ += 1
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("a model server did not start") from None
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("variants", nargs="+", help="label=tree")
    p.add_argument("--base_path", required=True, help="the model's base path (version dirs)")
    p.add_argument("--model", default="retrieval")
    p.add_argument("--protocol", choices=("rest", "grpc"), default="rest")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--requests", type=int, default=200, help="requests per variant and round")
    p.add_argument("--clients", type=int, default=1, help="concurrent client threads")
    p.add_argument("--report", help="append the medians as one JSON line to this file")
    p.add_argument("--server_flags", action="append", default=[],
                   help="label=--flag=value ... for one variant's server (repeatable)")
    args = p.parse_args(argv)
    flags = {}
    for item in args.server_flags:
        label, _, text = item.partition("=")
        flags.setdefault(label, []).extend(text.split())
    worker = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"serving_ab_worker_{os.getpid()}.py")
    with open(worker, "w") as f:
        f.write(WORKER)
    servers, workers = [], []
    try:
        for variant in args.variants:
            label, _, tree = variant.partition("=")
            tree = os.path.abspath(tree)
            env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2",
                       PYTHONPATH=f"{tree}:{tree}/clients/python/src")
            grpc_port, rest_port = free_port(), free_port()
            server = subprocess.Popen(
                [sys.executable, "-m", "serving.server", f"--model_name={args.model}",
                 f"--model_base_path={os.path.abspath(args.base_path)}", f"--port={grpc_port}",
                 f"--rest_api_port={rest_port}", "--file_system_poll_wait_seconds=0",
                 "--log_level=WARNING", *flags.get(label, [])],
                env=env, cwd=tree, stderr=subprocess.DEVNULL)
            servers.append((label, server, rest_port if args.protocol == "rest" else grpc_port, env,
                            tree))
        for label, server, port, env, tree in servers:
            wait_for_port(port, server)
            client = subprocess.Popen(
                [sys.executable, worker, str(port), args.protocol, str(args.clients), args.model],
                env=env, cwd=tree, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            if client.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the client of {label} did not start")
            workers.append(client)
        per_thread = max(1, args.requests // args.clients)
        blocks: dict[str, list[dict]] = {label: [] for label, *_ in servers}
        load0 = os.getloadavg()
        for _ in range(args.rounds):
            for (label, server, *_), client in zip(servers, workers):
                cpu0 = cpu_seconds(server.pid)
                client.stdin.write(f"{per_thread}\n")
                client.stdin.flush()
                block = json.loads(client.stdout.readline())
                block["server_cpu"] = ((cpu_seconds(server.pid) - cpu0)
                                       / (per_thread * args.clients) * 1e3)
                blocks[label].append(block)
        load1 = os.getloadavg()
        print(f"{args.protocol}, {args.clients} client thread(s), {args.rounds} rounds x "
              f"{per_thread * args.clients} requests per variant; load average {load0[0]:.2f} -> "
              f"{load1[0]:.2f} on {os.cpu_count()} cores; medians over rounds:")
        medians = {}
        for label, rounds in blocks.items():
            m = medians[label] = {key: round(statistics.median(r[key] for r in rounds), 3)
                                  for key in rounds[0]}
            print(f"  {label:12s} p50 {m['p50']:7.3f} ms  p99 {m['p99']:7.3f} ms  "
                  f"{m['rps']:7.1f} req/s  CPU/request: client {m['client_cpu']:.3f} ms, "
                  f"server {m['server_cpu']:.3f} ms")
        if args.report:
            with open(args.report, "a") as f:
                f.write(json.dumps({"command": "python benchmarks/serving_ab.py " + " ".join(
                    argv if argv is not None else sys.argv[1:]), "time": time.strftime("%H:%M"),
                    "load_average": [round(load0[0], 2), round(load1[0], 2)],
                    "medians": medians}) + "\n")
    finally:
        for client in workers:
            client.kill()
        for _, server, *_ in servers:
            server.kill()
        if os.path.exists(worker):
            os.remove(worker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
