"""The multi-stage Recommender against the real model server and a real Redis, on hand-made retrievers.

Two retrievers exported by the project's own export classes over one 20-item catalogue (items a..e,
fillers f0..f14 far away; ScaNN twins absent, so discovery must pick the brute-force twins):

* ``graph_retrieval_bruteforce`` (``export.graph.GraphRetrievalModule``): u1 = (2, 0), u2 = (0, 1);
* ``retrieval_bruteforce`` (``export.retrieval.RetrievalModule``): u1's history [a] -> query (1, 0).

Item vectors: a (1, 0), b (0.8, 0.6), c (0, 1), d (-1, 0), e (0.6, 0.8).
"""
import os
import shutil
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from recsys import names as N
from serving import rerank as R
from serving.client import RecommenderClient
from serving.experiments import EventLog, Experiment, ab_report
from serving.feedback import FeedbackRule
from serving.items import ItemTable
from serving.multistage import (POPULARITY, REPEAT, BadRequest, ClientRanker, Config, Recommender,
                                RequestContext)
from serving.store import EmbeddedRedis, RedisStore

pytestmark = pytest.mark.e2e
GRAPH, TWO_TOWER = N.GRAPH_RETRIEVAL_BRUTE_FORCE, N.RETRIEVAL_BRUTE_FORCE
ITEM_VEC = {"a": (1, 0), "b": (0.8, 0.6), "c": (0, 1), "d": (-1, 0), "e": (0.6, 0.8)}
COUNTS = {"a": 50, "b": 40, "c": 30, "d": 20, "e": 1}
CATEGORIES = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "z"}


