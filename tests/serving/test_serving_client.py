"""serving.client.RecommenderClient over REST and gRPC against the local model server."""
from __future__ import annotations

import concurrent.futures
import socket

import numpy as np
import pytest

from serving.client import Recommendation, RecommenderClient, ServingError, ServingTimeout

PROTOCOLS = ["rest", "grpc"]


@pytest.fixture(params=PROTOCOLS)
def client(request, server):
    port = server.rest_port if request.param == "rest" else server.grpc_port
    with RecommenderClient(f"127.0.0.1:{port}", protocol=request.param, timeout=30) as c:
        yield c


def expected_recs(result, row=0, k=None, drop=()) -> list[Recommendation]:
    recs = [Recommendation(i.decode(), float(s))
            for i, s in zip(result["item_ids"][row], result["scores"][row]) if i.decode() not in drop]
    return recs[:k] if k is not None else recs


def test_recommend_from_history_equals_the_in_process_call(client, reference):
    history, exclude = ["item-3", "item-8"], ["item-3", "item-0"]
    recs = client.recommend(history=history, k=5, exclude=exclude)
    result = reference("retrieval", 2, "serving_default", history=[history],
                       k=np.array([5], np.int32), exclude=[exclude])
    assert recs == expected_recs(result, drop=exclude)
    assert len(recs) == 5 and not {r.item_id for r in recs} & set(exclude)
    assert all(isinstance(r.score, float) for r in recs)
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)


def test_recommend_for_a_user_calls_recommend_user(client, reference):
    recs = client.recommend(user_id="user-3", k=4)
    result = reference("retrieval", 2, "recommend_user", user_id=["user-3"],
                       k=np.array([4], np.int32), exclude=[[""]])
    assert recs == expected_recs(result)
    assert recs != expected_recs(reference("retrieval", 2, "serving_default", history=[["item-1"]],
                                           k=np.array([4], np.int32), exclude=[[""]]))


def test_recommend_batch_pads_rows_and_honours_per_row_k(client, reference):
    histories = [["item-1"], ["item-2", "item-5", "item-11"], []]
    results = client.recommend_batch(histories=histories, k=[2, 3, 1])
    padded = [["item-1", "", ""], ["item-2", "item-5", "item-11"], ["", "", ""]]
    result = reference("retrieval", 2, "serving_default", history=padded,
                       k=np.array([2, 3, 1], np.int32), exclude=[[""]] * 3)
    assert results == [expected_recs(result, row, k) for row, k in enumerate([2, 3, 1])]
    users = client.recommend_batch(user_ids=["user-0", "user-1"], k=3, exclude=[["item-4"]])
    result = reference("retrieval", 2, "recommend_user", user_id=["user-0", "user-1"],
                       k=np.array([3, 3], np.int32), exclude=[["item-4"], ["item-4"]])
    assert users == [expected_recs(result, 0), expected_recs(result, 1)]


@pytest.mark.parametrize("kwargs", [{}, {"user_id": "u", "history": ["a"]},
                                    {"history": "item-1"}, {"history": ["a"], "k": 0}])
def test_recommend_rejects_bad_arguments(client, kwargs):
    with pytest.raises(ValueError):
        client.recommend(**kwargs)


def test_generic_predict_returns_exact_typed_arrays(client, reference):
    x = np.array([[0.1, 0.2, 0.3], [1.0, -1.0, 4.0]], np.float32)
    out = client.predict({"x": x.tolist()}, model_name="toy")
    expected = reference("toy", 1, "serving_default", x=x)["y"]
    assert list(out) == ["y"] and out["y"].dtype == np.float32
    assert np.array_equal(out["y"], expected)
    echo = client.predict({"data": [b"\xff\x00", "abc"]}, model_name="toy",
                          signature_name="bytes_echo")
    assert echo["data_bytes"].tolist() == [b"\xff\x00", b"abc"]
    assert echo["upper"].tolist() == ["\ufffd\x00", "ABC"]
    assert echo["length"].dtype == np.int32 and echo["length"].tolist() == [2, 3]


def test_predict_with_a_version(client, reference):
    out = client.predict({"history": [["item-6"]], "k": [3], "exclude": [[""]]}, version=1)
    expected = reference("retrieval", 1, "serving_default", history=[["item-6"]],
                         k=np.array([3], np.int32), exclude=[[""]])
    assert out["item_ids"].tolist() == expected["item_ids"].astype(str).tolist()
    assert np.array_equal(out["scores"], expected["scores"])


def test_status_and_metadata_are_the_same_over_both_protocols(server):
    rest = RecommenderClient(f"127.0.0.1:{server.rest_port}", "rest")
    grpc_client = RecommenderClient(f"127.0.0.1:{server.grpc_port}", "grpc")
    ok = {"error_code": "OK", "error_message": ""}
    expected = [{"version": "2", "state": "AVAILABLE", "status": ok},
                {"version": "1", "state": "AVAILABLE", "status": ok}]
    assert rest.model_status() == grpc_client.model_status() == expected
    assert rest.metadata(version=1) == grpc_client.metadata(version=1)
    assert rest.metadata()["model_spec"] == {"name": "retrieval", "version": "2",
                                             "signature_name": ""}
    signatures = grpc_client.signature_defs()
    assert signatures["recommend_user"]["inputs"]["user_id"]["dtype"] == "DT_STRING"
    grpc_client.close()


