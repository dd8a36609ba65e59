"""RankerExporter: the trained ranker + the served graph retriever's user vectors → the ``ranker`` SavedModel.

``export/ranker.py`` (signature ``rank``, also ``serving_default``) with warm-up
requests replayed at load. The long-term user vector table is copied from the
graph retriever that produced the validation/test candidates (``user_vector``),
unknown users getting that model's unknown-user vector, as in training.
"""
import os
import time

from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component

from recsys import names as N

UNKNOWN_USER = "\x00unknown-user"


@component
def RankerExporter(  # noqa: N802
    examples: InputArtifact[tfx.types.standard_artifacts.Examples],
    model: InputArtifact[tfx.types.standard_artifacts.Model],
    graph: InputArtifact[tfx.types.standard_artifacts.Model],
    ranker: OutputArtifact[tfx.types.standard_artifacts.Model],
    code_version: Parameter[int] = 1,  # the pipeline passes it; bumped when the export changes (cache key)
) -> None:
    import numpy as np
    import tensorflow as tf

    from export.ranker import RETRIEVAL_WIDTH, RankerModule, save
    from trainer import ranker as R
    from trainer.warmup import write_warmup
    from transform import examples_io, fileio

    start = time.time()
    trained = R.load_trained(os.path.join(model.uri, N.SERVING_SUBDIR))
    histories = examples_io.latest_histories(examples.uri)
    now = examples_io.last_timestamp(examples.uri)  # warm-up requests at the data's last time
    users = list(histories)
    user_vector = tf.saved_model.load(os.path.join(graph.uri, N.SERVING_SUBDIR)).signatures[N.USER_VECTOR]
    vectors = np.concatenate([user_vector(user_id=tf.constant(users[s:s + 4096]))[N.EMBEDDING].numpy()
                              for s in range(0, len(users), 4096)]) if users else np.zeros((0, 1), np.float32)
    unknown = user_vector(user_id=tf.constant([UNKNOWN_USER]))[N.EMBEDDING].numpy()[0]
    module = RankerModule(trained, users, vectors, unknown)
    export_dir = os.path.join(ranker.uri, N.SERVING_SUBDIR)
    save(module, export_dir)
    requests = []
    for u in users[:5]:
        h = histories[u]
        last = max(h.order_pos) + 1 if h.order_pos else 1
        cands = [i for i in trained.item_ids[:20].tolist()]
        requests.append((N.RANK, {
            N.USER_ID: np.array([u], dtype=object), N.HISTORY: np.array([h.items[-50:] or [""]], dtype=object),
            N.HISTORY_TYPES: np.array([["purchase"] * len(h.items[-50:]) or [""]], dtype=object),
            N.HISTORY_GAPS: np.array([[last - p for p in h.order_pos[-50:]] or [0]], dtype=np.int64),
            N.REQUEST_TIME: np.array([now], dtype=np.int64),
            N.CANDIDATES: np.array([cands], dtype=object),
            N.RETRIEVAL_FEATURES: np.zeros((1, len(cands), RETRIEVAL_WIDTH), np.float32)}))
    write_warmup(export_dir, N.RANKER, requests)
    fileio.write_json(os.path.join(ranker.uri, "ranker_report.json"),
                      {"users": len(users), "items": len(trained.item_ids), "cvr_power": trained.cvr_power,
                       "train": {k: trained.info[k] for k in ("best_epoch", "epochs", "wall_s", "seconds_per_epoch")},
                       "elapsed_s": round(time.time() - start, 1)}, indent=1)
    print(f"[ranker] exported {export_dir} ({len(users):,} users, {len(requests)} warm-up requests, "
          f"{time.time() - start:.0f}s)", flush=True)
