"""Issue 13 §1-3: loopback bind, token and TLS, bounded connections, timeouts, cancellation,
retry of a half-written version, one write per REST answer, metrics, batching."""
from __future__ import annotations

import concurrent.futures
import datetime
import json
import os
import shutil
import socket
import threading
import time
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from serving import http_server
from serving.batching import BatchingParameters, BatchScheduler, parse_batching_parameters
from serving.client import RecommenderClient, ServingError
from serving.models import ModelRegistry
from serving.security import Security, TlsConfig
from serving.status import ServerError
from serving.server import ModelServer, build_arg_parser


def toy_config(model_root, *names):
    config = model_server_config_pb2.ModelServerConfig()
    for name in names or ("toy",):
        config.model_config_list.config.add(name=name, base_path=os.path.join(model_root, name))
    return config


def http(port, method, path, body=None, headers=None, scheme="http", context=None):
    request = urllib.request.Request(f"{scheme}://127.0.0.1:{port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_for(predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


# ----------------------------------------------------------------------- exposure


def test_both_ports_bind_loopback_by_default(model_root):
    assert build_arg_parser().parse_args([]).host == "127.0.0.1"
    with ModelServer(toy_config(model_root), grpc_port=0, rest_port=0, poll_seconds=0) as server:
        assert server.host == "127.0.0.1"
        assert server._rest._server.sockets[0].getsockname()[0] == "127.0.0.1"
        assert http(server.rest_port, "GET", "/v1/models/toy")[0] == 200


TOKEN = "s3cret-token-0123456789"


@pytest.fixture(scope="module")
def token_server(model_root):
    with ModelServer(toy_config(model_root), grpc_port=0, rest_port=0, poll_seconds=0,
                     security=Security(token=TOKEN)) as server:
        yield server


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-0123456789"},
                                     {"Authorization": TOKEN}])
def test_token_is_required_over_rest(token_server, headers):
    for path in ("/v1/models/toy", "/monitoring/prometheus/metrics"):
        status, body = http(token_server.rest_port, "GET", path, headers=headers)
        assert status == 401 and "error" in json.loads(body)