def _export_case(name: str):
    """A module of tests/export, loaded by path (``tests/`` is not a package: a fresh clone has no ``tests``
    on sys.path)."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "export", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_export_case_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _export(root):
    from export import retrieval as export
    from export.twins import save
    graph_case, twotower_case = _export_case("test_graph_export"), _export_case("test_retrieval")

    save(graph_case.module(), os.path.join(root, GRAPH, "1"))
    save(twotower_case.module(export.BRUTE_FORCE, max_k=10, max_exclude=5), os.path.join(root, TWO_TOWER, "1"))
    with open(os.path.join(root, "items.tsv"), "w") as f:
        f.write("item_id\tinteractions\tcategory\n")
        for i in ["a", "b", "c", "d", "e"] + [f"f{j}" for j in range(15)]:
            f.write(f"{i}\t{COUNTS.get(i, 0)}\t{CATEGORIES.get(i, '')}\n")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("multistage-models"))
    _export(root)
    return root


def _server(root, poll=0.0):
    from serving.server import ModelServer, model_server_config

    config = model_server_config({m: os.path.join(root, m) for m in (GRAPH, TWO_TOWER)})
    return ModelServer(config, grpc_port=0, rest_port=0, poll_seconds=poll, host="127.0.0.1").start()


@pytest.fixture(scope="module")
def server(models):
    srv = _server(models)
    yield srv
    srv.stop()


@pytest.fixture
def redis_url(tmp_path):
    server = EmbeddedRedis(str(tmp_path / "redis"))
    yield server.url
    server.stop()


def _recommender(server, models, protocol="rest", store=None, **kwargs):
    port = server.rest_port if protocol == "rest" else server.grpc_port
    client = RecommenderClient(f"127.0.0.1:{port}", protocol=protocol, timeout=10)
    config = kwargs.pop("config", Config(default_quota=3, repeat_quota=2, popularity_quota=2))
    return Recommender(client, ItemTable.read(os.path.join(models, "items.tsv")), store=store, config=config,
                       **dict(dict(policies=R.RerankPipeline(())), **kwargs))


def rrf(*ranks):
    return sum(1 / (60 + r) for r in ranks)


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_fan_out_merges_every_source_with_attribution(server, models, protocol):
    rec = _recommender(server, models, protocol)
    res = rec.recommend("u1", k=10, context=RequestContext(history=["d", "d", "a"]))
    assert [r.model for r in rec.retrievers()] == [GRAPH, TWO_TOWER]  # the twins, as their ScaNN models are absent
    # graph u1 (2, 0): a 2.0, b 1.6, e 1.2; two-tower (1, 0): a 1, b .8, e .6; repeat: d (2x), a; popularity a, b
    assert res.item_ids() == ["a", "b", "e", "d"]
    a, b, e, d = res.items
    assert a.sources == {GRAPH: {"rank": 1, "score": 2.0}, TWO_TOWER: {"rank": 1, "score": 1.0},
                         REPEAT: {"rank": 2, "score": 1.0}, POPULARITY: {"rank": 1, "score": 50.0}}
    assert a.scores["merge"] == pytest.approx(rrf(1, 1, 2, 1))
    assert b.scores["merge"] == pytest.approx(rrf(2, 2, 2)) and e.scores["merge"] == pytest.approx(rrf(3, 3))
    assert d.sources == {REPEAT: {"rank": 1, "score": 2.0}} and d.rule == "score"
    assert {s: r.status for s, r in res.sources.items()} == {GRAPH: "ok", TWO_TOWER: "ok", REPEAT: "ok",
                                                               POPULARITY: "ok"}
    assert res.sources[GRAPH].query == N.RECOMMEND_USER and res.fallbacks == [] and res.ranker == "merge"
    assert set(res.timings_ms) >= {"state", "retrieval", "merge", "ranking", "rerank", "total"}
    assert len(res.request_id) == 32 and res.arm is None


def test_rules_apply_to_the_served_candidates(server, models):
    policies = R.RerankPipeline((R.Exclude(), R.CategoryCap(max_per_category=1),
                                 R.AdSlots(sponsored=("d",), positions=(1,))))
    rec = _recommender(server, models, policies=policies)
    res = rec.recommend("u1", k=3, context=RequestContext(history=["d", "d", "a"], blocked=["zz"]))
    # merged a, b, e, d; cap 1 per category: a (x), b deferred, e (z) and d (y) move up; d sponsored at 1
    assert res.item_ids() == ["a", "d", "e"] and [i.rule for i in res.items] == ["score", "ad_slot", "category_cap"]
    blocked = rec.recommend("u1", k=3, context=RequestContext(history=["d", "d", "a"], blocked=["a"]))
    assert blocked.item_ids() == ["b", "d", "e"]  # b (x), e (z) moves up, d sponsored at 1
    assert res.rules == ["exclude", "category_cap", "ad_slot"]


def test_mmr_reads_item_embeddings_from_the_served_retriever(server, models):
    rec = _recommender(server, models, policies=R.RerankPipeline((R.MMR(lambda_=0.5),)))
    res = rec.recommend("u1", k=4, context=RequestContext(history=["d", "d", "a"]))
    # merged a, b, e, d; rel = min-max of the RRF scores: a 1, b 0.654, e 0.314, d 0. Vectors from the
    # graph's item_embedding. Second pick: b 0.5*0.654 - 0.5*cos(a, b)=0.8 -> -0.073; e 0.157 - 0.3 -> -0.143;
    # d 0 - 0.5*max(0, -1) -> 0: d. Then b (-0.073) before e (-0.143).
    assert res.item_ids() == ["a", "d", "b", "e"] and [i.rule for i in res.items] == ["score", "mmr", "score", "score"]
    assert res.fallbacks == []


def test_purchases_fed_back_are_excluded_from_the_next_answer(server, models, redis_url):
    rec = _recommender(server, models, store=RedisStore.from_url(redis_url), policies=R.RerankPipeline((R.Exclude(),)))
    assert rec.recommend("u1", k=3).item_ids() == ["a", "b", "e"]
    assert rec.feedback("u1", impressions=["a", "b", "e"], purchases=["a"]).stored
    assert "a" not in rec.recommend("u1", k=3).item_ids()
    assert rec.store.load("u1", []).bought == {"a"}


def test_feedback_moves_the_next_answer_through_recommend_vector(server, models, redis_url):
    rule = FeedbackRule(toward=1.0, away=0.1, max_shift=1.0)
    rec = _recommender(server, models, store=RedisStore.from_url(redis_url), rule=rule)
    first = rec.recommend("u1", k=3)
    assert first.item_ids() == ["a", "b", "e"]
    result = rec.feedback("u1", impressions=first.item_ids(), clicks=["c"], request_id=first.request_id)
    assert result.stored and result.updated == [GRAPH, TWO_TOWER] and result.skipped == {}
    # graph: |u| = 2, step = 2 (1.0 c - 0.1 mean(a, b, e)) = (-0.16, 1.9067) (norm 1.913 <= bound 2)
    mean_ignored = np.mean([ITEM_VEC["a"], ITEM_VEC["b"], ITEM_VEC["e"]], axis=0)
    q = np.array([2.0, 0.0]) + 2 * (np.array([0.0, 1.0]) - 0.1 * mean_ignored)
    second = rec.recommend("u1", k=3)
    assert second.sources[GRAPH].query == N.RECOMMEND_VECTOR
    got = {i.item_id: i.sources[GRAPH] for i in second.items if GRAPH in i.sources}
    want = sorted("abcde", key=lambda i: -float(np.dot(q, ITEM_VEC[i])))[:3]
    assert sorted(got, key=lambda i: got[i]["rank"]) == want == ["e", "b", "c"]
    for item in want:
        assert got[item]["score"] == pytest.approx(float(np.dot(q, ITEM_VEC[item])), rel=1e-5)
    assert "c" in second.item_ids() and second.item_ids() != first.item_ids()
    state = rec.store.load("u1", [GRAPH])
    np.testing.assert_allclose(state.deltas[GRAPH], q - [2.0, 0.0], rtol=1e-5)
    assert state.ignored == {"a": 1, "b": 1, "e": 1} and state.recent_clicks == ["c"]


def test_recent_clicks_without_an_offset_shift_the_session_in_the_graph_model(server, models, redis_url):
    """A user with recent clicks and no feedback offset (e.g. a model without the vector signatures)."""
    rec = _recommender(server, models, store=RedisStore.from_url(redis_url))
    rec.store.record("u1", [], lambda now: {}, ignored=[], clicked=["c"], bought=[])
    res = rec.recommend("u1", k=10)
    assert res.sources[GRAPH].query == N.RECOMMEND_SESSION and res.sources[TWO_TOWER].query == N.RECOMMEND_USER
    # the graph's default weight 0.5: q = 0.5 (1, 0) + 0.5 (0, 1): b 0.7, e 0.7, a 0.5 (ties: lower index first)
    graph = sorted((i for i in res.items if GRAPH in i.sources), key=lambda i: i.sources[GRAPH]["rank"])
    assert [(i.item_id, round(i.sources[GRAPH]["score"], 5)) for i in graph] == [("b", 0.7), ("e", 0.7), ("a", 0.5)]
    assert next(i for i in res.items if i.item_id == "c").sources == {REPEAT: {"rank": 1, "score": 1.0}}


def test_a_corrupt_stored_offset_is_ignored_and_the_next_round_starts_afresh(server, models, redis_url):
    store = RedisStore.from_url(redis_url)
    rec = _recommender(server, models, store=store, rule=FeedbackRule(toward=1.0, away=0.0, max_shift=1.0))
    store.client.set(store.key("u1", "delta", GRAPH), np.array([np.nan, 1.0], "<f4").tobytes())
    store.client.set(store.key("u1", "delta", TWO_TOWER), np.array([1.0, 2.0, 3.0], "<f4").tobytes())  # wrong dim
    res = rec.recommend("u1", k=3)
    assert res.item_ids() == ["a", "b", "e"] and res.sources[GRAPH].query == N.RECOMMEND_USER
    assert rec.feedback("u1", impressions=["a"], clicks=["c"]).stored
    state = store.load("u1", [GRAPH, TWO_TOWER])
    np.testing.assert_allclose(state.deltas[GRAPH], [0.0, 2.0])      # |u| = 2, one step toward c = (0, 1)
    np.testing.assert_allclose(state.deltas[TWO_TOWER], [0.0, 1.0])  # |u| = 1


def test_ignored_items_are_suppressed_after_three_rounds(server, models, redis_url):
    rec = _recommender(server, models, store=RedisStore.from_url(redis_url),
                       config=Config(quotas={TWO_TOWER: 0}, default_quota=3, repeat_quota=0, popularity_quota=0),
                       policies=R.RerankPipeline((R.SuppressIgnored(max_ignored=3),)),
                       rule=FeedbackRule(toward=0.0, away=0.0))  # counters only: the vectors stay put
    for _ in range(3):
        assert rec.recommend("u2", k=3).item_ids()[0] == "c"
        rec.feedback("u2", impressions=["c"])
    assert "c" not in rec.recommend("u2", k=3).item_ids()


def test_experiment_arms_and_the_event_log_feed_the_ab_report(server, models, redis_url, tmp_path):
    log = EventLog(str(tmp_path / "events.jsonl"))
    exp = Experiment("feedback", "s1", {"control": 0.5, "update": 0.5})
    rec = _recommender(server, models, store=RedisStore.from_url(redis_url), experiment=exp, event_log=log,
                       arm_settings={"control": {"use_feedback": False}})
    res = rec.recommend("u1", k=3)
    assert res.arm == exp.assign("u1")
    rec.feedback("u1", impressions=res.item_ids(), clicks=[res.item_ids()[0]], request_id=res.request_id)
    log.close()
    (report,) = ab_report(log.path, experiment="feedback")
    assert (report.arm, report.exposures, report.clicks) == (res.arm, 3, 1)


class PopularityRanker:
    """A plug-in ranker over the item table (what the served ranker's adapter plugs into)."""

    def __init__(self, table):
        self.table = table

    def rank(self, request):
        n = np.array([self.table.interactions.get(i, 0) for i in request.candidate_ids], np.float64)
        return {"score": -n, "pctr": n / 100}


def test_auto_ranker_is_the_merge_when_the_server_has_no_ranker_and_a_bad_choice_is_refused(server, models):
    rec = _recommender(server, models)  # ranker="auto", the default
    assert rec.ranker == "auto" and rec.served_ranker() is None
    assert rec.recommend("u1", k=4, context=RequestContext(history=["d", "d", "a"])).ranker == "merge"
    with pytest.raises(ValueError, match="ranker must be a Ranker, 'auto' or None, got 'served'"):
        _recommender(server, models, ranker="served")
    with pytest.raises(ValueError, match=r"arm_settings\['b'\]\['ranker'\] must be"):
        _recommender(server, models, arm_settings={"b": {"ranker": "yes"}})


def test_a_plugged_ranker_orders_and_a_failing_one_falls_back_to_the_merge(server, models):
    table = ItemTable.read(os.path.join(models, "items.tsv"))
    ranked = _recommender(server, models, ranker=PopularityRanker(table)).recommend(
        "u1", k=4, context=RequestContext(history=["d", "d", "a"]))
    assert ranked.item_ids() == ["e", "d", "b", "a"] and ranked.ranker == "ranker"
    assert ranked.items[0].scores == pytest.approx({"merge": rrf(3, 3), "ranker": -1.0, "pctr": 0.01})

    calls = []

    def broken_rank_fn(**kwargs):
        calls.append(kwargs)
        raise RuntimeError("ranker down")

    res = _recommender(server, models, ranker=ClientRanker(broken_rank_fn)).recommend(
        "u1", k=4, context=RequestContext(history=["d", "d", "a"]))
    assert res.item_ids() == ["a", "b", "e", "d"] and res.ranker == "merge (ranker failed)"
    assert any("ranker failed (RuntimeError: ranker down)" in f for f in res.fallbacks)
    sent = calls[0]
    assert sent["candidate_ids"] == [["a", "b", "e", "d"]] and sent["user_ids"] == ["u1"]
    np.testing.assert_allclose(sent["features"][f"{GRAPH}_rank"], [[1, 2, 3, 0]])


class SlowRanker:
    def __init__(self, release):
        self.release = release

    def rank(self, request):
        self.release.wait(30)  # answers only once the test has seen the fallback
        return {"score": np.zeros(len(request.candidate_ids))}


def test_a_ranker_missing_its_deadline_falls_back_to_the_merge(server, models):
    import threading

    release = threading.Event()
    rec = _recommender(server, models, ranker=SlowRanker(release),
                       config=Config(default_quota=3, repeat_quota=2, popularity_quota=2, ranker_deadline_s=0.05))
    try:
        res = rec.recommend("u1", k=4, context=RequestContext(history=["d", "d", "a"]))
    finally:
        release.set()
    assert res.item_ids() == ["a", "b", "e", "d"] and res.ranker == "merge (ranker failed)"
    assert any("TimeoutError: no answer within the 0.05s deadline" in f for f in res.fallbacks)


def test_retrievers_missing_the_deadline_are_skipped_and_reported(server, models):
    rec = _recommender(server, models, config=Config(default_quota=3, repeat_quota=2, popularity_quota=2,
                                                     deadline_s=1e-6))
    rec.retrievers()  # discovery is not part of the deadline
    res = rec.recommend("u1", k=3, context=RequestContext(history=["d"]))
    assert {res.sources[m].status for m in (GRAPH, TWO_TOWER)} == {"timeout"}
    assert res.item_ids() == ["d", "a", "b"]  # repeat d, popularity a, b: d and a tie at 1/61 (first source first)
    assert "every retriever failed: popularity and repeat candidates only" in res.fallbacks


class _NotARetriever(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serving_default(self, x):
        return {"y": x}


def test_a_retriever_that_fails_is_skipped_and_the_other_still_answers(models, tmp_path):
    """A bad push: version 2 of the two-tower lacks its signatures; the client discovered version 1."""
    root = str(tmp_path / "models")
    shutil.copytree(models, root)
    srv = _server(root, poll=0.2)
    try:
        rec = _recommender(srv, root)
        assert len(rec.retrievers()) == 2
        bad = _NotARetriever()
        tf.saved_model.save(bad, os.path.join(root, TWO_TOWER, "2"), signatures={"serving_default": bad.serving_default})
        deadline = time.time() + 60
        while time.time() < deadline and not any(v["version"] == "2" and v["state"] == "AVAILABLE"
                                                 for v in rec.client.model_status(TWO_TOWER)):
            time.sleep(0.1)
        res = rec.recommend("u1", k=3)
        assert res.sources[TWO_TOWER].status == "failed" and res.sources[GRAPH].status == "ok"
        assert any(f.startswith(f"retriever {TWO_TOWER} skipped: failed") for f in res.fallbacks)
        assert res.item_ids() == ["a", "b", "e"]
    finally:
        srv.stop()


def test_a_stopped_server_leaves_popularity_from_the_local_file(models):
    srv = _server(models)
    rec = _recommender(srv, models)
    assert len(rec.retrievers()) == 2
    srv.stop()
    res = rec.recommend("u1", k=2)  # discovery cached: both calls fail
    assert {res.sources[m].status for m in (GRAPH, TWO_TOWER)} == {"failed"}
    assert res.item_ids() == ["a", "b"] and "every retriever failed" in res.fallbacks[-1]
    assert rec.retrievers(refresh=True) == []
    res = rec.recommend("u1", k=2)
    assert res.item_ids() == ["a", "b"] and res.fallbacks == [
        "no retriever is served or reachable: popularity and repeat candidates only"]
    assert [i.sources for i in res.items] == [{POPULARITY: {"rank": 1, "score": 50.0}},
                                             {POPULARITY: {"rank": 2, "score": 40.0}}]


def test_a_killed_store_does_not_fail_requests_and_feedback_is_counted_dropped(server, models, tmp_path):
    redis_server = EmbeddedRedis(str(tmp_path / "redis"))
    rec = _recommender(server, models, store=RedisStore.from_url(redis_server.url))
    assert rec.feedback("u1", impressions=["a"], clicks=["c"]).stored
    os.kill(redis_server.pid, signal.SIGKILL)
    res = rec.recommend("u1", k=3)
    assert res.item_ids() == ["a", "b", "e"] and res.sources[GRAPH].query == N.RECOMMEND_USER
    assert any(f.startswith("store unavailable") for f in res.fallbacks)
    result = rec.feedback("u1", impressions=["a"], clicks=["c"])
    assert not result.stored and result.dropped_reason.startswith("store unavailable")
    assert rec.feedback_dropped == 1
    redis_server.stop()


# ------------------------------------------------------------------ bad inputs (docs/multistage.md's table)

BAD_RECOMMEND = [
    (dict(user_id=None), "user_id must be a string"),
    (dict(user_id=42), "user_id must be a string"),
    (dict(user_id=b"u1"), "user_id must be a string"),
    (dict(user_id=""), "non-empty"),
    (dict(user_id="   "), "non-empty"),
    (dict(user_id="u" * 257), "at most 256"),
    (dict(user_id="u1\x00"), "control characters"),
    (dict(user_id="u1\n"), "control characters"),
    (dict(k=0), "between 1 and 100"),
    (dict(k=-3), "between 1 and 100"),
    (dict(k=10**9), "between 1 and 100"),
    (dict(k=2.5), "k must be an int"),
    (dict(k="10"), "k must be an int"),
    (dict(k=True), "k must be an int"),
    (dict(k=None), "k must be an int"),
    (dict(context={"history": ["a"]}), "context must be a RequestContext"),
    (dict(context=RequestContext(history="abc")), "must be a list of item ids"),
    (dict(context=RequestContext(history=["a", 3])), r"history\[1\] must be a string"),
    (dict(context=RequestContext(history=["a", ""])), "non-empty"),
    (dict(context=RequestContext(history=["a"] * 1001)), "at most 1000"),
    (dict(context=RequestContext(exclude=[None])), r"exclude\[0\] must be a string"),
    (dict(context=RequestContext(blocked="a")), "must be a list of item ids"),
    (dict(context=RequestContext(request_time=float("nan"))), "finite UNIX time"),
    (dict(context=RequestContext(request_time=-1)), "finite UNIX time"),
]
BAD_FEEDBACK = [
    (dict(impressions=[]), "at least one impression"),
    (dict(impressions="a"), "must be a list of item ids"),
    (dict(impressions=["a"], clicks=[1]), r"clicks\[0\] must be a string"),
    (dict(impressions=["a"] * 1001), "at most 1000"),
    (dict(impressions=["a"], purchases=["x" * 300]), "at most 256"),
    (dict(impressions=["a"], request_id=""), "non-empty"),
    (dict(impressions=["a"], user_id=3.5), "user_id must be a string"),
]


@pytest.mark.parametrize("kwargs,message", BAD_RECOMMEND, ids=[str(i) for i in range(len(BAD_RECOMMEND))])
def test_bad_recommend_inputs_get_clear_errors(server, models, kwargs, message):
    rec = _recommender(server, models)
    args = dict(dict(user_id="u1", k=3), **kwargs)
    with pytest.raises(BadRequest, match=message):
        rec.recommend(args.pop("user_id"), **args)
    assert rec.recommend("u1", k=3).item_ids() == ["a", "b", "e"]  # and the next request is served


@pytest.mark.parametrize("kwargs,message", BAD_FEEDBACK, ids=[str(i) for i in range(len(BAD_FEEDBACK))])
def test_bad_feedback_inputs_get_clear_errors_and_store_nothing(server, models, redis_url, kwargs, message):
    rec = _recommender(server, models, store=RedisStore.from_url(redis_url))
    args = dict(dict(user_id="u1"), **kwargs)
    with pytest.raises(BadRequest, match=message):
        rec.feedback(args.pop("user_id"), **args)
    state = rec.store.load("u1", [GRAPH])
    assert (state.deltas, state.ignored, state.recent_clicks) == ({}, {}, [])


def test_unicode_ids_and_unknown_users_are_served(server, models):
    rec = _recommender(server, models)
    res = rec.recommend("usér-🙂", k=10, context=RequestContext(history=["ünknown-ítem"]))
    # an unknown user: the graph's mean user (1, 0.5): b 1.1, a 1.0, e 1.0
    graph = sorted((i for i in res.items if GRAPH in i.sources), key=lambda i: i.sources[GRAPH]["rank"])
    assert [i.item_id for i in graph] == ["b", "a", "e"] and res.sources[TWO_TOWER].status == "ok"
    assert "ünknown-ítem" in res.item_ids()  # the repeat source keeps the caller's own item


@pytest.mark.parametrize("bad,message", [
    (dict(default_quota=-1), "default_quota"), (dict(max_k=0), "max_k"), (dict(deadline_s=0), "deadline_s"),
    (dict(quotas={"x": 1.5}), "quota of 'x'"), (dict(weights={"x": float("nan")}), "weight of 'x'"),
    (dict(ranker_deadline_s=-1), "ranker_deadline_s"),
])
def test_bad_recommender_config_is_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        Config(**bad)
