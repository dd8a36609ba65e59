"""The served ranker through the client and as the multi-stage Recommender's ranking stage (slice exports)."""
import os

import numpy as np
import pytest

from recsys import names as N

pytestmark = pytest.mark.e2e
MODELS = (N.GRAPH_RETRIEVAL, N.RETRIEVAL, N.RANKER)


@pytest.fixture(scope="module")
def served(deployed, tmp_path_factory):
    from serving.items import write_item_table
    from serving.server import ModelServer, model_server_config
    from tfx_pipeline.artifacts import latest_output_uri

    work = tmp_path_factory.mktemp("ranker-e2e")
    examples = latest_output_uri(deployed, "SequenceExampleGen", "examples")
    table = write_item_table(examples, str(work / "items.tsv"))
    server = ModelServer(model_server_config({m: os.path.join(deployed.serving_dir, m) for m in MODELS}),
                         grpc_port=0, rest_port=0, poll_seconds=0, host="127.0.0.1").start()
    yield deployed, examples, table, server
    server.stop()


def test_client_rank_over_rest_and_grpc_equals_the_exported_model(served):
    import tensorflow as tf

    from export.ranker_evaluate import batch_inputs, read_requests
    from serving.client import RecommenderClient
    from tfx_pipeline.artifacts import latest_output_uri, latest_version_dir

    layout, _, _, server = served
    req = read_requests(latest_output_uri(layout, "ExposureBuilder", "exposures"), "test")
    r = 0
    cands, f = req["candidates"][r], req["features"][r]
    sources = {}
    for s_idx, s in enumerate(N.RANKER_SOURCES):
        got = sorted((-f[c, 3 * s_idx + 2], cands[c], float(f[c, 3 * s_idx + 1])) for c in range(len(cands))
                     if f[c, 3 * s_idx] > 0)
        sources[s] = [(item, score) for _, item, score in got]
    local = tf.saved_model.load(latest_version_dir(os.path.join(layout.serving_dir, N.RANKER))).signatures[N.RANK]
    want = local(**{k: tf.constant(v) for k, v in batch_inputs(req, range(r, r + 1)).items()})[N.SCORE].numpy()[0]
    for protocol, port in (("rest", server.rest_port), ("grpc", server.grpc_port)):
        client = RecommenderClient(f"127.0.0.1:{port}", protocol=protocol, timeout=30)
        ranked = client.rank(req["user_ids"][r], cands, sources=sources, history=req["history"][r],
                             history_types=req["types"][r], history_gaps=[int(g) for g in req["gaps"][r]],
                             request_time=int(req["request_time"][r]))
        got = {x.item_id: x.score for x in ranked}
        np.testing.assert_allclose([got[c] for c in cands], want[:len(cands)], rtol=1e-5, atol=1e-6)
        assert [x.score for x in ranked] == sorted((x.score for x in ranked), reverse=True)
        with pytest.raises(ValueError, match="unknown candidate sources"):
            client.rank("1", ["50"], sources={"nope": [("50", 1.0)]})
        with pytest.raises(ValueError, match="must not repeat"):
            client.rank("1", ["50", "50"])
        for bad in (float("nan"), "1998", True):
            with pytest.raises(ValueError, match="request_time must be epoch seconds"):
                client.rank("1", ["50"], request_time=bad)
        client.close()


def test_served_ranker_orders_the_multistage_candidates(served):
    from recsys import features as F
    from serving import rerank as R
    from serving.client import RecommenderClient
    from serving.multistage import Recommender, RequestContext
    from serving.ranking import ServedRanker
    from transform import examples_io

    _, examples, table, server = served
    rows = examples_io.read_rows(examples, F.TEST)
    user, history = rows.user_ids[0], rows.histories[0]
    client = RecommenderClient(f"127.0.0.1:{server.grpc_port}", protocol="grpc", timeout=30)
    calls = []

    def history_of(u):
        calls.append(u)
        return history, ["purchase"] * len(history), [len(history) - i for i in range(len(history))]

    rec = Recommender(client, table, ranker=ServedRanker(client, history_of=history_of),
                      policies=R.RerankPipeline((R.Exclude(),)))
    out = rec.recommend(user, k=10, context=RequestContext(history=history, exclude=history))
    assert out.ranker == "ranker" and out.fallbacks == [] and calls == [user]
    scores = [i.scores["ranker"] for i in out.items]
    assert len(scores) == 10 and scores == sorted(scores, reverse=True)
    assert all(0 < i.scores["pctr"] < 1 for i in out.items)
    client.close()
