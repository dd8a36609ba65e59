"""What a gRPC server's machinery costs per call: a no-op ``Predict`` through each candidate,
from the same grpcio client, interleaved.

    python benchmarks/serving_grpc_noop.py [--servers grpcio,h2,h2-inline,grpclib,grpclib-inline]
        [--requests 500] [--rounds 8] [--concurrency 8] [--report PATH]

Each server runs in its own process (no GIL shared with the client) and answers
``tensorflow.serving.PredictionService/Predict`` with an empty ``PredictResponse`` after
parsing the request (a ``recommend_user``-shaped ``PredictRequest``, 3 small inputs):

* ``grpcio``: grpcio's synchronous server, 8 worker threads (what ``serving.server`` runs);
* ``h2``: :class:`serving.grpc_h2.GrpcH2Server` (the ``h2`` library on our asyncio loop, the
  handler on an 8-thread pool, the REST server's machinery);
* ``h2-inline``: the same with the handler run on the event loop (no hand-off): h2's floor;
* ``grpclib``: grpclib 0.4.9's asyncio server, the handler on an 8-thread pool
  (``run_in_executor``); ``grpclib-inline``: the handler on its event loop.

Rounds: every server's sequential block (``--requests`` calls), then every server's concurrent
block (``--concurrency`` client threads, one channel each). Printed: p50 / p99 / req/s over all
rounds and CPU ms per sequential call, client and server process (medians over the rounds).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serving_overhead import run_concurrent, run_sequential, summarize  # noqa: E402

PREDICT = "/tensorflow.serving.PredictionService/Predict"


def serve(kind: str, port: int) -> None:
    """Child process: a no-op Predict on 127.0.0.1:port, forever."""
    import concurrent.futures

    from tensorflow_serving.apis import predict_pb2

    def noop(request, call=None):
        return predict_pb2.PredictResponse()

    if kind == "grpcio":
        import grpc

        server = grpc.server(concurrent.futures.ThreadPoolExecutor(8),
                             options=[("grpc.so_reuseport", 0)])
        handler = grpc.unary_unary_rpc_method_handler(
            noop, request_deserializer=predict_pb2.PredictRequest.FromString,
            response_serializer=predict_pb2.PredictResponse.SerializeToString)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "tensorflow.serving.PredictionService", {"Predict": handler})])
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        print("ready", flush=True)
        server.wait_for_termination()
    elif kind in ("h2", "h2-inline"):
        import threading

        from serving import grpc_h2
        from serving.grpc_h2 import GrpcH2Server

        if kind == "h2-inline":  # the handler on the event loop: h2's floor on our loop
            def dispatch(self, stream):
                deserialize, fn = self.server.handlers[stream.path]
                self._answer(stream, fn(deserialize(bytes(stream.data[5:])), None)
                             .SerializeToString())
            grpc_h2._Connection._dispatch = dispatch

        GrpcH2Server({PREDICT: (predict_pb2.PredictRequest.FromString, noop)}, "127.0.0.1",
                     port, threads=8).start()
        print("ready", flush=True)
        threading.Event().wait()
    elif kind.startswith("grpclib"):
        import asyncio

        from grpclib.const import Cardinality, Handler
        from grpclib.server import Server

        inline = kind == "grpclib-inline"
        pool = concurrent.futures.ThreadPoolExecutor(8)

        class Service:
            def __mapping__(self):
                return {PREDICT: Handler(self.predict, Cardinality.UNARY_UNARY,
                                         predict_pb2.PredictRequest, predict_pb2.PredictResponse)}

            async def predict(self, stream):
                request = await stream.recv_message()
                if inline:
                    response = noop(request)
                else:
                    response = await asyncio.get_running_loop().run_in_executor(
                        pool, noop, request)
                await stream.send_message(response)

        async def main():
            server = Server([Service()])
            await server.start("127.0.0.1", port)
            print("ready", flush=True)
            await server.wait_closed()

        asyncio.run(main())
    else:
        raise SystemExit(f"unknown server {kind}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request_message():
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2

    def tensor(dtype, dims, **values):
        proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]))
        for field, value in values.items():
            getattr(proto, field).extend(value)
        return proto

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "retrieval"
    request.model_spec.signature_name = "recommend_user"
    request.inputs["user_id"].CopyFrom(tensor(types_pb2.DT_STRING, [1], string_val=[b"196"]))
    request.inputs["k"].CopyFrom(tensor(types_pb2.DT_INT32, [1], int_val=[10]))
    request.inputs["exclude"].CopyFrom(tensor(types_pb2.DT_STRING, [1, 1], string_val=[b""]))
    return request


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--servers", default="grpcio,h2,h2-inline,grpclib,grpclib-inline")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--report", default=None)
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return 0

    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    kinds = [k for k in args.servers.split(",") if k]
    request = request_message()
    processes, ports = {}, {}
    try:
        for kind in kinds:
            ports[kind] = free_port()
            processes[kind] = subprocess.Popen(
                [sys.executable, __file__, "--serve", kind, "--port", str(ports[kind])],
                stdout=subprocess.PIPE, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        for kind, process in processes.items():
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{kind} server did not start")

        def make(kind):
            def factory():
                channel = grpc.insecure_channel(f"127.0.0.1:{ports[kind]}")
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                return lambda _: stub.Predict(request, timeout=30)
            return factory

        calls = {kind: make(kind)() for kind in kinds}
        for call in calls.values():
            for _ in range(50):
                call(None)  # connect, warm up
        load_before = os.getloadavg()
        blocks: dict[str, list[dict]] = {}
        dummy = [None] * args.requests
        per_thread = max(1, args.requests // 2)
        for _ in range(args.rounds):
            for kind in kinds:
                blocks.setdefault(f"{kind} sequential", []).append(run_sequential(
                    calls[kind], dummy, processes[kind].pid, keep=True))
            for kind in kinds:
                blocks.setdefault(f"{kind} {args.concurrency} clients", []).append(
                    run_concurrent(make(kind), dummy, args.concurrency, per_thread, keep=True))
        load = os.getloadavg()
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(30)

    results = {}
    for name, runs in blocks.items():
        result = summarize([x for r in runs for x in r.pop("latencies_s")],
                           sum(r["wall_s"] for r in runs))
        if "client_cpu_ms" in runs[0]:
            for key in ("client_cpu_ms", "server_cpu_ms"):
                result[key] = round(statistics.median(r[key] for r in runs), 3)
        result["round_p50_ms"] = [r["p50_ms"] for r in runs]
        results[name] = result
    print(f"no-op Predict, {args.rounds} rounds x ({args.requests} sequential, then "
          f"{args.concurrency} clients x {per_thread}); load average {load_before[0]:.2f} before, "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} after, {os.cpu_count()} cores")
    print(f"{'server':28s} {'p50 ms':>8s} {'p99 ms':>8s} {'req/s':>8s} {'client CPU':>11s} "
          f"{'server CPU':>11s}")
    for name, r in results.items():
        cpu = (f"{r['client_cpu_ms']:11.3f} {r['server_cpu_ms']:11.3f}"
               if "client_cpu_ms" in r else "")
        print(f"{name:28s} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['throughput_rps']:8.1f} {cpu}")
    if args.report:
        with open(args.report, "w") as f:
            json.dump({"command": "python benchmarks/serving_grpc_noop.py "
                       + " ".join(argv if argv is not None else sys.argv[1:]),
                       "load_average_before": [round(x, 2) for x in load_before],
                       "load_average": [round(x, 2) for x in load],
                       "time": time.strftime("%Y-%m-%d %H:%M:%S"), "results": results}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
