"""The pipeline as one pure function: every path, threshold and Beam argument is a parameter.

SequenceExampleGen → StatisticsGen → SchemaGen → ExampleValidator → Transform →
Trainer → IndexBuilder → RetrievalEvaluator → Pusher (ScaNN model) + Pusher
(brute-force twin). The Pushers only push a model the evaluator blessed.

Content space (``semantic_ids=True``): SequenceExampleGen → ContentEmbedder →
Trainer (RQ-VAE Semantic IDs) → Pusher (``item_encoder``).
"""
from __future__ import annotations

import json
import os
from typing import Sequence

from tfx import v1 as tfx
from tfx.proto import transform_pb2

from recsys import features as F
from tfx_pipeline.components.content_embedder import ContentEmbedder
from tfx_pipeline.components.evaluator import RetrievalEvaluator
from tfx_pipeline.components.example_gen import SequenceExampleGen
from tfx_pipeline.components.index_builder import IndexBuilder

RETRIEVAL = "retrieval"
RETRIEVAL_BRUTE_FORCE = "retrieval_bruteforce"
ITEM_ENCODER = "item_encoder"
DEFAULT_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")


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
    semantic_ids: bool = True,
    item_embeddings_path: str = "",
    rqvae: dict | None = None,
    beam_pipeline_args: Sequence[str] = DEFAULT_BEAM_ARGS,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """Builds the retrieval pipeline for one dataset."""
    example_gen = SequenceExampleGen(
        dataset=dataset, data_path=data_path, fingerprint=fingerprint,
        options_json=json.dumps(dataset_options or {}, sort_keys=True), max_history=max_history, max_users=max_users)
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
        model=trainer.outputs["model"], max_k=max_k, max_exclude=max_exclude, target_recall=scann_target_recall)
    evaluator = RetrievalEvaluator(
        examples=example_gen.outputs["examples"], bruteforce_model=index_builder.outputs["bruteforce_model"],
        scann_model=index_builder.outputs["scann_model"], min_lift=min_lift)
    pushers = [
        tfx.components.Pusher(
            model=index_builder.outputs[output], model_blessing=evaluator.outputs["blessing"],
            push_destination=tfx.proto.PushDestination(
                filesystem=tfx.proto.PushDestination.Filesystem(base_directory=os.path.join(serving_dir, name))),
        ).with_id(component_id)
        for output, name, component_id in (
            ("scann_model", RETRIEVAL, "PushRetrieval"),
            ("bruteforce_model", RETRIEVAL_BRUTE_FORCE, "PushRetrievalBruteForce"),
        )
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
            custom_config={"rqvae": dict(rqvae or {})},
        ).with_id("SemanticIdTrainer")
        # No blessing: the trainer itself refuses to export IDs that are not unique.
        push_encoder = tfx.components.Pusher(
            model=semantic_trainer.outputs["model"],
            push_destination=tfx.proto.PushDestination(
                filesystem=tfx.proto.PushDestination.Filesystem(
                    base_directory=os.path.join(serving_dir, ITEM_ENCODER))),
        ).with_id("PushItemEncoder")
        content_space = [content_embedder, semantic_trainer, push_encoder]
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, example_validator, transform, trainer,
                    index_builder, evaluator, *pushers, *content_space],
        enable_cache=enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path),
        beam_pipeline_args=list(beam_pipeline_args),
    )
