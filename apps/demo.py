"""What `make run` shows after the pipeline: served recommendations, the table, how to query.

    python -m apps.demo --wait localhost:8501            # block until the server is up
    python -m apps.demo --output artifacts --rest localhost:8501 --grpc localhost:8500
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

import recsys  # noqa: F401

from recsys.names import RETRIEVAL as MODEL  # noqa: E402


def wait_for_server(target: str, model: str = MODEL, timeout: float = 180.0) -> None:
    """Polls TF Serving's model-status endpoint until ``model`` is AVAILABLE."""
    deadline = time.time() + timeout
    last = ""
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://{target}/v1/models/{model}", timeout=5) as r:
                status = json.load(r)
            if any(v.get("state") == "AVAILABLE" for v in status.get("model_version_status", [])):
                return
            last = json.dumps(status)
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            last = str(e)
        time.sleep(1.0)
    raise TimeoutError(f"Model {model!r} not available at {target} after {timeout:.0f}s (last answer: {last})")


def show(output: str, dataset: str, rest: str, grpc: str, users: int = 3, k: int = 10) -> None:
    from recsys.data import load_dataset
    from recsys.evaluation.report import format_table, read_report
    from serving.client import RecommenderClient
    from tfx_pipeline.layout import Layout
    from recsys.names import LEAVE_ONE_OUT

    layout = Layout(os.path.abspath(output), dataset)
    ds = load_dataset(dataset)
    titles = {i: (t or c or i) for i, t, c in zip(ds.items["item_id"], ds.items["title"], ds.items["category"])}
    events = ds.events.sort_values(["user_id", "timestamp"], kind="stable")
    user_ids = sorted(events["user_id"].unique(), key=lambda u: (len(u), u))[:users]
    from recsys.names import DUAL_RETRIEVAL, GENERATIVE

    pushed = [m for m in (DUAL_RETRIEVAL, GENERATIVE) if os.path.isdir(os.path.join(layout.serving_dir, m))]
    for name in pushed:  # the server loads models one by one; the client's choice must see them all
        wait_for_server(rest, name)
    rest_client = RecommenderClient(rest, protocol="rest", timeout=30)  # model "auto": dual_retrieval if pushed
    grpc_client = RecommenderClient(grpc, protocol="grpc", timeout=30)
    model = rest_client.model_name
    print(f"\nThe client's default retrieval model on this server: '{model}' "
          + ("(the dual-head student beat the two-tower on validation)" if model == DUAL_RETRIEVAL
             else "(the dual-head student was not pushed: it did not beat the two-tower on validation)"))
    for user in user_ids:
        history = events.loc[events["user_id"] == user, "item_id"].tolist()
        exclude = sorted(set(history)) if ds.protocol == LEAVE_ONE_OUT else []
        recs = rest_client.recommend(user_id=user, k=k, exclude=exclude)
        via_grpc = grpc_client.recommend(user_id=user, k=k, exclude=exclude)
        same = [r.item_id for r in recs] == [r.item_id for r in via_grpc]
        print(f"\nUser {user}: {len(history)} interactions; most recent: "
              + "; ".join(titles.get(i, i) for i in history[-3:]))
        print(f"  top {k} from model '{model}' over REST ({rest}); gRPC ({grpc}) gives the "
              f"{'same list' if same else 'a DIFFERENT list'}:")
        for rank, r in enumerate(recs, 1):
            print(f"  {rank:2d}. {r.item_id:>8s} {r.score:7.3f}  {titles.get(r.item_id, '')}")
        if GENERATIVE in pushed:
            gen = rest_client.recommend_batch(user_ids=[user], k=5, exclude=[exclude], model_name=GENERATIVE)[0]
            print(f"  the generative head's 5 most likely next items (log-likelihood; what a campaign would send):")
            for r in gen:
                print(f"      {r.item_id:>8s} {r.score:7.3f}  {titles.get(r.item_id, '')}")
    report = read_report(layout.metrics_path)
    print()
    print(format_table(report["models"], f"{report['dataset']} — {report['protocol']}, full ranking over all items"))
    print(f"(from {layout.metrics_path}; recompute with: recsys evaluate --dataset {dataset} --output {output})")
    show_semantic_ids(layout, titles, ds, rest)
    show_multistage(layout, titles, grpc, user_ids[0], history=events.loc[events["user_id"] == user_ids[0],
                                                                          "item_id"].tolist(),
                    exclude_history=ds.protocol == LEAVE_ONE_OUT)
    user = user_ids[0]
    print(f"""
Query the server yourself:
  curl -s http://{rest}/v1/models/{MODEL}
  curl -s -X POST http://{rest}/v1/models/{MODEL}:predict \\
       -d '{{"signature_name": "recommend_user", "inputs": {{"user_id": ["{user}"], "k": [5], "exclude": [[""]]}}}}'
  curl -s -X POST http://{rest}/v1/models/{MODEL}:predict \\
       -d '{{"instances": [{{"history": {json.dumps(events.loc[events["user_id"] == user, "item_id"].tolist()[-5:])}, "k": 5, "exclude": [""]}}]}}'
From Python:
  from serving.client import RecommenderClient
  client = RecommenderClient("{grpc}", protocol="grpc", model_name="{MODEL}", timeout=5.0)
  client.recommend(user_id="{user}", k=10)
Stop the server with: make stop""")


