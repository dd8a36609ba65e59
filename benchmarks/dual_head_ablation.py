"""Ablation of the dual-head transformer on a pipeline run's artifacts (same split as the spine).

    python benchmarks/dual_head_ablation.py --output artifacts --dataset movielens-100k

Rows (each trained with validation early stopping, never looking at test):

* ``A retrieval head``: the student alone, in-batch negatives, plain targets;
* ``B + debiased targets + hard negatives``;
* ``B + generative head (no KD)``: both heads on one encoder, no distillation
  (separates "multi-task" from "distillation");
* ``C + distillation``: the full model; its generative head is the ``teacher`` row;
* ``A + distillation (no data tricks)``: separates distillation from the data engineering;
* ``C with recent-item memory (R=8)``: the decoder also attends to the latest 8 item states;
* ``sasrec``: a plain SASRec-style model on the same code (free IDs, item positions,
  full softmax);
* ``C with random IDs``: the full model with the Semantic IDs dealt to the items at random (a
  seeded permutation of the catalogue's ID tuples: the same tuple length, code sizes, code
  frequencies and uniqueness, no meaning) — the control of TIGER (Rajput et al., NeurIPS 2023),
  which reports semantic IDs about 1.5x random ones in Recall@10; its teacher is the row to compare;
* ``C teacher-monitored``: the full model with the best epoch (and early stopping) chosen by the
  teacher's validation NDCG@10 instead of the student's: the teacher trained to convergence;
* ``C teacher-monitored + decoder reads every position``: the same with the decoder attending to
  the encoder state of every history item (``memory_recent`` = ``max_history``; a history shorter
  than 30 repeats its first item) beside the 4 pooled tokens, as TIGER's decoder reads its encoder;
* ``C teacher-monitored with random IDs`` / ``with collaborative IDs``: the converged teacher on random IDs
  (the control) and on IDs that carry collaborative signal: an RQ-VAE (the pipeline's configuration)
  over each item's unit content embedding and its unit two-tower item vector (from the same run's
  brute-force export, trained on the training split only), each part weighted so it holds the given share
  (0.5) of the squared norm; the report's ``semantic_ids`` section sets their quality (collisions,
  purity, perplexity) beside the text-only IDs';
* ``A + generative head (no KD)``: the best student with a generative head trained beside it on the shared
  encoder, no distillation (a teacher for the campaign job without the student learning from it);
* ``A + generative head teacher-monitored`` / ``... with random IDs``: the pipeline's dual head with its best epoch
  chosen by the teacher's validation (its teacher trained to convergence), and the random-ID control of that
  teacher;
* ``A + KD from the converged teacher``: the best student (A) distilled from the first epoch on from a frozen,
  trained model's generative head (``distill_from="frozen"``): the saved ``C teacher-monitored`` of an earlier
  ``--save-models`` run, or the variant named by ``--teacher``;
* the spine's popularity / item-CF / two-tower rows from ``metrics/<dataset>.json``.

Also: the student's HR@10 as a share of the teacher's, and in-process latency per
request (batch 1) of retrieval (encode + exact top-k) vs generative (encode +
constrained beam search). Writes ``metrics/<dataset>.dual_head_ablation.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import recsys  # noqa: E402,F401  (legacy Keras before TensorFlow)
import numpy as np  # noqa: E402

from export.evaluate import UNMASKED  # noqa: E402  (the label suffix of unmasked rows, as in the pipeline's tables)
from trainer.dual_head.config import SASREC  # noqa: E402

VARIANTS = {
    "A retrieval head": dict(generative_weight=0.0, distill_weight=0.0, debias_targets=False,
                             hard_negatives_category=0, hard_negatives_history=0),
    "B + debiased targets + hard negatives": dict(generative_weight=0.0, distill_weight=0.0),
    "B + generative head (no KD)": dict(distill_weight=0.0),
    "C + distillation": dict(),
    "A + distillation (no data tricks)": dict(debias_targets=False, hard_negatives_category=0, hard_negatives_history=0),
    "C with recent-item memory (R=8)": dict(memory_recent=8),
    "sasrec": dict(SASREC),  # the pipeline's sequential_retrieval starts from the same preset
    "C with random IDs": dict(random_ids=True),
    "C teacher-monitored": dict(monitor="teacher"),
    "C teacher-monitored + decoder reads every position": dict(monitor="teacher", memory_recent=30),
    "C teacher-monitored with random IDs": dict(monitor="teacher", random_ids=True),
    "C teacher-monitored with collaborative IDs": dict(monitor="teacher", collaborative_ids=0.5),
    "A + generative head (no KD)": dict(distill_weight=0.0, debias_targets=False, hard_negatives_category=0,
                                        hard_negatives_history=0),
    # the pipeline's dual head (A + generative head) picked by its teacher's validation, and its random-ID control
    "A + generative head teacher-monitored": dict(distill_weight=0.0, debias_targets=False, hard_negatives_category=0,
                                                   hard_negatives_history=0, monitor="teacher"),
    "A + generative head teacher-monitored with random IDs": dict(distill_weight=0.0, debias_targets=False,
                                                               hard_negatives_category=0, hard_negatives_history=0,
                                                               monitor="teacher", random_ids=True),
    "A + KD from the converged teacher": dict(generative_weight=0.0, debias_targets=False, hard_negatives_category=0,
                                              hard_negatives_history=0, distill_from="frozen",
                                              distill_warmup_epochs=0, teacher_from="C teacher-monitored"),
    # the same student distilled from the pipeline's dual head picked by its teacher (the strongest teacher measured)
    "A + KD from the dual head's converged teacher": dict(
        generative_weight=0.0, debias_targets=False, hard_negatives_category=0, hard_negatives_history=0,
        distill_from="frozen", distill_warmup_epochs=0, teacher_from="A + generative head teacher-monitored"),
}
DATA_KEYS = ("random_ids", "collaborative_ids", "teacher_from")  # variant keys that change the item space, not the DualHeadConfig


def random_ids(items, seed: int = 0):
    """``items`` with its Semantic ID tuples dealt to the items by a seeded random permutation."""
    import dataclasses

    perm = np.random.default_rng(seed).permutation(items.num_items)
    return dataclasses.replace(items, codes=np.asarray(items.codes)[perm])


def model_slug(name: str) -> str:
    """A variant's directory name under ``--save-models``: lower case, runs of other characters → '_'."""
    import re

    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _frozen_teacher(save_dir: str, name: str, items):
    """The trained model saved for variant ``name`` under ``save_dir`` (``--save-models``), over ``items``'s catalogue."""
    from trainer import dual_head

    if not save_dir:
        raise SystemExit("variants with a frozen teacher load it from --save-models DIR: pass the directory of the "
                         "run that trained it")
    path = os.path.join(save_dir, model_slug(name))
    if not os.path.exists(os.path.join(path, dual_head.TRAIN_INFO)):
        raise SystemExit(f"no saved model of variant {name!r} in {path}: train it first with --save-models {save_dir}")
    model, teacher_items, _ = dual_head.load_trained(path)
    if list(teacher_items.item_ids) != list(items.item_ids):
        raise SystemExit(f"the saved teacher {path} was trained on another catalogue")
    return model


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def two_tower_item_vectors(layout, item_ids) -> np.ndarray:
    """The run's two-tower item vectors [N, D] (its exported brute-force model's ``item_embedding``), catalogue order."""
    import tensorflow as tf

    from recsys import names as N
    from tfx_pipeline.artifacts import latest_output_uri

    model = tf.saved_model.load(os.path.join(latest_output_uri(layout, "IndexBuilder", "bruteforce_model"),
                                             "Format-Serving"))
    fn = model.signatures[N.ITEM_EMBEDDING]
    ids = np.asarray([str(i) for i in item_ids], dtype=object)
    return np.concatenate([fn(**{N.ITEM_ID: tf.constant(ids[s:s + 4096].tolist())})[N.EMBEDDING].numpy()
                           for s in range(0, len(ids), 4096)])


