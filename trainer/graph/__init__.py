"""The graph retriever: a multi-behaviour, target-aligned UltraGCN-style model (or LightGCN) over the training graph.

Modules (imports point down this list; none imports ``tfx_pipeline``):

* ``config``: ``GraphConfig`` (``variant`` = ``ultragcn`` | ``lightgcn``);
* ``losses``: UltraGCN's constraint and item–item losses, BPR, LightGCN propagation (pure functions);
* ``data``: ``GraphData`` (the GraphBuilder's artifact in index space), ``EvalRows``;
* ``model``: ``GraphModel`` (tables, semantic initialisation, relations, both objectives);
* ``training``: ``train`` (early stopping on validation NDCG@10, session-shift weight);
* ``persist``: ``save_trained`` / ``load_trained`` (the served vectors).

See ``docs/graph_retrieval.md`` for what is taken from which paper.
"""
from trainer.graph.config import LIGHTGCN, ULTRAGCN, VARIANTS, GraphConfig
from trainer.graph.data import EvalRows, GraphData, catalogue_content, load_eval_rows, load_graph, sample_eval_rows
from trainer.graph.persist import TrainedGraph, load_trained, save_trained
from trainer.graph.training import TrainResult, evaluate, session_vectors, train

__all__ = ["LIGHTGCN", "ULTRAGCN", "VARIANTS", "GraphConfig", "EvalRows", "GraphData", "catalogue_content",
           "load_eval_rows", "load_graph", "sample_eval_rows", "TrainedGraph", "load_trained", "save_trained", "TrainResult",
           "evaluate", "session_vectors", "train"]
