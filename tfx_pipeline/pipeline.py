"""The pipeline as one pure function: every path, threshold and Beam argument is a parameter.

SequenceExampleGen → StatisticsGen → SchemaGen → ExampleValidator → Transform →
Trainer → IndexBuilder → RetrievalEvaluator → Pusher (ScaNN model) + Pusher
(brute-force twin). The Pushers only push a model the evaluator blessed.

Content space (``semantic_ids=True``): SequenceExampleGen → ContentEmbedder →
Trainer (RQ-VAE Semantic IDs) → Pusher (``item_encoder``).

Graph space (``graph=True``, needs the content embeddings): GraphBuilder (Beam:
per-behaviour edges + item graph) → GraphTrainer (``trainer/graph/``) →
GraphExporter → GraphEvaluator → Pushers: ``graph_retrieval`` + brute-force twin
(only when it beats item-CF's validation NDCG@10).

Collaborative space (``dual_head=True``, needs the content space): Trainer
(dual-head transformer, ``trainer/dual_head/``) → DualHeadExporter →
DualHeadEvaluator → Pushers: ``dual_retrieval`` + brute-force twin (only when
the student beats the two-tower on validation) and ``generative`` (when the
teacher beats popularity).

Sequence model (``sequential=True``, off by default: it would take ``make run`` past its
20-minute budget; needs the content space's item table): the same
components again with the SASRec-style preset (``trainer.dual_head.SASREC``):
SequentialTrainer → SequentialExporter → SequentialEvaluator → Pushers:
``sequential_retrieval`` + brute-force twin (only when it beats the two-tower on
validation).
"""
from __future__ import annotations

import json
import os
from typing import Sequence

from tfx import v1 as tfx
from tfx.proto import transform_pb2

from recsys import features as F
from tfx_pipeline.components.content_embedder import ContentEmbedder
from tfx_pipeline.components.dual_head_evaluator import DualHeadEvaluator
from tfx_pipeline.components.dual_head_exporter import DualHeadExporter
from tfx_pipeline.components.evaluator import RetrievalEvaluator
from tfx_pipeline.components.example_gen import SequenceExampleGen
from tfx_pipeline.components.graph_builder import GraphBuilder
from tfx_pipeline.components.graph_evaluator import GraphEvaluator
from tfx_pipeline.components.graph_exporter import GraphExporter
from tfx_pipeline.components.graph_trainer import GraphTrainer
from tfx_pipeline.components.index_builder import IndexBuilder
from tfx_pipeline.components.exposure_builder import ExposureBuilder
from tfx_pipeline.components.ranker_evaluator import RankerEvaluator
from tfx_pipeline.components.ranker_exporter import RankerExporter
from tfx_pipeline.components.ranker_trainer import RankerTrainer
from tfx_pipeline.components.ranking_window import RankingWindow

from recsys.names import (  # noqa: F401  (SERVED_MODELS re-exported for the serving config)
    DUAL_RETRIEVAL, DUAL_RETRIEVAL_BRUTE_FORCE, GENERATIVE, GRAPH_RETRIEVAL, GRAPH_RETRIEVAL_BRUTE_FORCE, ITEM_ENCODER,
    RANKER, RETRIEVAL, RETRIEVAL_BRUTE_FORCE, SEQUENTIAL_RETRIEVAL, SEQUENTIAL_RETRIEVAL_BRUTE_FORCE, SERVED_MODELS)
#: Beam's local batch runner, named: Beam 2.74's DirectRunner first tries Prism (a Go binary it downloads
#: from GitHub, so offline it fails and falls back, and online the run changes engine)
DEFAULT_BEAM_ARGS = ("--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1")
#: DualHeadExporter's cache key (TFX does not see code changes): 2: stored users keep order positions and behaviours;
#: 3: item and user tables as variables (saved_model.pb no longer grows with them)
DUAL_HEAD_EXPORT_VERSION = 3
#: the other exporters' cache keys, bumped together when every export moved its item and user tables from graph
#: constants to variables (``trainer.base.frozen_table``): 3 for the two-tower's IndexBuilder (2: recommend_vector
#: and user_vector signatures), 5 for the GraphExporter (4: session and anonymous queries from the item query
#: vectors), 3 for the RankerExporter (2: request_time)
INDEX_EXPORT_VERSION, GRAPH_EXPORT_VERSION, RANKER_EXPORT_VERSION = 3, 5, 3
#: this stack's own package definition; remote Beam workers need it (our Beam components are ours, not TFX's)
SETUP_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")
#: Beam flags that tell a runner which Python code to ship (TFX's ``make_beam_dependency_flags`` list)
_DEPENDENCY_FLAGS = ("extra_package", "extra_packages", "setup_file", "requirements_file",
                     "worker_harness_container_image", "sdk_container_image")