def fused_item_vectors(content: np.ndarray, collab: np.ndarray, share: float) -> np.ndarray:
    """[unit content ⊕ unit collaborative] rows, the collaborative part holding ``share`` of the (unit) squared norm."""
    if not 0 < share < 1:
        raise ValueError(f"collaborative_ids share must be in (0, 1), got {share}")
    if len(content) != len(collab):
        raise ValueError(f"content ({len(content)}) and collaborative vectors ({len(collab)}) differ in items")
    return np.concatenate([_unit(content) * np.sqrt(1 - share), _unit(collab) * np.sqrt(share)],
                          axis=1).astype(np.float32)


def collaborative_ids(items, collab: np.ndarray, share: float, rqvae_overrides: dict | None = None):
    """``items`` with Semantic IDs from an RQ-VAE (the pipeline's configuration unless overridden) over
    ``fused_item_vectors`` (catalogue order), and the IDs' quality report (``semantic_id_report``)."""
    import dataclasses

    from trainer import rqvae, semantic_ids

    fused = fused_item_vectors(items.content, collab, share)
    cats = np.asarray(items.category, np.int32)
    has_cats = bool((cats >= 0).any())
    config = rqvae.RQVAEConfig.from_dict(dict({"input_dim": int(fused.shape[1]),
                                               "num_categories": int(cats.max()) + 1 if has_cats else 0},
                                              **(rqvae_overrides or {})))
    model, _ = rqvae.train_rqvae(fused, cats if has_cats else None, config)
    codes = rqvae.predict_codes(model, fused)
    report = semantic_ids.semantic_id_report(fused, codes, model.reconstruct(fused).numpy(),
                                             cats if has_cats else None, codebook_size=config.codebook_size)
    report["collaborative_share"] = share
    return dataclasses.replace(items, codes=semantic_ids.disambiguate(codes).astype(np.int32)), report