def _print_items(response, titles: dict[str, str], before: list[str] | None = None) -> None:
    for item in response.items:
        sources = ", ".join(f"{s}#{int(v['rank'])}" for s, v in item.sources.items())
        new = "" if before is None else ("  (new)" if item.item_id not in before else "")
        score = item.scores.get("ranker", item.scores.get("merge", 0))  # the ranker's score when it ranked them
        print(f"  {item.position + 1:2d}. {item.item_id:>8s} {score:.4f} {item.rule:<12s} "
              f"{titles.get(item.item_id, '')[:38]:38s} <- {sources}{new}")


def show_multistage(layout, titles: dict[str, str], grpc: str, user: str, history: list[str],
                    exclude_history: bool, k: int = 10) -> None:
    """The multi-stage client (serving.multistage) for one user, then one feedback round and the changed list."""
    from serving import rerank as R
    from serving.client import RecommenderClient
    from serving.items import write_item_table
    from recsys import names as N
    from serving.client import ServingError
    from serving.multistage import Recommender, RequestContext
    from serving.ranking import ServedRanker
    from serving.store import EmbeddedRedis, RedisStore
    from tfx_pipeline.artifacts import latest_output_uri

    examples = latest_output_uri(layout, "SequenceExampleGen", "examples")
    table = write_item_table(examples, os.path.join(layout.root, "multistage", f"{layout.slug}.items.tsv"))
    sponsored = tuple(table.item_ids[20:22])  # a stand-in sponsor list: two well-liked items
    policies = R.RerankPipeline((R.Exclude(), R.SuppressIgnored(max_ignored=1), R.CategoryCap(max_per_category=4),
                                 R.NoveltyShare(share=0.1),
                                 R.AdSlots(sponsored=sponsored, positions=(2, 6)),))
    redis_server = EmbeddedRedis(os.path.join(layout.root, "multistage", "redis"))
    store = RedisStore.from_url(redis_server.url)
    store.client.delete(*store.client.keys(store.key(user, "*")) or ["-"])  # the demo starts the user afresh
    client = RecommenderClient(grpc, protocol="grpc", timeout=30)
    ranker = None
    try:  # the served ranker ranks the candidates when the pipeline pushed it (it passed its gate)
        client.model_status(N.RANKER)
        from transform.examples_io import last_timestamp
        # the data's "now": MovieLens ends in 1998, and the ranker's item ages were learnt up to then
        ranker = ServedRanker(client, request_time=last_timestamp(examples))
    except ServingError:
        pass
    rec = Recommender(client, table, store=store, policies=policies, ranker=ranker)
    try:
        context = RequestContext(history=history, exclude=history if exclude_history else [])
        first = rec.recommend(user, k=k, context=context)
        print(f"\nMulti-stage recommendations for user {user} (serving.multistage over gRPC {grpc}; store: "
              f"embedded Redis {redis_server.url}); sources: {', '.join(first.sources)}; rules: "
              f"{', '.join(first.rules)}; ranking: {first.ranker}")
        print("  stage ms: " + ", ".join(f"{s} {v:.1f}" for s, v in first.timings_ms.items()))
        for fallback in first.fallbacks:
            print(f"  fallback: {fallback}")
        _print_items(first, titles)
        clicked = [first.items[-1].item_id]
        result = rec.feedback(user, impressions=first.item_ids(), clicks=clicked, request_id=first.request_id)
        print(f"\nFeedback: user {user} clicks {clicked[0]} ({titles.get(clicked[0], '')[:40]}) and ignores the other "
              f"{len(first.items) - 1}: offsets updated for {result.updated or 'no model'}"
              + (f"; skipped {result.skipped}" if result.skipped else "") + ("" if result.stored else
                                                                             f"; DROPPED: {result.dropped_reason}"))
        second = rec.recommend(user, k=k, context=context)
        print(f"The next request ({', '.join(f'{m}: {r.query}' for m, r in second.sources.items() if r.query.startswith('recommend'))}):")
        _print_items(second, titles, before=first.item_ids())
    finally:
        rec.close()
        redis_server.stop()