def with_setup_file(beam_pipeline_args: Sequence[str]) -> list[str]:
    """``beam_pipeline_args`` plus ``--setup_file=<this repo's setup.py>`` unless they already name the code to ship.

    Without any such flag, every TFX Beam executor builds an sdist of TFX itself before it runs (1.8 s
    each, 9 Beam components per run; ``benchmarks/beam_overhead.py``) into a temporary directory it never
    deletes (44 MB each). The local FnApiRunner ignores the flag; a remote runner (Dataflow, Flink, Spark)
    needs exactly this package, which holds our own Beam components as well. Unchanged when ``setup.py`` is not beside the package
    (an installed wheel): then pass a dependency flag yourself. (Through the DirectRunner's Prism attempt,
    Beam itself would build an sdist of the package named here: ``DEFAULT_BEAM_ARGS`` name the FnApiRunner.)
    """
    args = list(beam_pipeline_args)
    names = {a[2:].split("=", 1)[0].replace("-", "_") for a in args if a.startswith("--")}
    if names & set(_DEPENDENCY_FLAGS) or not os.path.isfile(SETUP_FILE):
        return args
    return args + [f"--setup_file={SETUP_FILE}"]


def create_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    metadata_path: str,
    serving_dir: str,
    dataset: str,
    data_path: str = "",
    fingerprint: str = "",
    dataset_options: dict | None = None,
    max_users: int = 0,
    max_history: int = F.DEFAULT_MAX_HISTORY,
    two_tower: dict | None = None,
    max_k: int = 100,
    max_exclude: int = 500,
    scann_target_recall: float = 0.95,
    min_lift: float = 0.0,
    eval_users: int = 0,
    semantic_ids: bool = True,
    item_embeddings_path: str = "",
    rqvae: dict | None = None,
    dual_head: bool = True,
    dual_head_config: dict | None = None,
    sequential: bool = False,
    sequential_config: dict | None = None,
    graph: bool = True,
    graph_config: dict | None = None,
    ranking: bool = True,
    ranking_config: dict | None = None,
    beam_pipeline_args: Sequence[str] = DEFAULT_BEAM_ARGS,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """Builds the retrieval pipeline for one dataset.

    ``eval_users`` > 0: the retrieval evaluators (spine, graph, dual head, sequence model) rank the whole
    catalogue for that many users of each split, drawn uniformly (the same users in each), and state 95%
    confidence half-widths (``export.evaluate.evaluate_split``); the RankerEvaluator ranks the candidates of
    the same users, and the ranker validates each epoch on them (``RankerConfig.val_users``); 0 (default):
    every user.
    """
    if eval_users < 0:
        raise ValueError(f"eval_users must be >= 0 (0 = every user); got {eval_users}")
    sampled = {"eval_users": eval_users} if eval_users else {}  # (unset: the evaluators' cache keys as before)
    example_gen = SequenceExampleGen(
        dataset=dataset, data_path=data_path, fingerprint=fingerprint,
        options_json=json.dumps(dataset_options or {}, sort_keys=True), max_history=max_history, max_users=max_users,
        code_version=3)  # 2: catalogue rows carry created_at; 3: synthetic events generated inside Beam per shard
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False, exclude_splits=[F.CATALOG])
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"],
        exclude_splits=[F.CATALOG])
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn="transform.preprocessing.preprocessing_fn",
        splits_config=transform_pb2.SplitsConfig(analyze=[F.TRAIN], transform=list(F.SEQUENCE_SPLITS)),
    )
    trainer = tfx.components.Trainer(
        run_fn="trainer.two_tower.run_fn",
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=[F.TRAIN]),
        eval_args=tfx.proto.EvalArgs(splits=[F.EVAL]),
        custom_config={"two_tower": dict(two_tower or {}, max_history=max_history)},
    )
    index_builder = IndexBuilder(
        examples=example_gen.outputs["examples"], transform_graph=transform.outputs["transform_graph"],
        model=trainer.outputs["model"], max_k=max_k, max_exclude=max_exclude, target_recall=scann_target_recall,
        code_version=INDEX_EXPORT_VERSION)
    evaluator = RetrievalEvaluator(
        examples=example_gen.outputs["examples"], bruteforce_model=index_builder.outputs["bruteforce_model"],
        scann_model=index_builder.outputs["scann_model"], min_lift=min_lift, **sampled)
    pushers = [
        _pusher(index_builder.outputs["scann_model"], evaluator.outputs["blessing"], serving_dir, RETRIEVAL,
                "PushRetrieval"),
        _pusher(index_builder.outputs["bruteforce_model"], evaluator.outputs["blessing"], serving_dir,
                RETRIEVAL_BRUTE_FORCE, "PushRetrievalBruteForce"),
    ]
    content_space = []
    if semantic_ids:
        content_embedder = ContentEmbedder(examples=example_gen.outputs["examples"],
                                           precomputed_path=item_embeddings_path)
        semantic_trainer = tfx.components.Trainer(
            run_fn="trainer.semantic_id_trainer.run_fn",
            examples=content_embedder.outputs["embeddings"],
            train_args=tfx.proto.TrainArgs(splits=[F.CATALOG]),
            eval_args=tfx.proto.EvalArgs(splits=[F.CATALOG]),
            # artifact_format: bumped when the trainer's outputs change, so cached runs are not reused
            # (format 2 adds the content embeddings the dual-head trainer reads)
            custom_config={"rqvae": dict(rqvae or {}), "artifact_format": 2},
        ).with_id("SemanticIdTrainer")
        # No blessing: the trainer itself refuses to export IDs that are not unique.
        push_encoder = _pusher(semantic_trainer.outputs["model"], None, serving_dir, ITEM_ENCODER, "PushItemEncoder")
        content_space = [content_embedder, semantic_trainer, push_encoder]
        if graph:
            graph_components = _graph_space(example_gen, content_embedder, evaluator, serving_dir,
                                            dict(graph_config or {}), max_k=max_k, max_exclude=max_exclude,
                                            target_recall=scann_target_recall, min_lift=min_lift, sampled=sampled)
            content_space += graph_components
        collaborative = []
        if dual_head:
            collaborative = _collaborative_space(
                example_gen, transform, semantic_trainer, evaluator, serving_dir, dual_head_trainer_config(dual_head_config),
                max_k=max_k, max_exclude=max_exclude, target_recall=scann_target_recall, min_lift=min_lift,
                sampled=sampled)
        content_space += collaborative  # before the ranking space: its Pushers come first (tests' push table)
        if sequential:
            content_space += _sequence_space(
                example_gen, transform, semantic_trainer, evaluator, serving_dir, dict(sequential_config or {}),
                max_k=max_k, max_exclude=max_exclude, target_recall=scann_target_recall, min_lift=min_lift,
                sampled=sampled)
        if graph and ranking:
            content_space += _ranking_space(
                example_gen, schema_gen, content_embedder, semantic_trainer, index_builder,
                graph_components[2], evaluator, serving_dir, dict(graph_config or {}),
                dict(ranking_config or {}), two_tower=dict(two_tower or {}, max_history=max_history),
                dual=(dual_head_trainer_config(dual_head_config), collaborative[1], collaborative[2]) if dual_head else None,
                max_k=max_k, max_exclude=max_exclude, target_recall=scann_target_recall, min_lift=min_lift,
                sampled=sampled)
    elif dual_head or graph or sequential:
        raise ValueError("the dual-head, sequence and graph models need the content space (semantic_ids=True)")
    if ranking and not (semantic_ids and graph):
        raise ValueError("the ranker needs the graph retriever (graph=True, semantic_ids=True)")
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, example_validator, transform, trainer,
                    index_builder, evaluator, *pushers, *content_space],
        enable_cache=enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path),
        beam_pipeline_args=list(beam_pipeline_args),
    )


