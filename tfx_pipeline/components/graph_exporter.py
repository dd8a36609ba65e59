"""GraphExporter: the trained graph retriever → ``graph_retrieval`` (ScaNN) and ``graph_retrieval_bruteforce``.

Through the shared twin export (``export.twins``): ScaNN tuned on the validation
users' vectors and the validation histories' anonymous vectors (both kinds of served
query) until recall@10 against brute force reaches the target; warm-up
requests for the history, user and session signatures.
"""
import logging
import os
import time

from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component

from recsys import names as N

_log = logging.getLogger("recsys.pipeline")
REPORT_FILE = "graph_report.json"


@component
def GraphExporter(  # noqa: N802
    examples: InputArtifact[tfx.types.standard_artifacts.Examples],
    model: InputArtifact[tfx.types.standard_artifacts.Model],
    scann_model: OutputArtifact[tfx.types.standard_artifacts.Model],
    bruteforce_model: OutputArtifact[tfx.types.standard_artifacts.Model],
    max_k: Parameter[int] = 100,
    max_exclude: Parameter[int] = 500,
    target_recall: Parameter[float] = 0.95,
    code_version: Parameter[int] = 1,  # the pipeline passes it; bumped when the export changes (cache key)
) -> None:
    import numpy as np
    import scann  # noqa: F401  (registers the ScaNN ops)

    from export.graph import GraphRetrievalModule
    from export.twins import embed_histories, export_twins
    from recsys import features as F
    from trainer import graph as G
    from trainer.warmup import user_requests
    from transform import examples_io, fileio

    start = time.time()
    trained = G.load_trained(os.path.join(model.uri, N.SERVING_SUBDIR))
    users = [u for u in trained.user_ids.tolist()][:5]
    histories = examples_io.latest_histories(examples.uri, users=frozenset(users))  # the warm-up users' only
    validation = examples_io.read_rows(examples.uri, F.EVAL)
    val_users = set(validation.user_ids)
    upos = {u: i for i, u in enumerate(trained.user_ids.tolist())}
    rows = [upos[u] for u in sorted(val_users) if u in upos] or list(range(min(100, len(upos))))

    def build(index, params):
        return GraphRetrievalModule(trained.user_ids, trained.user_vectors, trained.item_ids, trained.item_vectors,
                                    trained.query_vectors, trained.content_map, trained.content_scale, trained.session_weight,
                                    index=index, max_k=max_k, max_exclude=max_exclude, scann_params=params)

    recent = [histories[u].items[-5:] if u in histories else [] for u in users]
    val_hist = validation.histories

    def queries(bruteforce):
        """Both kinds of served query: validation users' vectors and anonymous (history-mean) vectors."""
        anonymous = np.zeros((0, trained.item_vectors.shape[1]), np.float32)
        if val_hist:
            anonymous = embed_histories(lambda h: bruteforce.user_embedding(history=h)[N.EMBEDDING], val_hist)
            anonymous = anonymous[np.linalg.norm(anonymous, axis=1) > 0]
        return np.concatenate([trained.user_vectors[rows], anonymous])

    twins = export_twins(build, trained.item_vectors, trained.item_ids, queries,
                         model_name=N.GRAPH_RETRIEVAL, scann_dir=os.path.join(scann_model.uri, N.SERVING_SUBDIR),
                         bruteforce_dir=os.path.join(bruteforce_model.uri, N.SERVING_SUBDIR),
                         warmup_histories=[histories[u].items if u in histories else [] for u in users],
                         target_recall=target_recall, final_k=max_k + max_exclude,
                         log=lambda m: print(m, flush=True), extra_warmup=user_requests(users, recent=recent))
    report = {"catalog_items": len(trained.item_ids), "users": len(trained.user_ids), "scann": twins.report(),
              "train": {k: trained.info[k] for k in ("best_epoch", "seconds_per_epoch", "wall_s", "session_weight",
                                                      "query_self_weight")},
              "content_map": bool(np.asarray(trained.content_map).shape[0]), "elapsed_s": round(time.time() - start, 1)}
    fileio.write_json(os.path.join(scann_model.uri, REPORT_FILE), report, indent=1)
    _log.info("GraphExporter wrote %s in %.1fs", scann_model.uri, time.time() - start)