def _inputs(root: str, dataset: str):
    from tfx_pipeline.artifacts import latest_output_uri
    from tfx_pipeline.layout import Layout
    from trainer import base, dual_head
    from trainer.semantic_id_trainer import CONTENT_FILE, TABLE_FILE

    layout = Layout(os.path.abspath(root), dataset)
    examples = latest_output_uri(layout, "SequenceExampleGen", "examples")
    vocab = base.load_vocabularies(latest_output_uri(layout, "Transform", "transform_graph"))
    semantic = latest_output_uri(layout, "SemanticIdTrainer", "model")
    npz = os.path.join(semantic, CONTENT_FILE)
    if not os.path.exists(npz):  # a content space built before the trainer saved its inputs
        from transform import examples_io

        rows = examples_io.read_content(latest_output_uri(layout, "ContentEmbedder", "embeddings"))
        npz = os.path.join(root, "metrics", f"{layout.slug}.content_embeddings.npz")
        np.savez(npz, item_ids=rows.item_ids.astype(str), vectors=rows.vectors)
    items = dual_head.load_item_space(examples, os.path.join(semantic, "Format-Serving", "assets.extra", TABLE_FILE),
                                      npz, vocab.item_counts)
    return layout, examples, items


def _latency(model, data, n: int = 200) -> dict:
    """p50 / p90 ms per single-user request, in-process, after warm-up."""
    import tensorflow as tf

    from trainer import dual_head

    items_vec = tf.constant(dual_head.catalogue_vectors(model))

    @tf.function
    def retrieve(h, o, e):
        states, mask = model.encode(h, o, e)
        return tf.math.top_k(tf.matmul(model.user_vector(states, mask), items_vec, transpose_b=True), 10)

    @tf.function
    def generate(h, o, e):
        states, mask = model.encode(h, o, e)
        return model.beam_search(model.memory(states, mask), tf.ones([1, model.num_items], tf.bool),
                                 model.config.beam_width)

    out = {}
    for name, fn in (("retrieval", retrieve), ("generative", generate)):
        times = []
        for i in range(min(n, len(data.history)) + 5):
            args = [tf.constant(x[i % len(x): i % len(x) + 1]) for x in (data.history, data.order_rel, data.events)]
            t0 = time.perf_counter()
            fn(*args)
            times.append((time.perf_counter() - t0) * 1000)
        times = np.array(times[5:])
        out[name] = {"p50_ms": round(float(np.percentile(times, 50)), 2),
                     "p90_ms": round(float(np.percentile(times, 90)), 2)}
    out["generative_over_retrieval_p50"] = round(out["generative"]["p50_ms"] / out["retrieval"]["p50_ms"], 1)
    return out


def _write(args, layout, exclude, results, configs, logs, latency, teacher_of, start) -> str:
    """Merges the spine's rows (and, with --merge, earlier variants) and writes the ablation JSON."""
    results = {split: dict(rows) for split, rows in results.items()}
    path = layout.metrics_path.replace(".json", f".{args.name}.json")
    if args.merge and os.path.exists(path) and getattr(args, "_old", None) is None:
        with open(path) as f:
            args._old = json.load(f)
    old = getattr(args, "_old", None)
    if old:
        for split in results:
            results[split] = {**old["results"][split], **results[split]}
        configs, logs = {**old["configs"], **configs}, {**old["training"], **logs}
        latency = latency or old.get("latency_per_request_in_process")
        teacher_of = teacher_of or next((k for k in results["test"] if k.startswith("teacher (")), None)
    if os.path.exists(layout.metrics_path):
        with open(layout.metrics_path) as f:
            spine = json.load(f)
        for label, key in (("test", "models"), ("validation", "validation")):
            for model in ("popularity", "item_cf", "item_knn", "user_most_frequent", "two_tower",
                          "two_tower" + UNMASKED):
                if model in spine.get(key, {}):
                    results[label][f"spine: {model}"] = spine[key][model]
    report = {"dataset": args.dataset, "exclude_history": exclude, "epochs": args.epochs, "results": results,
              "configs": configs, "training": logs, "latency_per_request_in_process": latency,
              "elapsed_s": round(time.time() - start)}
    if teacher_of and "C + distillation" in results["test"]:
        report["student_share_of_teacher_HR@10"] = round(
            results["test"]["C + distillation"]["HR@10"] / max(results["test"][teacher_of]["HR@10"], 1e-12), 3)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    return path


