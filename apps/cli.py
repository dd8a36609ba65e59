"""`recsys` command line: run the pipeline, serve, recommend, evaluate.

    recsys run --dataset movielens-100k [--output ./artifacts] [-- <Beam args>]
    recsys serve [--output ./artifacts] [--port 8500] [--rest_api_port 8501] [-- <server flags>]
    recsys recommend --user 196 [--server localhost:8501 --protocol rest|grpc]
    recsys evaluate [--dataset movielens-100k] [--output ./artifacts]
    recsys campaign [--dataset movielens-100k] [--output ./artifacts] [--top-n 5] [-- <Beam args>]
    recsys ab-report --log events.jsonl [--experiment NAME]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

DEFAULT_DATASET = "movielens-100k"
DEFAULT_ROOT = "./artifacts"
#: trainer.distribute.STRATEGIES (not imported here: it loads TensorFlow; tests/apps/test_cli_distribution.py compares)
DISTRIBUTION_STRATEGIES = ("none", "mirrored", "multiworker")


def _layout(args):
    from tfx_pipeline.layout import Layout

    return Layout(root=os.path.abspath(args.output), dataset=args.dataset)


def _add_common(p: argparse.ArgumentParser) -> None:
    from recsys.data import DATASET_NAMES

    p.add_argument("--dataset", default=DEFAULT_DATASET, choices=DATASET_NAMES,
                   help="(default: %(default)s)")
    p.add_argument("--output", default=DEFAULT_ROOT, help="artifact root (default: %(default)s)")


def cmd_run(args, beam_args: list[str]) -> int:
    from recsys.data import dataset_fingerprint
    from tfx_pipeline import local_runner
    from tfx_pipeline.pipeline import DEFAULT_BEAM_ARGS

    layout = _layout(args)
    t0 = time.time()
    print(f"[run] dataset {args.dataset}; artifacts under {layout.root}", flush=True)
    options = {"protocol": args.protocol} if args.protocol else {}
    problem = _synthetic_options(args, options)
    if not problem and args.eval_users < 0:
        problem = f"--eval-users must be >= 0 (0 = every user); got {args.eval_users}"
    if not problem and args.ranker_users < 0:
        problem = f"--ranker-users must be >= 0 (0 = every user); got {args.ranker_users}"
    if not problem and args.max_steps_per_epoch < 0:
        problem = f"--max-steps-per-epoch must be >= 0 (0 = every batch); got {args.max_steps_per_epoch}"
    if problem:
        print(f"recsys run: error: {problem}", file=sys.stderr)
        return 2
    data_path = os.path.abspath(args.data_path) if args.data_path else ""
    fingerprint = dataset_fingerprint(args.dataset, data_path or None, **options)
    two_tower = {}
    if args.epochs:
        two_tower["epochs"] = args.epochs
    if args.distribution_strategy != "none":
        two_tower["distribution_strategy"] = args.distribution_strategy
    rqvae = {"epochs": args.rqvae_epochs} if args.rqvae_epochs else {}
    dual_head = {"epochs": args.dual_head_epochs} if args.dual_head_epochs else {}
    sequential = {"epochs": args.sequential_epochs} if args.sequential_epochs else {}
    graph = {"max_epochs": args.graph_epochs} if args.graph_epochs else {}
    if args.max_steps_per_epoch:  # scale probes: every trainer's epoch is its first N batches
        for config in (two_tower, dual_head, sequential, graph):
            config["max_steps_per_epoch"] = args.max_steps_per_epoch
    if args.eval_users:  # the trainers' model selection ranks the catalogue for their validation users too
        graph["val_users"] = args.eval_users
        two_tower["val_users"] = args.eval_users
        dual_head["val_users"] = args.eval_users
        sequential["val_users"] = args.eval_users
    if args.sequential and args.no_semantic_ids:
        print("recsys run: error: --sequential needs the content space's item table (drop --no-semantic-ids)",
              file=sys.stderr)
        return 2
    if args.ranker_student != "never" and (args.no_semantic_ids or args.no_dual_head or args.no_graph
                                           or args.no_ranker):
        print("recsys run: error: --ranker-student needs the dual head and the ranker (drop --no-dual-head, "
              "--no-semantic-ids, --no-graph and --no-ranker)", file=sys.stderr)
        return 2
    problem = _too_small(args.dataset, data_path, options, args.max_users)
    if problem:
        print(f"recsys run: error: {problem}", file=sys.stderr)
        return 2
    local_runner.run(
        layout, dataset=args.dataset, data_path=data_path, dataset_options=options,
        fingerprint=fingerprint, beam_pipeline_args=beam_args or list(DEFAULT_BEAM_ARGS),
        max_users=args.max_users, two_tower=two_tower, min_lift=args.min_lift, eval_users=args.eval_users,
        semantic_ids=not args.no_semantic_ids, rqvae=rqvae,
        dual_head=not (args.no_semantic_ids or args.no_dual_head), dual_head_config=dual_head,
        sequential=args.sequential and not args.no_semantic_ids, sequential_config=sequential,
        graph=not (args.no_semantic_ids or args.no_graph), graph_config=graph,
        ranking=not (args.no_semantic_ids or args.no_graph or args.no_ranker),  # its candidates need the graph
        ranking_config=_ranking_config(args),
        item_embeddings_path=os.path.abspath(args.item_embeddings) if args.item_embeddings else "",
        enable_cache=not args.no_cache)
    print(f"[run] pipeline finished in {time.time() - t0:.0f}s", flush=True)
    report = publish_metrics(layout)
    if not args.no_semantic_ids:
        publish_semantic_id_metrics(layout)
    write_models_config(layout)
    print(f"[run] metrics written to {layout.metrics_path}")
    from recsys.evaluation.report import format_table

    print(format_table(report["models"], f"{report['dataset']} — {report['protocol']}, full ranking over all items"))
    return 0


#: ``recsys run`` flag -> the synthetic generator's option (``recsys.data.synthetic.generate``)
SYNTHETIC_SIZE_FLAGS = {"users": "n_users", "items": "n_items", "events": "n_events", "seed": "seed"}


def _synthetic_options(args, options: dict) -> str:
    """Puts ``--users/--items/--events/--seed`` into ``options`` (``--dataset synthetic`` only); "" or the problem."""
    given = {flag: getattr(args, flag) for flag in SYNTHETIC_SIZE_FLAGS if getattr(args, flag) is not None}
    if given and args.dataset != "synthetic":
        return (f"{', '.join('--' + f for f in given)} size the generated data of --dataset synthetic; "
                f"--dataset {args.dataset} reads its own data")
    for flag, value in given.items():
        if value < (0 if flag == "seed" else 1):
            return f"--{flag} must be {'>= 0' if flag == 'seed' else 'a positive integer'}; got {value}"
        options[SYNTHETIC_SIZE_FLAGS[flag]] = value
    return ""


def _ranking_config(args) -> dict:
    """The ranking stage's options that differ from its defaults (absent ones keep the components' cache keys)."""
    config = {"student": args.ranker_student} if args.ranker_student != "never" else {}
    if args.ranker_users:
        config["window_users"] = args.ranker_users
    if args.max_steps_per_epoch:
        config["model"] = {"max_steps_per_epoch": args.max_steps_per_epoch}
    return config


def _too_small(dataset: str, data_path: str, options: dict, max_users: int) -> str:
    """What is too small in this data (and what to do), checked before the pipeline starts; "" when it trains.

    A generated dataset is checked shard by shard (never all its events in memory at once); the others are loaded.
    """
    import dataclasses

    from recsys.data import event_shards, load_dataset
    from recsys.data.contract import DataValidationError, check_trainable
    from recsys.data.streaming import check_trainable_by_shard
    from trainer.two_tower import TwoTowerConfig

    batch_size = TwoTowerConfig().batch_size
    shards = event_shards(dataset, data_path or None, **options)
    if shards is not None:
        try:  # the same slice the example generator will keep: the first users by id
            check_trainable_by_shard(shards, batch_size, max_users)
        except DataValidationError as e:
            return str(e)
        return ""
    ds = load_dataset(dataset, data_path or None, **options)
    if max_users > 0:  # the slice the example generator will keep: the first users by id
        keep = set(sorted(ds.events["user_id"].unique())[:max_users])
        ds = dataclasses.replace(ds, events=ds.events[ds.events["user_id"].isin(keep)])
    try:
        check_trainable(ds, batch_size=batch_size)
    except DataValidationError as e:
        return str(e)
    return ""


def publish_metrics(layout) -> dict:
    """Copies the evaluator's test-split table to ``metrics/<dataset>.json`` (the documented shape)."""
    from recsys.evaluation.report import read_report, write_report
    from tfx_pipeline.artifacts import ArtifactNotFound, latest_output_uri
    from tfx_pipeline.components.evaluator import METRICS_FILE

    from transform import fileio

    metrics = fileio.read_json(os.path.join(latest_output_uri(layout, "RetrievalEvaluator", "evaluation"),
                                            METRICS_FILE))
    try:  # the dual-head models, when this run trained them (their table includes the spine's rows)
        metrics = fileio.read_json(os.path.join(latest_output_uri(layout, "DualHeadEvaluator", "evaluation"),
                                                METRICS_FILE))
    except ArtifactNotFound:
        pass
    for component in ("SequentialEvaluator", "GraphEvaluator"):  # the sequence model's and graph retriever's rows
        try:  # (their evaluators measure the same splits; the spine's rows they repeat are kept once)
            rows = fileio.read_json(os.path.join(latest_output_uri(layout, component, "evaluation"), METRICS_FILE))
        except ArtifactNotFound:
            continue
        for label in ("validation", "test"):
            for name, values in rows[label]["models"].items():
                metrics[label]["models"].setdefault(name, values)
    try:  # the ranker and the candidate orders, end to end on the same units (full rows: ranking.json)
        ranking = fileio.read_json(os.path.join(latest_output_uri(layout, "RankerEvaluator", "evaluation"),
                                                METRICS_FILE))
        with open(layout.metrics_path.replace(".json", ".ranking.json"), "w") as f:
            json.dump(ranking, f, indent=1)
        from recsys.evaluation.metrics import metric_names

        keys = metric_names(10)
        for label in ("validation", "test"):
            for name, values in ranking[label]["models"].items():
                metrics[label]["models"].setdefault(name, {k: values[k] for k in keys})
    except ArtifactNotFound:
        pass
    test = metrics["test"]
    write_report(layout.metrics_path, test["dataset"], test["protocol"], test["models"],
                 extra={"validation": metrics["validation"]["models"]})
    return read_report(layout.metrics_path)