def _pusher(model, blessing, serving_dir: str, name: str, component_id: str):
    """A Pusher of ``model`` to ``serving_dir/name`` (only when ``blessing`` says blessed, if one is given)."""
    return tfx.components.Pusher(
        model=model, model_blessing=blessing,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=os.path.join(serving_dir, name))),
    ).with_id(component_id)


def _dual_head_components(example_gen, transform, semantic_trainer, evaluator, config: dict, *, ids: tuple,
                          exporter_args: dict, evaluator_args: dict, max_k: int, max_exclude: int,
                          target_recall: float, min_lift: float, sampled: dict) -> list:
    """[trainer, exporter, evaluator] of a ``DualHeadModel`` (``trainer/dual_head/``), with component ``ids``."""
    trainer = tfx.components.Trainer(
        run_fn="trainer.dual_head.run_fn",
        examples=example_gen.outputs["examples"],  # raw rows: order positions and behaviour are model inputs
        transform_graph=transform.outputs["transform_graph"],
        base_model=semantic_trainer.outputs["model"],  # Semantic ID table + content embeddings
        train_args=tfx.proto.TrainArgs(splits=[F.TRAIN]),
        eval_args=tfx.proto.EvalArgs(splits=[F.EVAL]),
        custom_config={"dual_head": config},
    ).with_id(ids[0])
    exporter = DualHeadExporter(examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
                                max_k=max_k, max_exclude=max_exclude, target_recall=target_recall,
                                code_version=DUAL_HEAD_EXPORT_VERSION, **exporter_args).with_id(ids[1])
    model_evaluator = DualHeadEvaluator(
        examples=example_gen.outputs["examples"], bruteforce_model=exporter.outputs["bruteforce_model"],
        scann_model=exporter.outputs["scann_model"], generative_model=exporter.outputs["generative_model"],
        baseline_evaluation=evaluator.outputs["evaluation"], min_lift=min_lift, **evaluator_args, **sampled,
    ).with_id(ids[2])
    return [trainer, exporter, model_evaluator]


