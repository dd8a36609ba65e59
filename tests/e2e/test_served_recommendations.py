"""The pushed models behind the model server: client over REST and gRPC == the model called in-process.

The models come from the ``deployed`` fixture (every exporter's output pushed as TFX's Pusher lays
it out, whatever the gates said), so no test here depends on a training outcome.
"""
import os

import numpy as np
import pytest

pytestmark = pytest.mark.e2e
SERVED = ("retrieval", "retrieval_bruteforce", "dual_retrieval", "dual_retrieval_bruteforce", "generative",
          "graph_retrieval", "graph_retrieval_bruteforce")


@pytest.fixture(scope="module")
def served(deployed):
    from serving.server import ModelServer, model_server_config

    layout = deployed
    config = model_server_config({name: os.path.join(layout.serving_dir, name)
                                  for name in SERVED})
    server = ModelServer(config, grpc_port=0, rest_port=0, poll_seconds=0, host="127.0.0.1").start()
    yield layout, server
    server.stop()


def _in_process(layout, model, signature, **inputs):
    import scann  # noqa: F401
    import tensorflow as tf

    from tfx_pipeline.artifacts import latest_version_dir

    loaded = tf.saved_model.load(latest_version_dir(os.path.join(layout.serving_dir, model)))
    out = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    return [(i.decode(), float(s)) for i, s in zip(out["item_ids"].numpy()[0], out["scores"].numpy()[0]) if i]


def _real_user_and_history(layout):
    import glob

    from recsys import features as F
    from transform import examples_io

    examples = sorted(glob.glob(os.path.join(layout.pipeline_root, "SequenceExampleGen", "examples", "*")))[-1]
    rows = examples_io.read_rows(examples, F.TEST)
    return rows.user_ids[0], rows.histories[0]


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
@pytest.mark.parametrize("model", SERVED)
def test_client_matches_in_process_model(served, protocol, model):
    from serving.client import RecommenderClient

    layout, server = served
    port = server.rest_port if protocol == "rest" else server.grpc_port
    client = RecommenderClient(f"127.0.0.1:{port}", protocol=protocol, model_name=model, timeout=30)
    user, history = _real_user_and_history(layout)
    exclude = history[:5]

    got = [(r.item_id, r.score) for r in client.recommend(user_id=user, k=10, exclude=exclude)]
    want = _in_process(layout, model, "recommend_user", user_id=[user], k=np.array([10], np.int32),
                       exclude=[exclude])
    assert [i for i, _ in got] == [i for i, _ in want] and len(got) == 10
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5)
    assert not set(exclude) & {i for i, _ in got}

    got = [(r.item_id, r.score) for r in client.recommend(history=history, k=5)]
    want = _in_process(layout, model, "serving_default", history=[history], k=np.array([5], np.int32),
                       exclude=[[""]])
    assert [i for i, _ in got] == [i for i, _ in want] and len(got) == 5


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_graph_session_shift_by_name_over_the_wire(served, protocol):
    """The client calls the graph retriever by name; its session signature answers as in-process."""
    from serving.client import RecommenderClient

    layout, server = served
    port = server.rest_port if protocol == "rest" else server.grpc_port
    client = RecommenderClient(f"127.0.0.1:{port}", protocol=protocol, model_name="graph_retrieval", timeout=30)
    user, history = _real_user_and_history(layout)
    inputs = {"user_id": [user], "recent_items": [history[-3:]], "session_weight": np.array([-1.0], np.float32),
              "k": np.array([10], np.int32), "exclude": [history]}
    out = client.predict(inputs, signature_name="recommend_session")
    got = [i.decode() if isinstance(i, bytes) else i for i in out["item_ids"][0]]
    want = _in_process(layout, "graph_retrieval", "recommend_session", **inputs)
    assert got == [i for i, _ in want] and len(got) == 10 and not set(got) & set(history)
    plain = [r.item_id for r in client.recommend(user_id=user, k=10, exclude=history)]
    assert plain == [i for i, _ in _in_process(layout, "graph_retrieval", "recommend_user", user_id=[user],
                                                 k=np.array([10], np.int32), exclude=[history])]


def test_status_metadata_and_errors_over_the_wire(served):
    from serving.client import RecommenderClient, ServingError

    layout, server = served
    for protocol, port in (("rest", server.rest_port), ("grpc", server.grpc_port)):
        client = RecommenderClient(f"127.0.0.1:{port}", protocol=protocol, model_name="retrieval", timeout=30)
        status = client.model_status()
        assert [s["state"] for s in status] == ["AVAILABLE"]
        sigs = client.metadata()["metadata"]["signature_def"]["signature_def"]
        assert set(sigs) >= {"serving_default", "recommend_user", "user_embedding", "item_embedding"}
        assert set(sigs["serving_default"]["inputs"]) == {"history", "k", "exclude"}
        with pytest.raises(ServingError):
            RecommenderClient(f"127.0.0.1:{port}", protocol=protocol, model_name="no_such_model",
                              timeout=30).recommend(user_id="1", k=3)


def test_default_model_is_the_dual_retrieval_once_pushed_and_reads_order_positions(served):
    from serving.client import RecommenderClient

    layout, server = served
    client = RecommenderClient(f"127.0.0.1:{server.rest_port}", timeout=30)
    user, history = _real_user_and_history(layout)
    recs = client.recommend(history=history[-6:], k=5)
    assert client.model_name == "dual_retrieval" and len(recs) == 5
    orders = [0, 0, 0, 1, 1, 1]
    got = [(r.item_id, r.score) for r in client.recommend(history=history[-6:], k=5, order_positions=orders)]
    want = _in_process(layout, "dual_retrieval", "recommend_orders", history=[history[-6:]],
                       order_pos=np.array([orders], np.int64), k=np.array([5], np.int32), exclude=[[""]])
    assert [i for i, _ in got] == [i for i, _ in want]
    with pytest.raises(ValueError, match="one position per history item"):
        client.recommend(history=history[-6:], k=5, order_positions=[0, 1])


def test_default_model_falls_back_to_the_two_tower(deployed):
    from serving.client import RecommenderClient
    from serving.server import ModelServer, model_server_config

    layout = deployed
    config = model_server_config({"retrieval": os.path.join(layout.serving_dir, "retrieval")})
    server = ModelServer(config, grpc_port=0, rest_port=0, poll_seconds=0, host="127.0.0.1").start()
    try:
        client = RecommenderClient(f"127.0.0.1:{server.grpc_port}", protocol="grpc", timeout=30)
        assert len(client.recommend(user_id=_real_user_and_history(layout)[0], k=3)) == 3
        assert client.model_name == "retrieval"
    finally:
        server.stop()
