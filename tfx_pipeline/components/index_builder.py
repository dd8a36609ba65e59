"""IndexBuilder: trained towers + catalogue → the two-tower's serving SavedModels.

Embeds every catalogue item with the item tower and exports ``retrieval``
(ScaNN inside, tuned on validation queries until recall@10 against brute force
reaches the target) and its brute-force twin ``retrieval_bruteforce`` through
the shared twin export (``export.twins``), each with warm-up requests.
"""

import logging
import os
import time

import numpy as np
from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component

from recsys import features as F
from recsys import names as N

_log = logging.getLogger("recsys.pipeline")
REPORT_FILE = "index_report.json"


@component
def IndexBuilder(  # noqa: N802
    examples: InputArtifact[tfx.types.standard_artifacts.Examples],
    transform_graph: InputArtifact[tfx.types.standard_artifacts.TransformGraph],
    model: InputArtifact[tfx.types.standard_artifacts.Model],
    scann_model: OutputArtifact[tfx.types.standard_artifacts.Model],
    bruteforce_model: OutputArtifact[tfx.types.standard_artifacts.Model],
    max_k: Parameter[int] = 100,
    max_exclude: Parameter[int] = 500,
    target_recall: Parameter[float] = 0.95,
    code_version: Parameter[int] = 1,  # the pipeline passes it; bumped when the export changes (cache key)
) -> None:
    import scann  # noqa: F401  (registers the ScaNN ops)
    import tensorflow as tf

    from export.retrieval import RetrievalModule
    from export.twins import embed_histories, export_twins
    from trainer import base
    from transform import examples_io, fileio

    start = time.time()
    vocab = base.load_vocabularies(transform_graph.uri)
    towers = tf.saved_model.load(os.path.join(model.uri, N.SERVING_SUBDIR))
    train_config = fileio.read_json(os.path.join(model.uri, N.SERVING_SUBDIR, "assets.extra", "train_config.json"))
    max_history = int(train_config["config"]["max_history"])
    catalog = examples_io.read_catalog(examples.uri)
    item_index = {item: i for i, item in enumerate(vocab.items)}
    cat_index = {c: i for i, c in enumerate(vocab.categories)}
    items = np.array([item_index.get(i, vocab.item_oov) for i in catalog.item_ids], np.int32)
    cats = np.array([cat_index.get(c, len(vocab.categories)) for c in catalog.categories], np.int32)
    emb = np.concatenate([
        towers.item_embedding(item=tf.constant(items[i:i + 8192]), category=tf.constant(cats[i:i + 8192]))["embedding"].numpy()
        for i in range(0, len(items), 8192)
    ])
    n_cold = int(np.sum(items == vocab.item_oov))
    print(f"[index] {len(items):,} catalogue items embedded ({n_cold:,} never seen in training)", flush=True)

    histories = {u: h.items for u, h in examples_io.latest_histories(examples.uri).items()}
    users = list(histories)
    val_hist = examples_io.read_rows(examples.uri, F.EVAL).histories or [histories[u] for u in users]

    def build(index, params):
        return RetrievalModule(towers, list(vocab.items), catalog.item_ids, emb, users, [histories[u] for u in users],
                               index=index, max_k=max_k, max_exclude=max_exclude, max_history=max_history,
                               scann_params=params)

    def queries(bruteforce):
        return embed_histories(lambda h: bruteforce.user_embedding(h)[N.EMBEDDING], val_hist)

    twins = export_twins(build, emb, catalog.item_ids, queries, model_name=N.RETRIEVAL,
                         scann_dir=os.path.join(scann_model.uri, N.SERVING_SUBDIR),
                         bruteforce_dir=os.path.join(bruteforce_model.uri, N.SERVING_SUBDIR),
                         warmup_histories=[histories[u] for u in users[:5]], target_recall=target_recall,
                         final_k=max_k + max_exclude, log=lambda m: print(m, flush=True))
    report = {"catalog_items": len(items), "cold_items": n_cold, "users_with_history": len(users),
              "scann": dict(twins.report(), validation_queries=len(val_hist)),
              "max_k": max_k, "max_exclude": max_exclude, "elapsed_s": round(time.time() - start, 1)}
    fileio.write_json(os.path.join(scann_model.uri, REPORT_FILE), report, indent=1)
    scann_model.set_float_custom_property("scann_recall_at_10", twins.tuning.recall_at_10)
    _log.info("IndexBuilder wrote %s in %.1fs", scann_model.uri, time.time() - start)