def _collaborative_space(example_gen, transform, semantic_trainer, evaluator, serving_dir: str, config: dict, *,
                         max_k: int, max_exclude: int, target_recall: float, min_lift: float, sampled: dict) -> list:
    """Dual-head trainer → exporter → evaluator → three pushers."""
    trainer, exporter, dual_evaluator = _dual_head_components(
        example_gen, transform, semantic_trainer, evaluator, config,
        ids=("DualHeadTrainer", "DualHeadExporter", "DualHeadEvaluator"), exporter_args={}, evaluator_args={},
        max_k=max_k, max_exclude=max_exclude, target_recall=target_recall, min_lift=min_lift, sampled=sampled)
    retrieval_ok, generative_ok = dual_evaluator.outputs["retrieval_blessing"], dual_evaluator.outputs["generative_blessing"]
    return [trainer, exporter, dual_evaluator,
            _pusher(exporter.outputs["scann_model"], retrieval_ok, serving_dir, DUAL_RETRIEVAL, "PushDualRetrieval"),
            _pusher(exporter.outputs["bruteforce_model"], retrieval_ok, serving_dir, DUAL_RETRIEVAL_BRUTE_FORCE,
                    "PushDualRetrievalBruteForce"),
            _pusher(exporter.outputs["generative_model"], generative_ok, serving_dir, GENERATIVE, "PushGenerative")]


def dual_head_trainer_config(values: dict | None = None) -> dict:
    """The dual head's trainer config: the pipeline's defaults (``DUAL_HEAD_DEFAULTS``) and ``values`` on top,
    checked here so a bad value fails at build time."""
    from dataclasses import asdict

    from trainer.dual_head.config import DualHeadConfig

    return _cache_stable(asdict(DualHeadConfig.from_dict(dict(DUAL_HEAD_DEFAULTS, **(values or {})))))


def _cache_stable(config: dict) -> dict:
    """``config`` without ``val_users`` when it is 0 (every validation user): the field came after the runs
    already cached, and a trainer's custom config is part of its cache key, so a run without a sample keeps
    its key (the trainer reads the missing field as its default, 0)."""
    if not config.get("val_users"):
        config.pop("val_users", None)
    return config