KOREAN_EXAMPLES = (
    {"title": "유기농 바나나 1kg", "category": "식품 > 과일"},
    {"title": "서울우유 1급A 우유 1L", "category": "식품 > 유제품"},
    {"title": "토이 스토리", "description": "애니메이션 가족 코미디 영화", "category": "Movies > Animation"},
)


def show_semantic_ids(layout, titles: dict[str, str], ds, rest: str, n_items: int = 3) -> None:
    """A few catalogue items with their Semantic IDs and the items sharing their code prefix,
    then brand-new (Korean) items encoded by the served item_encoder alone."""
    from serving.client import ITEM_ENCODER_MODEL, RecommenderClient
    from tfx_pipeline.artifacts import ArtifactNotFound, latest_version_dir
    from trainer.semantic_id_trainer import TABLE_FILE
    from trainer.semantic_ids import SemanticIdTable

    try:
        version = latest_version_dir(os.path.join(layout.serving_dir, ITEM_ENCODER_MODEL))
    except ArtifactNotFound:
        print("\n(no item_encoder pushed: the run skipped Semantic IDs)")
        return
    table = SemanticIdTable.load(os.path.join(version, "assets.extra", TABLE_FILE))
    popular = ds.events["item_id"].value_counts().index.tolist()[:n_items]
    print("\nSemantic IDs (coarse → fine, last code disambiguates) and items sharing the first two codes:")
    for item in popular:
        sid = table.id_of(item)
        near = [i for i in table.neighbours(item, 2) if i != item][:4]
        print(f"  {item:>6s} {str(sid):18s} {titles.get(item, '')[:40]}")
        for other in near:
            print(f"         {str(table.id_of(other)):18s}   ↳ {titles.get(other, '')[:60]}")
    client = RecommenderClient(rest, protocol="rest", model_name=ITEM_ENCODER_MODEL, timeout=60)
    try:
        encoded = client.encode_items(items=list(KOREAN_EXAMPLES))
    except Exception as e:  # e.g. a model trained on precomputed/structural embeddings has no encode_text
        print(f"  (encode_text not available from this item_encoder: {e})")
        return
    print("\nNew items encoded by the served item_encoder (no retraining), with catalogue items sharing codes:")
    for item, enc in zip(KOREAN_EXAMPLES, encoded):
        best = []
        for length in range(len(enc.semantic_id) - 1, 0, -1):
            best = table.items_with_prefix(enc.semantic_id[:length])
            if best:
                break
        print(f"  {item['title']:24s} {str(enc.semantic_id):18s} shares {length} code(s) with: "
              + "; ".join(titles.get(i, i)[:30] for i in best[:3]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apps.demo")
    p.add_argument("--wait", default="", help="host:port: wait until the retrieval model is served, then exit")
    p.add_argument("--timeout", type=float, default=180.0)
    p.add_argument("--output", default="artifacts")
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--rest", default="localhost:8501")
    p.add_argument("--grpc", default="localhost:8500")
    args = p.parse_args(argv)
    if args.wait:
        wait_for_server(args.wait, timeout=args.timeout)
        return 0
    show(args.output, args.dataset, args.rest, args.grpc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