def main(argv=None) -> int:
    from recsys import features as F
    from recsys.evaluation.report import format_table
    from trainer import dual_head

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="artifacts", help="artifact root of a `recsys run` (default: %(default)s)")
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of: " + ", ".join(VARIANTS))
    p.add_argument("--epochs", type=int, default=4, help="max epochs per variant (early stopping on validation)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a DualHeadConfig field for every variant (JSON value), e.g. --set distill_weight=0.5")
    p.add_argument("--name", default="dual_head_ablation", help="the report is metrics/<dataset>.<name>.json")
    p.add_argument("--save-models", default="", metavar="DIR",
                   help="save each variant's trained model (weights, config, item space) to DIR/<variant slug>")
    p.add_argument("--teacher", default="",
                   help="the saved variant (under --save-models) that frozen-teacher variants distil from")
    p.add_argument("--merge", action="store_true",
                   help="add these variants to an existing ablation file instead of replacing it")
    args = p.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    overrides = {}
    for kv in args.set:
        key, _, value = kv.partition("=")
        overrides[key] = json.loads(value)

    layout, examples, items = _inputs(args.output, args.dataset)
    exclude = dual_head.exclude_history_for(examples)
    start = time.time()
    results = {"validation": {}, "test": {}}
    configs, logs, latency, teacher_of = {}, {}, None, None
    id_reports: dict = {}
    for name in names:
        variant = {k: v for k, v in VARIANTS[name].items() if k not in DATA_KEYS}
        space = random_ids(items) if VARIANTS[name].get("random_ids") else items
        if VARIANTS[name].get("collaborative_ids"):
            space, id_reports[name] = collaborative_ids(items, two_tower_item_vectors(layout, items.item_ids),
                                                        VARIANTS[name]["collaborative_ids"])
        config = dual_head.DualHeadConfig.from_dict(dict(variant, epochs=args.epochs, **overrides))
        train = dual_head.load_sequences(examples, F.TRAIN, space, config)
        splits = {"validation": dual_head.load_sequences(examples, F.EVAL, space, config),
                  "test": dual_head.load_sequences(examples, F.TEST, space, config)}
        teacher = None
        if VARIANTS[name].get("teacher_from"):
            teacher = _frozen_teacher(args.save_models, args.teacher or VARIANTS[name]["teacher_from"], space)
            print(f"[ablation] {name}: distils from the saved '{args.teacher or VARIANTS[name]['teacher_from']}'",
                  flush=True)
        result = dual_head.train(train, splits["validation"], space, config, exclude, label=name, teacher=teacher)
        configs[name], logs[name] = dict(vars(config)), {"best_epoch": result.best_epoch, "log": result.log}
        if args.save_models:
            dual_head.save_trained(result, space, config, os.path.join(args.save_models, model_slug(name)),
                                   {"exclude_history": exclude, "variant_name": name})
        if name in id_reports:
            logs[name]["semantic_ids"] = id_reports[name]
        for split, data in splits.items():
            # leave-one-out: history masked (our default) and unmasked (RecBole's sequential models' convention)
            for masked, suffix in ((True, ""), (False, UNMASKED)) if exclude else ((False, ""),):
                metrics = dual_head.evaluate(result.model, data, masked)
                results[split][name + suffix] = metrics["retrieval"]
                if "generative" in metrics:
                    label = ("teacher (generative head of C)" if name == "C + distillation"
                             else f"teacher of '{name}'")
                    results[split][label + suffix] = metrics["generative"]
                    if name == "C + distillation" and not suffix:
                        teacher_of = label
        if name == "C + distillation":
            latency = _latency(result.model, splits["test"])
        print(f"[ablation] {name} done, {time.time() - start:.0f}s so far; test: "
              + json.dumps({k: round(v["HR@10"], 4) for k, v in results["test"].items()}), flush=True)
        # written after every variant, so a crash later loses nothing
        path = _write(args, layout, exclude, results, configs, logs, latency, teacher_of, start)
    for split in ("validation", "test"):
        with open(path) as f:
            table = json.load(f)["results"][split]
        print(format_table(table, f"{args.dataset} — dual-head ablation, {split} split, full ranking"))
    with open(path) as f:
        report = json.load(f)
    if report.get("latency_per_request_in_process"):
        print(f"latency per request (in-process, batch 1): {json.dumps(report['latency_per_request_in_process'])}")
    if "student_share_of_teacher_HR@10" in report:
        print(f"student HR@10 / teacher HR@10 (test): {report['student_share_of_teacher_HR@10']:.3f}")
    print(f"[ablation] written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