#: the pipeline's dual head beyond ``DualHeadConfig``'s defaults (the design's full model, the ablation's C): the
#: student trained on plain targets with in-batch negatives and not distilled, the generative head trained beside
#: it on the shared encoder (the campaign job's model). Measured on MovieLens-100K validation NDCG@10 (4 epochs, the
#: `make run` budget; benchmarks/dual_head_ablation.py, README "Trained to convergence"): this model 0.1147, C 0.0874,
#: the two-tower 0.0966; debiased targets + hard negatives cost 0.045 HR@10, and distillation from the teacher,
#: even trained to convergence and frozen, cost the student (0.0922 against 0.1148 without it).
DUAL_HEAD_DEFAULTS = {"debias_targets": False, "hard_negatives_category": 0, "hard_negatives_history": 0,
                      "distill_weight": 0.0}


def sequential_config(values: dict | None = None) -> dict:
    """The sequence model's trainer config: the SASRec preset (``trainer.dual_head.SASREC``), the pipeline's
    defaults (``SEQUENTIAL_DEFAULTS``) and ``values`` on top, checked here so a bad value fails at build time."""
    from dataclasses import asdict

    from trainer.dual_head.config import sasrec_config

    return _cache_stable(asdict(sasrec_config(dict(SEQUENTIAL_DEFAULTS, **(values or {})))))


#: the pipeline's sequence model beyond the SASRec preset: trained until validation NDCG@10 stops
#: improving (early stopping, patience 2), ``epochs`` only a ceiling
SEQUENTIAL_DEFAULTS = {"epochs": 20}


def _sequence_space(example_gen, transform, semantic_trainer, evaluator, serving_dir: str, config: dict, *,
                    max_k: int, max_exclude: int, target_recall: float, min_lift: float, sampled: dict) -> list:
    """The SASRec-style model through the dual head's components: trainer → exporter → evaluator → two pushers."""
    trainer, exporter, seq_evaluator = _dual_head_components(
        example_gen, transform, semantic_trainer, evaluator, sequential_config(config),
        ids=("SequentialTrainer", "SequentialExporter", "SequentialEvaluator"),
        exporter_args={"model_name": SEQUENTIAL_RETRIEVAL, "generative": 0},
        evaluator_args={"student": SEQUENTIAL_RETRIEVAL},
        max_k=max_k, max_exclude=max_exclude, target_recall=target_recall, min_lift=min_lift, sampled=sampled)
    blessed = seq_evaluator.outputs["retrieval_blessing"]
    return [trainer, exporter, seq_evaluator,
            _pusher(exporter.outputs["scann_model"], blessed, serving_dir, SEQUENTIAL_RETRIEVAL,
                    "PushSequentialRetrieval"),
            _pusher(exporter.outputs["bruteforce_model"], blessed, serving_dir, SEQUENTIAL_RETRIEVAL_BRUTE_FORCE,
                    "PushSequentialRetrievalBruteForce")]


def _graph_space(example_gen, content_embedder, evaluator, serving_dir: str, config: dict, *, max_k: int,
                 max_exclude: int, target_recall: float, min_lift: float, sampled: dict) -> list:
    """GraphBuilder (Beam) → graph Trainer → GraphExporter → GraphEvaluator → two pushers."""
    builder = GraphBuilder(examples=example_gen.outputs["examples"], neighbours=int(config.get("neighbours", 10)))
    trainer = GraphTrainer(examples=example_gen.outputs["examples"], graph=builder.outputs["graph"],
                           content=content_embedder.outputs["embeddings"],
                           config_json=json.dumps(config, sort_keys=True),
                           # bumped when training changes (a code change alone keeps the cache): 2 = smoothed
                           # selection, 3 = repeat-count edge weights by default, 4 = item query vectors,
                           # shared negatives, lr 3e-3
                           code_version=4)
    exporter = GraphExporter(examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
                             max_k=max_k, max_exclude=max_exclude, target_recall=target_recall,
                             # 2: ScaNN tuned on user and anonymous queries; 3: recommend_vector; 4: session and
                             # anonymous queries from the item query vectors; 5: tables as variables
                             code_version=GRAPH_EXPORT_VERSION)
    graph_evaluator = GraphEvaluator(
        examples=example_gen.outputs["examples"], bruteforce_model=exporter.outputs["bruteforce_model"],
        scann_model=exporter.outputs["scann_model"], baseline_evaluation=evaluator.outputs["evaluation"],
        min_lift=min_lift, **sampled)
    blessed = graph_evaluator.outputs["blessing"]
    return [builder, trainer, exporter, graph_evaluator,
            _pusher(exporter.outputs["scann_model"], blessed, serving_dir, GRAPH_RETRIEVAL, "PushGraphRetrieval"),
            _pusher(exporter.outputs["bruteforce_model"], blessed, serving_dir, GRAPH_RETRIEVAL_BRUTE_FORCE,
                    "PushGraphRetrievalBruteForce")]