@pytest.mark.parametrize("protocol,code", [("rest", 404), ("grpc", "NOT_FOUND")])
def test_server_errors_become_serving_errors(server, protocol, code):
    port = server.rest_port if protocol == "rest" else server.grpc_port
    c = RecommenderClient(f"127.0.0.1:{port}", protocol, model_name="nope")
    with pytest.raises(ServingError) as info:
        c.recommend(history=["item-1"])
    assert info.value.code == code
    assert info.value.message == "Servable not found for request: Latest(nope)"
    assert not isinstance(info.value, ServingTimeout)


@pytest.mark.parametrize("protocol,code", [("rest", 400), ("grpc", "FAILED_PRECONDITION")])
def test_unknown_signature(server, protocol, code):
    port = server.rest_port if protocol == "rest" else server.grpc_port
    c = RecommenderClient(f"127.0.0.1:{port}", protocol, model_name="toy")
    with pytest.raises(ServingError) as info:
        c.predict({"x": [[1.0, 2.0, 3.0]]}, signature_name="nope")
    assert info.value.code == code and "nope" in info.value.message


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_timeout_raises_serving_timeout_and_server_keeps_serving(server, protocol):
    port = server.rest_port if protocol == "rest" else server.grpc_port
    c = RecommenderClient(f"127.0.0.1:{port}", protocol, model_name="toy", timeout=0.3)
    c.predict({"x": [[1.0, 2.0, 3.0]]})  # metadata cached, connection up
    with pytest.raises(ServingTimeout) as info:
        c.predict({"ms": [1500]}, signature_name="sleep")
    assert info.value.code == "DEADLINE_EXCEEDED"
    assert np.array_equal(c.predict({"x": [[2.0, 1.0, 0.0]]})["y"], np.float32([1.1]))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_connection_refused_names_the_target_and_recsys_serve(protocol):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    c = RecommenderClient(f"127.0.0.1:{port}", protocol, timeout=5)
    with pytest.raises(ServingError) as info:
        c.recommend(history=["item-1"])
    assert info.value.code == "UNAVAILABLE"
    assert f"127.0.0.1:{port}" in info.value.message and "recsys serve" in info.value.message
    assert not isinstance(info.value, ServingTimeout)


def test_concurrent_client_requests(server, reference):
    clients = [RecommenderClient(f"127.0.0.1:{server.grpc_port}", "grpc"),
               RecommenderClient(f"127.0.0.1:{server.rest_port}", "rest")]
    histories = [[f"item-{(3 * i) % 12}", f"item-{(7 * i + 1) % 12}"] for i in range(32)]

    def one(i):
        return clients[i % 2].recommend(history=histories[i], k=3 + i % 4)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(32)))
    for i, recs in enumerate(answers):
        result = reference("retrieval", 2, "serving_default", history=[histories[i]],
                           k=np.array([3 + i % 4], np.int32), exclude=[[""]])
        assert recs == expected_recs(result)


@pytest.mark.parametrize("k,error", [(2.5, TypeError), (None, TypeError), ("5", TypeError),
                                     (True, TypeError), (2**31, ValueError), (0, ValueError),
                                     (-3, ValueError), ([1, "2"], TypeError),
                                     ([1, 2], ValueError)])  # two ks for one row
def test_k_is_checked_before_anything_is_sent(k, error):
    c = RecommenderClient("127.0.0.1:1", "rest", model_name="retrieval")  # nothing listens
    with pytest.raises(error, match="k"):
        c.recommend(history=["item-1"], k=k)


@pytest.mark.parametrize("timeout", [0, -1, None, "5", True, float("nan")])
def test_timeout_must_be_a_positive_number(timeout):
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        RecommenderClient("127.0.0.1:8501", timeout=timeout)


@pytest.mark.parametrize("target", ["", "localhost", "localhost:http", "localhost:70000", None])
def test_target_must_be_host_and_port(target):
    with pytest.raises(ValueError, match="target must be 'host:port'"):
        RecommenderClient(target)


@pytest.mark.parametrize("protocol,code", [("rest", 400), ("grpc", "INVALID_ARGUMENT")])
def test_a_k_over_the_servers_limit_is_the_servers_invalid_argument(server, protocol, code):
    port = server.rest_port if protocol == "rest" else server.grpc_port
    with RecommenderClient(f"127.0.0.1:{port}", protocol, model_name="retrieval") as c:
        with pytest.raises(ServingError) as info:
            c.recommend(history=["item-1"], k=10**6)
    assert info.value.code == code and "--max_k" in info.value.message


def test_rest_client_keeps_its_connection_alive(server):
    with RecommenderClient(f"127.0.0.1:{server.rest_port}", "rest", model_name="toy") as c:
        for _ in range(3):
            c.predict({"x": [[1.0, 2.0, 3.0]]})
        assert len(c._connections) == 1  # one connection for every request of this thread
