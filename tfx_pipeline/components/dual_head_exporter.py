"""DualHeadExporter: the trained dual-head model → ``dual_retrieval`` (ScaNN + brute-force twin) and ``generative``.

Embeds every catalogue item with the mapping network (+ ID residual for items
seen in training), tunes ScaNN on validation queries until recall@10 against
brute force reaches the target, and writes the three serving SavedModels with
warm-up requests. Each user's latest history (with order positions) is stored
for ``recommend_user``.
"""

import json
import logging
import os
import time

from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component

from tfx_pipeline.components.index_builder import SERVING_SUBDIR

_log = logging.getLogger("recsys.pipeline")
REPORT_FILE = "dual_head_report.json"


@component
def DualHeadExporter(  # noqa: N802
    examples: InputArtifact[tfx.types.standard_artifacts.Examples],
    model: InputArtifact[tfx.types.standard_artifacts.Model],
    scann_model: OutputArtifact[tfx.types.standard_artifacts.Model],
    bruteforce_model: OutputArtifact[tfx.types.standard_artifacts.Model],
    generative_model: OutputArtifact[tfx.types.standard_artifacts.Model],
    max_k: Parameter[int] = 100,
    max_exclude: Parameter[int] = 500,
    target_recall: Parameter[float] = 0.95,
) -> None:
    import numpy as np
    import scann  # noqa: F401  (registers the ScaNN ops)
    import tensorflow as tf

    from recsys import features as F
    from trainer import dual_head, export
    from trainer.dual_head_export import (DualRetrievalModule, GenerativeModule, HistoryInput, save_generative)

    start = time.time()
    net, items, info = dual_head.load_trained(os.path.join(model.uri, SERVING_SUBDIR))
    cfg = net.config
    inputs = HistoryInput(items, cfg.max_history, cfg.max_orders, cfg.order_positions, info["default_event"])
    emb = dual_head.catalogue_vectors(net)
    from transform import examples_io

    histories = examples_io.latest_histories(examples.uri)
    users = list(histories)
    hist, pos = [histories[u].items for u in users], [histories[u].order_pos for u in users]
    common = dict(users=users, histories=hist, order_pos=pos)
    bf = DualRetrievalModule(net, inputs, items, emb, index=export.BRUTE_FORCE, max_k=max_k,
                             max_exclude=max_exclude, **common)
    val = dual_head.load_sequences(examples.uri, F.EVAL, items, cfg)
    queries = dual_head.user_vectors(net, val) if len(val.history) else emb[:100]
    tuning = export.tune_scann(emb, items.item_ids, queries, target_recall=target_recall,
                               final_k=min(max_k + max_exclude, items.num_items))
    print(f"[dual_head] ScaNN {tuning.params} recall@10 vs brute force {tuning.recall_at_10:.4f} on "
          f"{len(queries):,} validation queries", flush=True)
    sc = DualRetrievalModule(net, inputs, items, emb, index=export.SCANN, max_k=max_k, max_exclude=max_exclude,
                             scann_params=tuning.params, **common)
    warm = hist[:5]
    for module, artifact, name in ((bf, bruteforce_model, "dual_retrieval_bruteforce"),
                                   (sc, scann_model, "dual_retrieval")):
        out = os.path.join(artifact.uri, SERVING_SUBDIR)
        export.save(module, out)
        export.write_warmup_requests(out, name, warm)
    report = {"catalog_items": items.num_items, "users_with_history": len(users),
              "scann": {"params": vars(tuning.params), "recall@10_vs_brute_force": tuning.recall_at_10,
                        "query_ms": tuning.query_ms, "brute_force_query_ms": tuning.brute_force_ms},
              "train": {k: info[k] for k in ("best_epoch", "log")}}
    if net.generative:
        gen = GenerativeModule(net, inputs, items, beam_width=cfg.beam_width, **common)
        out = os.path.join(generative_model.uri, SERVING_SUBDIR)
        save_generative(gen, out)
        export.write_warmup_requests(out, "generative", warm)
        report["generative"] = {"beam_width": cfg.beam_width, "code_sizes": list(net.sizes)}
    else:
        generative_model.set_int_custom_property("empty", 1)
    report["elapsed_s"] = round(time.time() - start, 1)
    with open(os.path.join(scann_model.uri, REPORT_FILE), "w") as f:
        json.dump(report, f, indent=1)
    _log.info("DualHeadExporter wrote %s in %.1fs", scann_model.uri, time.time() - start)
