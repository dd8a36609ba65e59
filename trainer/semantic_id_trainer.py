"""TFX Trainer entry point for Semantic IDs: RQ-VAE on content embeddings → ID table + item encoder.

Input: the ContentEmbedder's ``catalog`` split (item id, category, embedding).
Output (the Trainer's model artifact):

* ``Format-Serving/``: the ``item_encoder`` SavedModel (``trainer/item_encoder.py``);
* ``Format-Serving/assets.extra/semantic_ids.tsv``: the item ↔ Semantic ID table;
* ``<model_run_dir>/semantic_id_report.json``: quality metrics of this run.

The run fails (nothing to push) if any two items end up with the same ID.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
import tensorflow as tf

from recsys import names as N
from trainer import rqvae, semantic_ids
from trainer.warmup import write_warmup
from transform import examples_io, fileio

REPORT_FILE = "semantic_id_report.json"
TABLE_FILE = "semantic_ids.tsv"
CONTENT_REPORT = "content_report.json"
CONTENT_FILE = "content_embeddings.npz"  # the embeddings the IDs were trained on, for the dual-head trainer


def content_space_paths(model_dir: str) -> tuple[str, str]:
    """(semantic_ids.tsv, content_embeddings.npz) inside this trainer's model artifact (or its Format-Serving)."""
    serving = model_dir.rstrip("/")
    root = os.path.dirname(serving) if os.path.basename(serving) == N.SERVING_SUBDIR else serving
    tsv = os.path.join(root, N.SERVING_SUBDIR, "assets.extra", TABLE_FILE)
    npz = os.path.join(root, CONTENT_FILE)
    for p in (tsv, npz):
        if not fileio.exists(p):
            raise FileNotFoundError(f"{p} not found: the dual-head and ranker trainers need the content space "
                                    "(run the pipeline with Semantic IDs on)")
    return tsv, npz


def save_content(rows: examples_io.ContentRows, path: str) -> None:
    """Item ids and content vectors [N, D] next to the model (outside Format-Serving: not pushed)."""
    fileio.save_npz(path, item_ids=rows.item_ids.astype(str), vectors=rows.vectors)


def _artifact_root(files: list[str]) -> str:
    """The Examples artifact directory behind a Trainer's ``Split-*`` file patterns."""
    return os.path.dirname(os.path.dirname(files[0]))


def category_labels(categories: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Category path → label index (-1 for items without a category) and the label vocabulary."""
    vocab = sorted({c for c in categories.tolist() if c})
    index = {c: i for i, c in enumerate(vocab)}
    return np.array([index.get(c, -1) for c in categories.tolist()], dtype=np.int32), vocab


def build_item_encoder(model: rqvae.RQVAE, item_ids: np.ndarray, ids: np.ndarray, text: bool):
    """The served module: RQ-VAE codes (+ the text encoder when the embeddings came from text)."""
    from trainer.item_encoder import ItemEncoderModule

    codes = rqvae.SemanticIdEncoder(model)
    text_encoder = text_fn = None
    if text:
        from trainer.text_encoder import item_text_tensor, load_text_encoder

        text_encoder, text_fn = load_text_encoder(), item_text_tensor
    return ItemEncoderModule(codes.codes_from_embedding, model.config.input_dim, item_ids, ids,
                             text_encoder=text_encoder, text_fn=text_fn, trackables={"rqvae": codes})


def item_encoder_warmup(rows: examples_io.ContentRows, text: bool, n: int = 3) -> list:
    """Warm-up requests for every signature of the item encoder, from real catalogue rows."""
    ids = np.asarray(rows.item_ids[:n]).astype(object)
    requests = [(N.LOOKUP, {N.ITEM_ID: ids}),
                (N.ENCODE_EMBEDDING, {N.EMBEDDING: rows.vectors[:n].astype(np.float32)})]
    if text:
        fields = {f: np.asarray([""] * len(ids), dtype=object) for f in N.ITEM_TEXT_FIELDS}
        fields[N.CATEGORY] = np.asarray(rows.categories[:n]).astype(object)
        fields[N.TITLE] = np.asarray(["유기농 바나나 1kg", "Organic bananas", ""][:len(ids)], dtype=object)
        requests.append((N.ENCODE_TEXT, fields))
    return requests


def _in_blocks(fn, x: np.ndarray, block: int = semantic_ids.REPORT_BLOCK) -> np.ndarray:
    """``fn(x)`` a block of rows at a time (one call up to ``block`` rows; 1M items at once held every layer's
    [N, width] activations)."""
    return np.concatenate([fn(x[s:s + block]).numpy() for s in range(0, len(x), block)])


def train_semantic_ids(embeddings_uri: str, serving_dir: str, run_dir: str, config_overrides: dict | None) -> dict:
    start = time.time()
    rows = examples_io.read_content(embeddings_uri)
    source = fileio.read_json(os.path.join(embeddings_uri, CONTENT_REPORT))["source"]
    labels, vocab = category_labels(rows.categories)
    config = rqvae.RQVAEConfig.from_dict(dict(
        {"input_dim": int(rows.vectors.shape[1]), "num_categories": len(vocab)}, **(config_overrides or {})))
    print(f"[semantic_ids] RQ-VAE on {len(rows.item_ids):,} items × {rows.vectors.shape[1]}-d {source} embeddings, "
          f"L={config.num_levels}, K={config.codebook_size}, {len(vocab)} categories", flush=True)
    model, history = rqvae.train_rqvae(rows.vectors, labels if vocab else None, config)
    codes = _in_blocks(model.encode, rows.vectors)
    ids = semantic_ids.disambiguate(codes)
    table = semantic_ids.SemanticIdTable(rows.item_ids.tolist(), ids)
    report = semantic_ids.semantic_id_report(rows.vectors, codes, _in_blocks(model.reconstruct, rows.vectors),
                                             labels if vocab else None, codebook_size=config.codebook_size)
    report.update({"source": source, "items": int(len(rows.item_ids)), "config": config.to_dict(),
                   "epochs": history, "elapsed_s": round(time.time() - start, 1)})
    if len(set(map(tuple, ids.tolist()))) != len(ids):
        raise RuntimeError("Semantic IDs are not unique after disambiguation; refusing to export.")
    module = build_item_encoder(model, rows.item_ids, ids, text=(source == "text"))
    tf.saved_model.save(module, serving_dir, signatures=module.signatures())
    fileio.makedirs(os.path.join(serving_dir, "assets.extra"))
    table.save(os.path.join(serving_dir, "assets.extra", TABLE_FILE))
    write_warmup(serving_dir, N.ITEM_ENCODER, item_encoder_warmup(rows, text=(source == "text")))
    rqvae.save_rqvae(model, os.path.join(run_dir, "rqvae"))
    save_content(rows, os.path.join(os.path.dirname(serving_dir.rstrip("/")), CONTENT_FILE))
    fileio.write_json(os.path.join(run_dir, REPORT_FILE), report, indent=1, default=float)
    summary = {k: v for k, v in report.items() if not isinstance(v, (dict, list))}
    print(f"[semantic_ids] {json.dumps(summary, default=float)}", flush=True)
    return report


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (GenericExecutor)."""
    train_semantic_ids(_artifact_root(fn_args.train_files), fn_args.serving_model_dir, fn_args.model_run_dir,
                       (fn_args.custom_config or {}).get("rqvae"))