def publish_semantic_id_metrics(layout) -> dict:
    """Copies the Semantic-ID run's quality report to ``metrics/<dataset>.semantic_ids.json`` and prints it."""
    from tfx_pipeline.artifacts import latest_output_uri
    from trainer.semantic_id_trainer import REPORT_FILE

    run_dir = latest_output_uri(layout, "SemanticIdTrainer", "model_run")
    from transform import fileio

    report = fileio.read_json(os.path.join(run_dir, REPORT_FILE))
    path = layout.metrics_path.replace(".json", ".semantic_ids.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(format_semantic_id_report(report))
    print(f"[run] Semantic-ID metrics written to {path}")
    return report


def format_semantic_id_report(r: dict) -> str:
    usage = ", ".join(f"{lv['usage']:.0%}" if lv.get("usage") is not None else str(lv["codes_used"])
                      for lv in r["levels"])
    perplexity = ", ".join(f"{lv['perplexity']:.0f}" for lv in r["levels"])
    return "\n".join([
        f"Semantic IDs ({r['source']} embeddings, {r['items']:,} items):",
        f"  reconstruction: MSE {r['reconstruction_mse']:.5f}, mean cosine {r['reconstruction_cosine']:.3f}",
        f"  codebook usage per level: {usage}; perplexity per level: {perplexity}",
        f"  collision rate: {r['collision_rate']:.2%} before disambiguation, "
        f"{r['collision_rate_disambiguated']:.2%} after",
        f"  first-level category purity: {r['category_purity']:.3f} (random assignment {r['random_category_purity']:.3f})"
        if r.get("category_purity") is not None else "  category purity: no categories",
        f"  kNN recall@10 of decoded vs original embeddings: {r['knn_recall@10']:.3f}",
    ])


def write_models_config(layout) -> str:
    """A ModelServerConfig for every pushed model under ``serving/``."""
    from google.protobuf import text_format

    from serving.server import model_server_config
    from recsys.names import SERVED_MODELS

    # Relative base paths: our server resolves them against this file's directory;
    # real TF Serving wants absolute ones (see serving/models.config for a container).
    models = [(name, name) for name in SERVED_MODELS
              if os.path.isdir(os.path.join(layout.serving_dir, name))]
    if not models:
        raise SystemExit(f"No pushed model under {layout.serving_dir}: the evaluator did not bless the model "
                         f"(see its verdict above), so there is nothing to serve.")
    os.makedirs(layout.serving_dir, exist_ok=True)
    with open(layout.models_config, "w", encoding="utf-8") as f:
        f.write(text_format.MessageToString(model_server_config(models)))
    return layout.models_config


def cmd_serve(args, extra: list[str]) -> int:
    from serving import server

    layout = _layout(args)
    config = args.model_config_file or layout.models_config
    if not os.path.exists(config):
        config = write_models_config(layout)
    return server.main([f"--model_config_file={config}", f"--port={args.port}",
                        f"--rest_api_port={args.rest_api_port}", *extra])


def _recommend_in_process(layout, user: str | None, history: list[str] | None, k: int,
                          exclude: list[str], name: str = "auto") -> list[tuple[str, float]]:
    import scann  # noqa: F401
    import tensorflow as tf

    from tfx_pipeline.artifacts import latest_version_dir
    from recsys import names as N
    from recsys.names import DUAL_RETRIEVAL_BRUTE_FORCE, RETRIEVAL_BRUTE_FORCE

    if name == "auto":  # the same preference as the client's: the dual head once it was pushed
        name = (DUAL_RETRIEVAL_BRUTE_FORCE if os.path.isdir(os.path.join(layout.serving_dir, DUAL_RETRIEVAL_BRUTE_FORCE))
                else RETRIEVAL_BRUTE_FORCE)
    print(f"(in-process model: {name})", file=sys.stderr)
    model = tf.saved_model.load(latest_version_dir(os.path.join(layout.serving_dir, name)))
    excl = tf.constant([[e.encode() for e in exclude] or [b""]])
    if user is not None:
        out = model.signatures[N.RECOMMEND_USER](user_id=tf.constant([user]), k=tf.constant([k]), exclude=excl)
    else:
        out = model.signatures[N.SERVING_DEFAULT](history=tf.constant([history]), k=tf.constant([k]), exclude=excl)
    return [(i.decode(), float(s)) for i, s in zip(out[N.ITEM_IDS].numpy()[0], out[N.SCORES].numpy()[0]) if i]


def cmd_recommend(args) -> int:
    if (args.user is None) == (args.history is None):
        print("recsys recommend: give exactly one of --user or --history", file=sys.stderr)
        return 2
    history = args.history.split(",") if args.history else None
    exclude = args.exclude.split(",") if args.exclude else []
    if args.k < 1:
        print(f"recsys recommend: error: --k must be a positive int, got {args.k}", file=sys.stderr)
        return 2
    if args.server:
        from serving.client import RecommenderClient, ServingError

        try:
            with RecommenderClient(args.server, protocol=args.protocol, model_name=args.model,
                                   timeout=args.timeout) as client:
                recs = [(r.item_id, r.score) for r in client.recommend(
                    user_id=args.user, history=history, k=args.k, exclude=exclude)]
        except (ServingError, ValueError, TypeError) as e:
            # a bad address, model, k or timeout, or the server's refusal: one line, no traceback
            print(f"recsys recommend: error: {e}", file=sys.stderr)
            return 2 if isinstance(e, (ValueError, TypeError)) else 1
    else:
        recs = _recommend_in_process(_layout(args), args.user, history, args.k, exclude, args.model)
    titles = _item_titles(args)
    who = f"user {args.user}" if args.user else f"history {history}"
    print(f"Top {args.k} for {who}:")
    for rank, (item, score) in enumerate(recs, 1):
        print(f"{rank:3d}. {item:>8s}  {score:8.4f}  {titles.get(item, '')}")
    return 0


def _item_titles(args) -> dict[str, str]:
    from recsys.data import DataValidationError, DatasetNotFoundError, load_dataset

    try:
        items = load_dataset(args.dataset, getattr(args, "data_path", None) or None).items
    except (DataValidationError, DatasetNotFoundError, ValueError) as e:
        # titles only decorate the list; say why they are missing instead of failing the request
        print(f"(no item titles: {e})", file=sys.stderr)
        return {}
    return {i: (t or c) for i, t, c in zip(items["item_id"], items["title"], items["category"])}


def cmd_evaluate(args) -> int:
    from export.evaluate import evaluate_split
    from recsys.evaluation.report import format_table, write_report
    from recsys import features as F
    from tfx_pipeline.artifacts import ArtifactNotFound, latest_output_uri, latest_version_dir
    from tfx_pipeline import pipeline as P

    layout = _layout(args)
    examples_uri = latest_output_uri(layout, "SequenceExampleGen", "examples")
    from transform import fileio

    protocol = fileio.read_text(os.path.join(examples_uri, "protocol.txt")).strip()
    dirs = {}
    for label, name in (("two_tower", P.RETRIEVAL_BRUTE_FORCE), ("two_tower_scann", P.RETRIEVAL),
                        ("dual_retrieval", P.DUAL_RETRIEVAL_BRUTE_FORCE), ("dual_retrieval_scann", P.DUAL_RETRIEVAL),
                        ("generative", P.GENERATIVE),
                        ("sequential_retrieval", P.SEQUENTIAL_RETRIEVAL_BRUTE_FORCE),
                        ("sequential_retrieval_scann", P.SEQUENTIAL_RETRIEVAL),
                        ("graph_retrieval", P.GRAPH_RETRIEVAL_BRUTE_FORCE),
                        ("graph_retrieval_scann", P.GRAPH_RETRIEVAL)):
        try:
            dirs[label] = latest_version_dir(os.path.join(layout.serving_dir, name))
        except ArtifactNotFound as e:
            print(f"[evaluate] {e}", file=sys.stderr)
    split = F.TEST if args.split == "test" else F.EVAL
    models = evaluate_split(examples_uri, split, protocol, dirs,
                            user_models=("graph_retrieval", "graph_retrieval_scann"))  # asked by user id
    try:  # the served ranker end to end on the same units, beside the candidate sources' own orders
        from export.ranker_evaluate import evaluate_exposures
        from recsys.evaluation.metrics import metric_names
        from tfx_pipeline.components.ranker_evaluator import format_rows
        from transform import examples_io
        from transform.exposures import SOURCES

        ranker_dir = latest_version_dir(os.path.join(layout.serving_dir, P.RANKER))
        rows = evaluate_exposures(latest_output_uri(layout, "ExposureBuilder", "exposures"), split,
                                  examples_io.read_catalog(examples_uri).positions(), ranker_dir)
        rows = {f"{n} (candidates)" if n in SOURCES else n: v for n, v in rows.items()}
        print(format_rows(rows, f"{args.dataset} — {protocol} ({args.split} split), ranked candidates"))
        models.update({n: {k: v[k] for k in metric_names(10)} for n, v in rows.items()})
    except ArtifactNotFound as e:
        print(f"[evaluate] no ranker rows: {e}", file=sys.stderr)
    title = f"{args.dataset} — {protocol} ({args.split} split), full ranking over all items"
    print(format_table(models, title))
    write_report(layout.metrics_path if args.split == "test" else layout.metrics_path.replace(".json", ".validation.json"),
                 args.dataset, f"{protocol} ({args.split} split)", models)
    print(f"[evaluate] written to {layout.metrics_path}")
    return 0


def cmd_campaign(args, beam_args: list[str]) -> int:
    from apps.campaign import run_campaign, user_histories_from_examples
    from tfx_pipeline.artifacts import latest_output_uri, latest_version_dir
    from recsys.names import GENERATIVE

    layout = _layout(args)
    examples_uri = latest_output_uri(layout, "SequenceExampleGen", "examples")
    latest_version_dir(os.path.join(layout.serving_dir, GENERATIVE))  # says so if the teacher was never pushed
    out = args.campaign_output or os.path.join(layout.root, "campaign", f"{layout.slug}.next_items")
    run_campaign(os.path.join(layout.serving_dir, GENERATIVE), user_histories_from_examples(examples_uri), out,
                 top_n=args.top_n, exclude_history=args.exclude_history, beam_args=beam_args or None)
    return 0


def cmd_ab_report(args) -> int:
    """CTR per arm with 95% intervals from the multi-stage client's event log (``serving.experiments``)."""
    from serving.experiments import BadEventLog, ab_report, format_report

    try:
        reports = ab_report(args.log, experiment=args.experiment or None)
    except (FileNotFoundError, BadEventLog, UnicodeDecodeError) as e:
        print(f"recsys ab-report: error: {e}", file=sys.stderr)
        return 2
    if not reports:
        print(f"recsys ab-report: error: no exposures{' of experiment ' + args.experiment if args.experiment else ''}"
              f" in {args.log}", file=sys.stderr)
        return 2
    print(format_report(reports))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the TFX pipeline (arguments after -- go to Beam)")
    _add_common(run)
    run.add_argument("--data-path", default="", help="directory of events/items files for --dataset files")
    run.add_argument("--protocol", choices=("leave_one_out", "leave_last_order_out"), default=None,
                     help="evaluation protocol of --dataset files (default leave_one_out)")
    import inspect

    from recsys.data import synthetic

    generator = inspect.signature(synthetic.load).parameters
    for flag, option in SYNTHETIC_SIZE_FLAGS.items():
        run.add_argument(f"--{flag}", type=int, default=None,
                         help=f"--dataset synthetic only: generated {flag} (default {generator[option].default:,})")
    run.add_argument("--max-users", type=int, default=0, help="keep only the first N users (a real-data slice)")
    run.add_argument("--epochs", type=int, default=0, help="two-tower epochs (default: the model's)")
    run.add_argument("--distribution-strategy", choices=DISTRIBUTION_STRATEGIES, default="none",
                     help="tf.distribute strategy of the two-tower trainer: mirrored (this machine's devices) or "
                          "multiworker (the cluster in TF_CONFIG); default: one device")
    run.add_argument("--min-lift", type=float, default=0.0,
                     help="required relative NDCG@10 lift over popularity on validation to push")
    run.add_argument("--eval-users", type=int, default=0,
                     help="the retrieval evaluators rank the whole catalogue for this many users of each split, drawn "
                          "uniformly (the same in each), with 95%% confidence half-widths, and the graph trainer selects "
                          "its epoch and session shift, the dual-head and sequence trainers their epoch, on that many "
                          "validation users; default 0: every user")
    run.add_argument("--no-cache", action="store_true", help="re-run every component")
    run.add_argument("--no-semantic-ids", action="store_true", help="skip the content space (embeddings, RQ-VAE)")
    run.add_argument("--item-embeddings", default="",
                     help="precomputed item embeddings (.npz/.parquet/.csv with item_id + vectors) instead of text")
    run.add_argument("--rqvae-epochs", type=int, default=0, help="RQ-VAE epochs (default: the model's)")
    run.add_argument("--no-dual-head", action="store_true", help="skip the dual-head transformer")
    run.add_argument("--dual-head-epochs", type=int, default=0, help="dual-head epochs (default: the model's)")
    run.add_argument("--sequential", action="store_true",
                     help="also train, evaluate and (if it beats the two-tower) push the SASRec-style sequence model "
                          "(sequential_retrieval); off by default: it adds about as much as the dual head")
    run.add_argument("--sequential-epochs", type=int, default=0,
                     help="sequence model's maximum epochs (default: the pipeline's; early stopping on validation)")
    run.add_argument("--no-graph", action="store_true", help="skip the graph retriever (and the ranker)")
    run.add_argument("--no-ranker", action="store_true", help="skip the ranking stage (ranker and its exposures)")
    run.add_argument("--max-steps-per-epoch", type=int, default=0,
                     help="scale probes: every trainer (two-tower, dual head, sequence model, graph, ranker and their "
                          "prefix copies) stops each epoch after this many batches, so a run measures every "
                          "component's cost without training to the end of an epoch; not a trained model. Default 0: "
                          "every batch")
    run.add_argument("--ranker-users", type=int, default=0,
                     help="the ranker trains on the ranking-window units of this many users, drawn uniformly (as "
                          "--eval-users draws); default 0: every user's. With --eval-users, the ranker's validation "
                          "and test exposures are built for the evaluated users only")
    run.add_argument("--ranker-student", choices=("never", "served", "always"), default="never",
                     help="the dual-head student as a ranker candidate source: only when it is blessed for serving "
                          "(served), always (a measurement: serve dual_retrieval with the ranker), or never "
                          "(default); any but never trains a prefix copy of the dual head")
    run.add_argument("--graph-epochs", type=int, default=0,
                     help="graph retriever's maximum epochs (default: the model's; early stopping on validation)")

    serve = sub.add_parser("serve", help="serve pushed models over TF Serving's REST and gRPC API "
                                         "(arguments after -- go to the server, e.g. --file_system_poll_wait_seconds=5)")
    _add_common(serve)
    serve.add_argument("--model_config_file", default="")
    serve.add_argument("--port", type=int, default=8500)
    serve.add_argument("--rest_api_port", type=int, default=8501)

    rec = sub.add_parser("recommend", help="top-k items for a user or a history")
    _add_common(rec)
    rec.add_argument("--user")
    rec.add_argument("--history", help="comma-separated item ids, oldest first")
    rec.add_argument("--exclude", default="", help="comma-separated item ids not to return")
    rec.add_argument("--k", type=int, default=10)
    rec.add_argument("--server", default="", help="host:port of a model server (default: load the model in-process)")
    rec.add_argument("--protocol", choices=("rest", "grpc"), default="rest")
    rec.add_argument("--model", default="auto",
                     help="served model (default: dual_retrieval if the server has it, else retrieval)")
    rec.add_argument("--timeout", type=float, default=10.0)

    camp = sub.add_parser("campaign", help="batch job: each user's most likely next items from the generative "
                                           "head, one JSON line per user (arguments after -- go to Beam)")
    _add_common(camp)
    camp.add_argument("--top-n", type=int, default=5)
    camp.add_argument("--exclude-history", action="store_true", help="never send what the user already has")
    camp.add_argument("--campaign-output", default="",
                      help="output prefix (default: <output>/campaign/<dataset>.next_items)")

    ev = sub.add_parser("evaluate", help="evaluate the pushed models and baselines, print and write the table")
    _add_common(ev)
    ev.add_argument("--split", choices=("test", "validation"), default="test")

    ab = sub.add_parser("ab-report", help="CTR per experiment arm with confidence intervals, from the event log")
    ab.add_argument("--log", required=True, help="the multi-stage client's JSONL event log (rotated files included)")
    ab.add_argument("--experiment", default="", help="only this experiment's events")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_args: list[str] = []  # after "--": Beam's arguments for run, the server's for serve
    if "--" in argv:
        cut = argv.index("--")
        argv, beam_args = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    handlers = {"run": lambda: cmd_run(args, beam_args), "serve": lambda: cmd_serve(args, beam_args),
                "recommend": lambda: cmd_recommend(args), "evaluate": lambda: cmd_evaluate(args),
                "campaign": lambda: cmd_campaign(args, beam_args), "ab-report": lambda: cmd_ab_report(args)}
    from recsys.data import DataValidationError, DatasetNotFoundError
    from tfx_pipeline.artifacts import ArtifactNotFound

    try:
        return handlers[args.command]()
    except (DataValidationError, DatasetNotFoundError, ArtifactNotFound) as e:
        # the user's input or set-up is wrong: say what, without a traceback
        print(f"recsys {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