STUDENT_MODES = ("served", "always", "never")


def _ranker_config(model: dict, sampled: dict) -> dict:
    """The ranker's config overrides, with ``val_users`` = ``--eval-users`` when that is set (and only then, so a
    run without a sample keeps RankerTrainer's cache key)."""
    return dict(model, val_users=sampled["eval_users"]) if sampled.get("eval_users") else dict(model)


def _exposure_samples(config: dict, sampled: dict) -> dict:
    """ExposureBuilder's user samples: ``eval_users`` (the evaluators' ``--eval-users``: only the validation and
    test units they rank are built) and ``config["window_users"]`` (the ranker's training units of that many
    users). Unset ones are left out, so a run without a sample keeps the builder's cache key."""
    window_users = int(config.get("window_users", 0))
    if window_users < 0:
        raise ValueError(f"ranking window_users must be >= 0 (0 = every user); got {window_users}")
    out = {"window_users": window_users} if window_users else {}
    if sampled.get("eval_users"):
        out["eval_users"] = sampled["eval_users"]
    return out


def _ranking_space(example_gen, schema_gen, content_embedder, semantic_trainer, index_builder, graph_exporter,
                   evaluator, serving_dir: str, graph_config: dict, config: dict, *, two_tower: dict, dual,
                   max_k: int, max_exclude: int, target_recall: float, min_lift: float, sampled: dict) -> list:
    """RankingWindow → prefix retrievers (two-tower, graph[, dual head]) → ExposureBuilder → ranker → pusher.

    The prefix retrievers are the served retrievers' components run again on the
    ranking-window artifact (whose ``train`` split holds every training unit before
    each user's window), so the window's candidates come from retrievers that never
    saw the window (``transform/ranking_window.py``).

    ``dual`` = (dual-head config, its exporter, its evaluator) when the pipeline has the dual
    head. ``config["student"]`` says when its student is a candidate source: ``"served"``
    (only if its evaluator blessed it for serving, so the served system has it), ``"always"``
    (``dual_retrieval`` is then pushed with the ranker, gated on the ranker's blessing, whatever
    the student's own gate said: the ranker learnt its candidates), ``"never"`` (default). Any mode
    but ``"never"`` trains a prefix copy of the dual head, about as long as the dual head itself.
    """
    student = str(config.get("student", "never"))
    if student not in STUDENT_MODES:
        raise ValueError(f"ranking student mode must be one of {STUDENT_MODES}, got {student!r}")
    if student != "never" and dual is None:
        raise ValueError(f"ranking student mode {student!r} needs the dual head (dual_head=True)")
    window = RankingWindow(examples=example_gen.outputs["examples"], window=int(config.get("window", 5)),
                           code_version=2)  # 2: units ordered by (order, time, history) within a day
    prefix = window.outputs["window_examples"]
    transform = tfx.components.Transform(
        examples=prefix, schema=schema_gen.outputs["schema"],
        preprocessing_fn="transform.preprocessing.preprocessing_fn",
        splits_config=transform_pb2.SplitsConfig(analyze=[F.TRAIN], transform=list(F.SEQUENCE_SPLITS)),
    ).with_id("PrefixTransform")
    trainer = tfx.components.Trainer(
        run_fn="trainer.two_tower.run_fn", examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"], schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=[F.TRAIN]), eval_args=tfx.proto.EvalArgs(splits=[F.EVAL]),
        custom_config={"two_tower": two_tower}).with_id("PrefixTrainer")
    index = IndexBuilder(examples=prefix, transform_graph=transform.outputs["transform_graph"],
                         model=trainer.outputs["model"], max_k=max_k, max_exclude=max_exclude,
                         target_recall=target_recall, code_version=INDEX_EXPORT_VERSION).with_id("PrefixIndexBuilder")
    builder = GraphBuilder(examples=prefix, neighbours=int(graph_config.get("neighbours", 10))).with_id(
        "PrefixGraphBuilder")
    graph_trainer = GraphTrainer(examples=prefix, graph=builder.outputs["graph"],
                                 content=content_embedder.outputs["embeddings"],
                                 config_json=json.dumps(graph_config, sort_keys=True), code_version=4,
                                 ).with_id("PrefixGraphTrainer")
    graph_export = GraphExporter(examples=prefix, model=graph_trainer.outputs["model"], max_k=max_k,
                                 max_exclude=max_exclude, target_recall=target_recall,
                                 code_version=GRAPH_EXPORT_VERSION).with_id("PrefixGraphExporter")
    student_components, student_inputs = [], {}
    if student != "never":
        dual_config, dual_exporter, dual_evaluator = dual
        dual_trainer = tfx.components.Trainer(
            run_fn="trainer.dual_head.run_fn", examples=prefix, transform_graph=transform.outputs["transform_graph"],
            base_model=semantic_trainer.outputs["model"], train_args=tfx.proto.TrainArgs(splits=[F.TRAIN]),
            eval_args=tfx.proto.EvalArgs(splits=[F.EVAL]), custom_config={"dual_head": dual_config},
        ).with_id("PrefixDualHeadTrainer")
        prefix_dual = DualHeadExporter(examples=prefix, model=dual_trainer.outputs["model"], max_k=max_k,
                                       max_exclude=max_exclude, target_recall=target_recall, generative=0,
                                       code_version=DUAL_HEAD_EXPORT_VERSION).with_id("PrefixDualHeadExporter")
        student_components = [dual_trainer, prefix_dual]
        student_inputs = dict(prefix_student=prefix_dual.outputs["bruteforce_model"],
                              student=dual_exporter.outputs["bruteforce_model"])
        if student == "served":
            student_inputs["student_blessing"] = dual_evaluator.outputs["retrieval_blessing"]
    exposures = ExposureBuilder(
        examples=example_gen.outputs["examples"], window_examples=prefix,
        prefix_two_tower=index.outputs["bruteforce_model"], prefix_graph=graph_export.outputs["bruteforce_model"],
        two_tower=index_builder.outputs["bruteforce_model"], graph=graph_exporter.outputs["bruteforce_model"],
        **student_inputs, top_n_json=json.dumps(config.get("top_n", {}), sort_keys=True),
        **_exposure_samples(config, sampled),
        code_version=4)  # 3: timelines from the full history; 4: the student source's slot
    ranker_trainer = RankerTrainer(examples=example_gen.outputs["examples"], exposures=exposures.outputs["exposures"],
                                   content=content_embedder.outputs["embeddings"],
                                   semantic_ids=semantic_trainer.outputs["model"],
                                   config_json=json.dumps(_ranker_config(config.get("model", {}), sampled),
                                                          sort_keys=True),
                                   # 2: lr 3e-4; 3: no TransAct; 4: Semantic IDs, item age; 5: brand, price; 6: item
                                   # tables saved with the weights, streamed input above stream_above_mb
                                   code_version=6)
    exporter = RankerExporter(examples=example_gen.outputs["examples"], model=ranker_trainer.outputs["model"],
                              graph=graph_exporter.outputs["bruteforce_model"], code_version=RANKER_EXPORT_VERSION)
    ranker_evaluator = RankerEvaluator(examples=example_gen.outputs["examples"], exposures=exposures.outputs["exposures"],
                                       ranker=exporter.outputs["ranker"],
                                       baseline_evaluation=evaluator.outputs["evaluation"], min_lift=min_lift,
                                       **sampled)
    blessed = ranker_evaluator.outputs["blessing"]
    pushes = [_pusher(exporter.outputs["ranker"], blessed, serving_dir, RANKER, "PushRanker")]
    if student == "always":
        # the ranker learnt the student's candidates: serve the student with it, whatever its own gate said
        # (when that gate blessed it too, the same model is pushed twice, as two identical versions)
        dual_exporter = dual[1]
        pushes += [_pusher(dual_exporter.outputs["scann_model"], blessed, serving_dir, DUAL_RETRIEVAL,
                           "PushDualRetrievalForRanker"),
                   _pusher(dual_exporter.outputs["bruteforce_model"], blessed, serving_dir, DUAL_RETRIEVAL_BRUTE_FORCE,
                           "PushDualRetrievalBruteForceForRanker")]
    return [window, transform, trainer, index, builder, graph_trainer, graph_export, *student_components, exposures,
            ranker_trainer, exporter, ranker_evaluator, *pushes]