def test_token_is_required_over_grpc_and_the_client_sends_it(token_server):
    for protocol, port in (("rest", token_server.rest_port), ("grpc", token_server.grpc_port)):
        bare = RecommenderClient(f"127.0.0.1:{port}", protocol, model_name="toy")
        with pytest.raises(ServingError) as info:
            bare.model_status()
        assert info.value.code in (401, "UNAUTHENTICATED")
        good = RecommenderClient(f"127.0.0.1:{port}", protocol, model_name="toy", token=TOKEN)
        assert np.array_equal(good.predict({"x": [[2.0, 1.0, 0.0]]})["y"], np.float32([1.1]))
        good.close()
        bare.close()
    assert http(token_server.rest_port, "GET", "/monitoring/prometheus/metrics",
                headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200


def self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def test_tls_over_rest_and_grpc(model_root, tmp_path):
    cert, key = self_signed(tmp_path)
    ssl_config = tmp_path / "ssl.config"  # TF Serving's --ssl_config_file format
    ssl_config.write_text('server_key: "%s"\nserver_cert: "%s"\nclient_verify: false\n' % (
        open(key).read().replace("\n", "\\n"), open(cert).read().replace("\n", "\\n")))
    for tls in (TlsConfig.from_files(cert, key), TlsConfig.from_ssl_config_file(str(ssl_config))):
        with ModelServer(toy_config(model_root), grpc_port=0, rest_port=0, poll_seconds=0,
                         security=Security(tls=tls)) as server:
            for protocol, port in (("rest", server.rest_port), ("grpc", server.grpc_port)):
                with RecommenderClient(f"127.0.0.1:{port}", protocol, model_name="toy",
                                       root_certificates=cert) as client:
                    assert client.predict({"x": [[2.0, 1.0, 0.0]]})["y"].tolist() == \
                        [pytest.approx(1.1)]
            plain = RecommenderClient(f"127.0.0.1:{server.rest_port}", "rest", model_name="toy",
                                      timeout=5)
            with pytest.raises(ServingError):
                plain.model_status()  # plain HTTP to a TLS port is refused


# -------------------------------------------------------------------- connections


def test_a_burst_of_connections_is_answered(server):
    def one(_):
        with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as sock:
            sock.sendall(b"GET /v1/models/toy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            return data.split(b" ")[1]

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        assert set(pool.map(one, range(300))) == {b"200"}


@pytest.fixture()
def tight_server(model_root):
    with ModelServer(toy_config(model_root), grpc_port=0, rest_port=0, poll_seconds=0,
                     rest_threads=1, rest_max_queued=0, grpc_max_workers=1, grpc_max_queued=0,
                     max_connections=3, read_timeout_s=0.5, idle_timeout_s=1.0,
                     rest_timeout_ms=0) as server:
        yield server


def sleep_in_background(server, ms, protocol="rest"):
    def run():
        if protocol == "rest":
            return http(server.rest_port, "POST", "/v1/models/toy:predict",
                        {"signature_name": "sleep", "inputs": [ms]})
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "toy"
        request.model_spec.signature_name = "sleep"
        request.inputs["ms"].CopyFrom(tf.make_tensor_proto(np.array([ms], np.int64)))
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            for _ in range(200):  # refused while another call holds the only slot: retry
                try:
                    return stub.Predict(request, timeout=30)
                except grpc.RpcError as err:
                    if err.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                        raise
                    time.sleep(0.01)
            raise AssertionError("the sleeping call never got a worker")
        finally:
            channel.close()

    pool = concurrent.futures.ThreadPoolExecutor(1)
    future = pool.submit(run)
    pool.shutdown(wait=False)
    return future


def test_a_full_rest_worker_pool_answers_503(tight_server):
    busy = sleep_in_background(tight_server, 1500)
    wait_for(lambda: tight_server._rest.in_flight == 1)
    status, body = http(tight_server.rest_port, "GET", "/v1/models/toy")
    assert status == 503 and "Server busy" in json.loads(body)["error"]
    assert busy.result(timeout=30)[0] == 200
    assert http(tight_server.rest_port, "GET", "/v1/models/toy")[0] == 200


def test_a_full_grpc_worker_pool_answers_resource_exhausted(tight_server):
    busy = sleep_in_background(tight_server, 6000, "grpc")
    client = RecommenderClient(f"127.0.0.1:{tight_server.grpc_port}", "grpc", model_name="toy")

    def exhausted():
        assert not busy.done(), busy.exception() or "the sleeping call ended first"
        return _grpc_busy(client)

    wait_for(exhausted)  # the one worker is taken by the sleeping call
    assert busy.result(timeout=30).outputs["slept_ms"]
    client.close()


def _grpc_busy(client) -> bool:
    try:
        client.model_status()
        return False
    except ServingError as err:
        assert err.code == "RESOURCE_EXHAUSTED"
        return True


def test_connections_over_the_cap_are_refused(tight_server):
    socks = [socket.create_connection(("127.0.0.1", tight_server.rest_port)) for _ in range(3)]
    try:
        extra = socket.create_connection(("127.0.0.1", tight_server.rest_port), timeout=10)
        data = extra.recv(65536)
        assert data.startswith(b"HTTP/1.1 503") and b"Too many connections" in data
        extra.close()
    finally:
        for sock in socks:
            sock.close()


def test_a_slow_client_gets_408_and_an_idle_one_is_closed(tight_server):
    with socket.create_connection(("127.0.0.1", tight_server.rest_port), timeout=10) as slow:
        slow.sendall(b"POST /v1/models/toy:predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        data = slow.recv(65536)
        assert data.startswith(b"HTTP/1.1 408")
        assert slow.recv(65536) == b""  # closed
    with socket.create_connection(("127.0.0.1", tight_server.rest_port), timeout=10) as idle:
        assert idle.recv(65536) == b""  # closed after the idle timeout, nothing sent


def test_rest_timeout_cancels_the_model_call(model_root):
    with ModelServer(toy_config(model_root), grpc_port=0, rest_port=0, poll_seconds=0,
                     rest_timeout_ms=300) as server:
        status, body = http(server.rest_port, "POST", "/v1/models/toy:predict",
                            {"signature_name": "sleep", "inputs": [20000]})
        assert (status, json.loads(body)) == (504, {"error": "Deadline Exceeded"})
        # The 20 s call was stopped, not left running: its thread is free again.
        wait_for(lambda: server._rest.in_flight == 0, seconds=15)
        wait_for(lambda: server.metrics.count(model_name="toy", signature_name="sleep",
                                              status="CANCELLED") == 1, seconds=15)


def test_after_a_504_the_kept_alive_connection_answers_its_next_request(model_root):
    """The timed-out call's late answer is dropped; the next request gets its own answer."""
    def request(body):
        body = json.dumps(body).encode()
        return (b"POST /v1/models/toy:predict HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body))

    def answer(sock):
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"}"):
            data += sock.recv(65536)
        return data

    with ModelServer(toy_config(model_root), grpc_port=0, rest_port=0, poll_seconds=0,
                     rest_timeout_ms=300) as server:
        with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as sock:
            sock.sendall(request({"signature_name": "sleep", "inputs": [3000]}))
            assert answer(sock).startswith(b"HTTP/1.1 504 ")
            sock.sendall(request({"inputs": [[2.0, 1.0, 0.0]]}))
            data = answer(sock)
            assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b'{"outputs": [1.1]}')
            wait_for(lambda: server._rest.in_flight == 0, seconds=15)
            sock.sendall(request({"inputs": [[0.0, 0.0, 4.0]]}))
            assert answer(sock).endswith(b'{"outputs": [1.1]}')


def test_a_client_that_disconnects_cancels_its_call(server):
    before = server.metrics.count(signature_name="sleep", entrypoint="REST", status="CANCELLED")
    sock = socket.create_connection(("127.0.0.1", server.rest_port))
    body = json.dumps({"signature_name": "sleep", "inputs": [20000]}).encode()
    sock.sendall(b"POST /v1/models/toy:predict HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(body), body))
    wait_for(lambda: server._rest.in_flight == 1)
    sock.close()
    wait_for(lambda: server.metrics.count(signature_name="sleep", entrypoint="REST",
                                          status="CANCELLED") == before + 1, seconds=15)


def test_grpc_deadline_cancels_the_model_call(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy"
    request.model_spec.signature_name = "sleep"
    request.inputs["ms"].CopyFrom(tf.make_tensor_proto(np.array([20000], np.int64)))
    with pytest.raises(grpc.RpcError) as info:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=0.3)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_for(lambda: server.metrics.count(signature_name="sleep", entrypoint="GRPC",
                                          status="CANCELLED") == 1, seconds=15)
    channel.close()


def test_each_rest_answer_is_one_write_on_a_nodelay_socket(server, monkeypatch):
    writes, nodelay = [], []
    original = http_server._Connection.connection_made

    def spy(self, transport):
        sock = transport.get_extra_info("socket")
        original(self, transport)
        nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        real_write = transport.write
        transport.write = lambda data: (writes.append(data), real_write(data))[1]

    monkeypatch.setattr(http_server._Connection, "connection_made", spy)
    body = json.dumps({"inputs": [[1.0, 2.0, 3.0]]}).encode()
    request = (b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
               % (len(body), body))
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as sock:
        for _ in range(5):  # kept alive: five requests on one connection
            sock.sendall(request)
            data = b""
            while not data.endswith(b"}"):
                data += sock.recv(65536)
            assert data.startswith(b"HTTP/1.1 200 OK")
    assert len(writes) == 5 and nodelay == [1]
    assert all(w.startswith(b"HTTP/1.1 200 OK\r\n") and w.endswith(b"}") for w in writes)


def test_chunked_bodies_and_expect_continue(server):
    body = json.dumps({"inputs": [[2.0, 1.0, 0.0]]}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as sock:
        sock.sendall(b"POST /v1/models/toy:predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(chunked)
        data = b""
        while not data.endswith(b"}"):
            data += sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b'{"outputs": [1.1]}')


# --------------------------------------------------------------------- versions


def test_a_half_written_version_is_retried_when_its_files_change(model_root, tmp_path):
    base = tmp_path / "m"
    source = os.path.join(model_root, "staging", "growing-1")
    version = base / "1"
    version.mkdir(parents=True)
    pb = open(os.path.join(source, "saved_model.pb"), "rb").read()
    (version / "saved_model.pb").write_bytes(pb[: len(pb) // 2])  # a writer still at work
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name="m", base_path=str(base))
    registry = ModelRegistry(config)
    registry.poll()
    [(number, state)] = registry.status("m")
    assert (number, state.state, state.error_code) == (1, 50, grpc.StatusCode.DATA_LOSS)
    assert "retried when the files of version 1 change" in state.error_message
    registry.poll()  # unchanged: not retried (the status stays)
    assert registry.status("m")[0][1].error_code == grpc.StatusCode.DATA_LOSS
    for entry in os.listdir(source):  # the writer finishes: the next poll loads it
        src, dst = os.path.join(source, entry), version / entry
        if os.path.isdir(src):
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copyfile(src, dst)
    registry.poll()
    [(number, state)] = registry.status("m")
    assert (number, state.state, state.error_code, state.error_message) == (
        1, 30, grpc.StatusCode.OK, "")
    assert registry.resolve("m").version == 1
    registry.stop()


def test_a_corrupt_new_version_leaves_the_old_one_serving(model_root, tmp_path):
    base = tmp_path / "m"
    shutil.copytree(os.path.join(model_root, "staging", "growing-1"), base / "1")  # scale 1: y = 1.5 - 2 + .25 + .1
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name="m", base_path=str(base))  # policy: latest 1
    registry = ModelRegistry(config)
    registry.poll()
    x = {"x": np.ones((1, 3), np.float32)}
    assert registry.resolve("m").predict("serving_default", x)[1]["y"].tolist() == pytest.approx([-0.15])
    (base / "2").mkdir()
    pb = open(os.path.join(model_root, "staging", "growing-2", "saved_model.pb"), "rb").read()
    (base / "2" / "saved_model.pb").write_bytes(b"\x00garbage" + pb[:100])  # corrupt, not merely incomplete
    registry.poll()
    states = dict(registry.status("m"))
    assert states[2].state == 50 and states[2].error_code != grpc.StatusCode.OK
    assert states[1].state == 30  # the old version is not unloaded for a new one that failed
    served = registry.resolve("m")
    assert served.version == 1
    assert served.predict("serving_default", x)[1]["y"].tolist() == pytest.approx([-0.15])
    registry.stop()


def test_a_version_whose_variables_arrive_late_is_retried(model_root, tmp_path):
    base = tmp_path / "m"
    source = os.path.join(model_root, "retrieval", "1")
    version = base / "1"
    version.mkdir(parents=True)
    shutil.copyfile(os.path.join(source, "saved_model.pb"), version / "saved_model.pb")
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name="m", base_path=str(base))
    registry = ModelRegistry(config)
    registry.poll()
    assert registry.status("m")[0][1].error_code != grpc.StatusCode.OK
    shutil.copytree(os.path.join(source, "variables"), version / "variables")
    registry.poll()
    assert registry.status("m")[0][1].state == 30
    registry.stop()


# ---------------------------------------------------------------------- metrics


def test_prometheus_metrics_per_model_version_and_signature(server):
    client = RecommenderClient(f"127.0.0.1:{server.grpc_port}", "grpc", model_name="toy")
    client.predict({"x": [[1.0, 2.0, 3.0]]})
    with pytest.raises(ServingError):
        client.predict({"x": [[1.0, 2.0]]})
    http(server.rest_port, "POST", "/v1/models/toy:predict", {"inputs": [[1.0, 2.0, 3.0]]})
    http(server.rest_port, "POST", "/v1/models/nope:predict", {"inputs": [[1.0, 2.0, 3.0]]})
    status, body = http(server.rest_port, "GET", "/monitoring/prometheus/metrics")
    text = body.decode()
    assert status == 200
    labels = ('model_name="toy",model_version="1",signature_name="serving_default",'
              'API="predict",entrypoint="{}"')
    for entrypoint in ("GRPC", "REST"):
        assert f':tensorflow:serving:request_count{{{labels.format(entrypoint)},status="OK"}}' in text
        assert f':tensorflow:serving:request_latency_count{{{labels.format(entrypoint)}}}' in text
        assert f':tensorflow:serving:request_latency_bucket{{{labels.format(entrypoint)},le="+Inf"}}' \
            in text
    assert (':tensorflow:serving:request_error_count{' + labels.format("GRPC")
            + ',status="INVALID_ARGUMENT"} 1') in text
    assert ('request_error_count{model_name="nope",model_version="",signature_name="",'
            'API="predict",entrypoint="REST",status="NOT_FOUND"} 1') in text
    client.close()


# --------------------------------------------------------------------- batching


def test_batching_parameters_file_format():
    params = parse_batching_parameters("""
        max_batch_size { value: 8 }
        batch_timeout_micros { value: 5000 }
        max_enqueued_batches { value: 3 }
        num_batch_threads { value: 1 }
        allowed_batch_sizes: 4
        allowed_batch_sizes: 8
        pad_variable_length_inputs: true
    """)
    assert params == BatchingParameters(8, 5000, 3, 1, (4, 8), True)
    with pytest.raises(ValueError, match="unknown batching parameter"):
        parse_batching_parameters("max_batch_sise { value: 8 }")
    with pytest.raises(ValueError, match="allowed_batch_sizes"):
        parse_batching_parameters("max_batch_size { value: 8 } allowed_batch_sizes: 4")


@pytest.fixture(scope="module")
def batching_server(model_root):
    params = BatchingParameters(max_batch_size=8, batch_timeout_micros=50_000,
                                max_enqueued_batches=4, num_batch_threads=1,
                                allowed_batch_sizes=(4, 8), pad_variable_length_inputs=True)
    with ModelServer(toy_config(model_root, "retrieval", "toy"), grpc_port=0, rest_port=0,
                     poll_seconds=0, batching=params) as server:
        yield server


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_batched_answers_equal_unbatched_ones(batching_server, reference, protocol):
    port = batching_server.rest_port if protocol == "rest" else batching_server.grpc_port
    clients = [RecommenderClient(f"127.0.0.1:{port}", protocol, model_name="retrieval",
                                 timeout=30) for _ in range(8)]
    histories = [[f"item-{(3 * i + j) % 12}" for j in range(1 + i % 4)] for i in range(24)]
    ks = [1 + i % 5 for i in range(24)]
    scheduler = batching_server.registry.resolve("retrieval").batcher
    before = (scheduler.batches, scheduler.batched_rows)
    start = threading.Barrier(8)

    def one(i):
        if i < 8:
            start.wait()
        return clients[i % 8].recommend(history=histories[i], k=ks[i])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(24)))
    for i, recs in enumerate(answers):
        expected = reference("retrieval", 2, "serving_default", history=[histories[i]],
                             k=np.array([ks[i]], np.int32), exclude=[[""]])
        assert [r.item_id for r in recs] == [x.decode() for x in expected["item_ids"][0][:ks[i]]]
        assert np.allclose([r.score for r in recs], expected["scores"][0][:ks[i]])
    batches, rows = scheduler.batches - before[0], scheduler.batched_rows - before[1]
    assert rows == 24 and batches < 24  # requests shared model calls
    for c in clients:
        c.close()


def test_batching_refuses_oversized_tasks_and_a_full_queue():
    class SlowServable:
        def __init__(self):
            self.release = threading.Event()

        def run(self, prepared, cancellation=None):
            self.release.wait(10)
            return {"y": prepared.feeds["x"][:, 0]}

    from serving.servable import Prepared

    def task(rows):
        return Prepared("serving_default", {"x": np.zeros((rows, 3), np.float32)}, ["y"], rows)

    scheduler = BatchScheduler(BatchingParameters(max_batch_size=4, batch_timeout_micros=0,
                                                  max_enqueued_batches=1, num_batch_threads=1))
    servable = SlowServable()
    with pytest.raises(ServerError, match="Task size 5 is larger"):
        scheduler.run(servable, task(5))
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        first = pool.submit(scheduler.run, servable, task(4))  # runs (blocked in the model)
        wait_for(lambda: scheduler._queued_rows == 0 and not scheduler._queue and
                 first.running())
        time.sleep(0.1)
        second = pool.submit(scheduler.run, servable, task(4))  # fills the queue
        wait_for(lambda: scheduler._queued_rows == 4)
        with pytest.raises(ServerError, match="queue to which this task was submitted is full"):
            scheduler.run(servable, task(1))
        servable.release.set()
        assert first.result(10)["y"].shape == (4,) and second.result(10)["y"].shape == (4,)
    scheduler.stop()
