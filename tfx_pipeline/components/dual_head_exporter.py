"""DualHeadExporter: the trained dual-head model → ``dual_retrieval`` (ScaNN + brute-force twin) and ``generative``.

The same component exports the SASRec-style variant as ``sequential_retrieval`` (``model_name``;
the trained model must be that name's variant, ``export.dual_head.RETRIEVER_VARIANTS``); that
variant has no generative head, so its ``generative_model`` output stays empty.

Embeds every catalogue item with the mapping network (+ ID residual for items
seen in training) and exports the student through the shared twin export
(``export.twins``: ScaNN tuned on validation queries until recall@10 against
brute force reaches the target) and the teacher with constrained beam search,
all with warm-up requests. Each user's latest history (with order positions and
behaviours) is stored for ``recommend_user`` and ``user_vector``.
"""

import logging
import os
import time

from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component

from recsys import names as N

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
    generative: Parameter[int] = 1,  # 0: the student only (a prefix copy for the ranker's candidates)
    model_name: Parameter[str] = N.DUAL_RETRIEVAL,  # or N.SEQUENTIAL_RETRIEVAL (the SASRec-style variant)
    code_version: Parameter[int] = 1,  # the pipeline passes it; bumped when the export changes (cache key)
) -> None:
    import scann  # noqa: F401  (registers the ScaNN ops)

    from export.dual_head import (DualRetrievalModule, GenerativeModule, HistoryInput, check_retriever_variant,
                                  save_generative)
    from export.twins import MAX_TUNING_QUERIES, export_twins, tuning_rows
    from recsys import features as F
    from trainer import dual_head
    from trainer.warmup import recommend_requests, user_requests, write_warmup
    from transform import examples_io, fileio

    start = time.time()
    net, items, info = dual_head.load_trained(os.path.join(model.uri, N.SERVING_SUBDIR))
    cfg = net.config
    check_retriever_variant(model_name, cfg.variant)  # before the minutes of export: a mis-wired pipeline fails here
    inputs = HistoryInput(items, cfg.max_history, cfg.max_orders, cfg.order_positions, info["default_event"])
    emb = dual_head.catalogue_vectors(net)
    histories = examples_io.latest_histories(examples.uri)
    users = list(histories)
    hist, pos = [histories[u].items for u in users], [histories[u].order_pos for u in users]
    common = dict(users=users, histories=hist, order_pos=pos, event_types=[histories[u].event_types for u in users])
    val = dual_head.load_sequences(examples.uri, F.EVAL, items, cfg)
    if len(val.history) > MAX_TUNING_QUERIES:  # embed only the validation rows ScaNN is tuned on
        print(f"[{model_name}] tuning on {MAX_TUNING_QUERIES:,} of {len(val.history):,} validation users", flush=True)
        val = val.rows(tuning_rows(len(val.history)).tolist())

    def build(index, params):
        return DualRetrievalModule(net, inputs, items, emb, index=index, max_k=max_k, max_exclude=max_exclude,
                                   scann_params=params, model_name=model_name, **common)

    twins = export_twins(build, emb, items.item_ids, lambda _: dual_head.user_vectors(net, val) if len(val.history)
                         else emb[:100], model_name=model_name,
                         scann_dir=os.path.join(scann_model.uri, N.SERVING_SUBDIR),
                         bruteforce_dir=os.path.join(bruteforce_model.uri, N.SERVING_SUBDIR),
                         warmup_histories=hist[:5], target_recall=target_recall, final_k=max_k + max_exclude,
                         log=lambda m: print(m, flush=True),
                         extra_warmup=user_requests(users[:5]))  # the multi-stage fan-out asks by user id
    report = {"model_name": model_name, "variant": cfg.variant, "catalog_items": items.num_items,
              "users_with_history": len(users), "scann": twins.report(),
              "train": {k: info[k] for k in ("best_epoch", "log")}}
    if net.generative and generative:
        gen = GenerativeModule(net, inputs, items, beam_width=cfg.beam_width, **common)
        out = os.path.join(generative_model.uri, N.SERVING_SUBDIR)
        save_generative(gen, out)
        write_warmup(out, N.GENERATIVE, recommend_requests(hist[:5]))
        report["generative"] = {"beam_width": cfg.beam_width, "code_sizes": list(net.sizes)}
    else:
        generative_model.set_int_custom_property("empty", 1)
    report["elapsed_s"] = round(time.time() - start, 1)
    fileio.write_json(os.path.join(scann_model.uri, REPORT_FILE), report, indent=1)
    _log.info("DualHeadExporter wrote %s in %.1fs", scann_model.uri, time.time() - start)
