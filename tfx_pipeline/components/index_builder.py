"""IndexBuilder: trained towers + catalogue → the two serving SavedModels.

Embeds every catalogue item with the item tower, tunes ScaNN on validation
queries until recall@10 against brute force reaches the target, and exports
``retrieval`` (ScaNN inside) and its brute-force twin ``retrieval_bruteforce``,
each with warm-up requests in ``assets.extra/``.
"""

import json
import logging
import os
import time

import numpy as np
from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component

from recsys import features as F

_log = logging.getLogger("recsys.pipeline")
SERVING_SUBDIR = "Format-Serving"  # where TFX's Pusher looks for a model


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
) -> None:
    import scann  # noqa: F401  (registers the ScaNN ops)
    import tensorflow as tf

    from transform import examples_io
    from trainer import base, export

    start = time.time()
    vocab = base.load_vocabularies(transform_graph.uri)
    towers = tf.saved_model.load(os.path.join(model.uri, SERVING_SUBDIR))
    with open(os.path.join(model.uri, SERVING_SUBDIR, "assets.extra", "train_config.json")) as f:
        max_history = int(json.load(f)["config"]["max_history"])
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
    users = sorted(histories)
    val = examples_io.read_rows(examples.uri, F.EVAL)
    bf = export.RetrievalModule(towers, list(vocab.items), catalog.item_ids, emb, users, [histories[u] for u in users],
                                index=export.BRUTE_FORCE, max_k=max_k, max_exclude=max_exclude, max_history=max_history)
    val_hist = [h for h in val.histories] or [histories[u] for u in users]
    width = max(len(h) for h in val_hist)
    padded = np.array([h + [""] * (width - len(h)) for h in val_hist], dtype=object).astype(bytes)
    queries = bf.user_embedding(tf.constant(padded))["embedding"].numpy()
    tuning = export.tune_scann(emb, catalog.item_ids, queries, target_recall=target_recall,
                               final_k=min(max_k + max_exclude, len(items)))
    print(f"[index] ScaNN {tuning.params} recall@10 vs brute force {tuning.recall_at_10:.4f} on "
          f"{len(queries):,} validation queries; {tuning.query_ms:.3f} ms/query vs brute force "
          f"{tuning.brute_force_ms:.3f} ms/query (batched)", flush=True)
    sc = export.RetrievalModule(towers, list(vocab.items), catalog.item_ids, emb, users, [histories[u] for u in users],
                                index=export.SCANN, max_k=max_k, max_exclude=max_exclude, max_history=max_history,
                                scann_params=tuning.params)
    warm = [histories[u] for u in users[:5]]
    for module, artifact, name in ((bf, bruteforce_model, "retrieval_bruteforce"), (sc, scann_model, "retrieval")):
        out = os.path.join(artifact.uri, SERVING_SUBDIR)
        export.save(module, out)
        n = export.write_warmup_requests(out, name, warm)
        _log.info("Exported %s to %s with %d warm-up requests", name, out, n)
    report = {
        "catalog_items": len(items), "cold_items": n_cold, "users_with_history": len(users),
        "scann": {"params": vars(tuning.params), "recall@10_vs_brute_force": tuning.recall_at_10,
                  "query_ms": tuning.query_ms, "brute_force_query_ms": tuning.brute_force_ms,
                  "validation_queries": len(queries), "tried": list(tuning.tried)},
        "max_k": max_k, "max_exclude": max_exclude, "elapsed_s": round(time.time() - start, 1),
    }
    with open(os.path.join(scann_model.uri, "index_report.json"), "w") as f:
        json.dump(report, f, indent=1)
    scann_model.set_float_custom_property("scann_recall_at_10", tuning.recall_at_10)
