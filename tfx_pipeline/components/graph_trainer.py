"""GraphTrainer: the interaction graph + content embeddings → the trained graph retriever (a Model artifact).

Trains ``trainer.graph`` (UltraGCN-style multi-behaviour objective by default,
LightGCN with ``{"variant": "lightgcn"}``) to convergence with early stopping on
validation NDCG@10, then writes the served vectors (``trainer.graph.persist``)
to ``Format-Serving``. ``config_json`` holds ``GraphConfig`` overrides.
"""
import json
import os

from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component

from recsys import names as N


@component
def GraphTrainer(  # noqa: N802
    examples: InputArtifact[tfx.types.standard_artifacts.Examples],
    graph: InputArtifact[tfx.types.standard_artifacts.Examples],
    content: InputArtifact[tfx.types.standard_artifacts.Examples],
    model: OutputArtifact[tfx.types.standard_artifacts.Model],
    config_json: Parameter[str] = "{}",
    code_version: Parameter[int] = 1,  # the pipeline passes it; bumped when training changes (cache key)
) -> None:
    from recsys import features as F
    from trainer import graph as G
    config = G.GraphConfig.from_dict(json.loads(config_json))
    vectors = G.catalogue_content(examples.uri, content.uri) if config.semantic_init else None
    data = G.load_graph(graph.uri, examples.uri, config.behaviours, config.neighbours, vectors)
    val = G.load_eval_rows(examples.uri, F.EVAL, data)
    every = len(val.users)
    val = G.sample_eval_rows(val, config.val_users)
    exclude = examples.get_string_custom_property("protocol") == N.LEAVE_ONE_OUT  # history mask (RecBole)
    print(f"[graph] training {config.variant} on {len(data.edge_user):,} edges ({', '.join(data.behaviours)}), "
          f"{data.num_users:,} users, {data.num_items:,} items; {len(val.users):,} validation rows"
          f"{f' (sampled of {every:,})' if len(val.users) < every else ''}", flush=True)
    result = G.train(data, val, config, exclude, log=lambda m: print(m, flush=True))
    G.save_trained(result, data, config, os.path.join(model.uri, N.SERVING_SUBDIR), {"exclude_history": exclude})
    print(f"[graph] best epoch {result.best_epoch}: validation NDCG@10 {result.best_val['NDCG@10']:.4f}, "
          f"{result.seconds_per_epoch:.2f} s/epoch, {result.wall_s:.0f} s in all", flush=True)
