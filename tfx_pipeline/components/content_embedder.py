"""ContentEmbedder: every catalogue item → its content embedding (an ``Examples`` artifact).

Source per dataset (see ``transform/content.py``): item text through the
multilingual sentence encoder, batched in Beam; a user's precomputed vectors;
or, when the catalogue has no text at all, category levels + co-purchase
structure. The choice and its reasons are printed and stored with the artifact.
"""
import os
import time

import apache_beam as beam
import numpy as np
from tfx import v1 as tfx
from tfx.components.util import examples_utils
from tfx.dsl.component.experimental.annotations import BeamComponentParameter, InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils

from recsys import features as F
from transform import content, fileio

REPORT_FILE = "content_report.json"


class _EmbedTexts(beam.DoFn):
    """Batches of (item_id, text) → (item_id, vector) with the in-graph multilingual encoder."""

    def setup(self) -> None:
        from trainer.text_encoder import load_text_encoder

        self._encoder = load_text_encoder()
        self._items = beam.metrics.Metrics.counter("recsys", "items_embedded")

    def process(self, batch):
        import tensorflow as tf

        ids = [i for i, _ in batch]
        vectors = self._encoder(tf.constant([t for _, t in batch])).numpy()
        self._items.inc(len(ids))
        yield from zip(ids, vectors)


def _baskets(examples_uri: str, protocol: str, positions: dict) -> list:
    """Training baskets: orders for basket data, each user's training history otherwise."""
    from transform import examples_io
    from transform.sequences import LEAVE_LAST_ORDER_OUT

    if protocol == LEAVE_LAST_ORDER_OUT:
        groups = examples_io.read_rows(examples_uri, F.TRAIN).targets
    else:
        groups = list(examples_io.training_interactions(examples_uri).values())
    return [np.array([positions[i] for i in g if i in positions]) for g in groups]


@component(use_beam=True)
def ContentEmbedder(  # noqa: N802
    examples: InputArtifact[tfx.types.standard_artifacts.Examples],
    embeddings: OutputArtifact[tfx.types.standard_artifacts.Examples],
    precomputed_path: Parameter[str] = "",
    batch_size: Parameter[int] = 256,
    copurchase_dim: Parameter[int] = 64,
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    from transform import examples_io
    from trainer import base
    from trainer.text_encoder import item_text

    start = time.time()
    cols = base.read_examples(base.split_files(examples.uri, F.CATALOG), F.feature_spec(F.CATALOG_FEATURES))
    dec = {k: [v.decode("utf-8") if isinstance(v, bytes) else v for v in cols[k.name]] for k in F.CATALOG_FEATURES}
    item_ids, categories = dec[F.ITEM_ID], dec[F.CATEGORY]
    texts = [item_text(t, d, c, b) for t, d, c, b in zip(dec[F.TITLE], dec[F.DESCRIPTION], categories, dec[F.BRAND])]
    has_text = [bool(t or d) for t, d in zip(dec[F.TITLE], dec[F.DESCRIPTION])]
    notes = []
    if precomputed_path:
        source = content.PRECOMPUTED
        vectors = content.load_precomputed(precomputed_path, item_ids)
        notes.append(f"precomputed vectors from {precomputed_path}")
    elif any(has_text):
        source = content.TEXT
        vectors = None
        n_textless = len(has_text) - sum(has_text)
        notes.append(f"{sum(has_text):,} items embedded from title/description/category/brand text")
        if n_textless:
            notes.append(f"{n_textless:,} items have no title or description: embedded from category and brand only")
    else:
        source = content.STRUCTURE
        protocol = examples.get_string_custom_property("protocol")
        positions = {i: n for n, i in enumerate(item_ids)}
        co = content.copurchase_embeddings(_baskets(examples.uri, protocol, positions), len(item_ids), copurchase_dim)
        vectors = content.structure_embeddings(categories, co)
        n_cat = sum(1 for c in categories if c)
        n_co = int(np.sum(np.any(co != 0, axis=1)))
        notes.append("NO product text in this dataset (none is invented): content embedding = one-hot category "
                     f"levels ({n_cat:,} of {len(item_ids):,} items have a category) + a {copurchase_dim}-d "
                     f"co-purchase embedding (top positive eigen-directions of the PPMI matrix of training baskets; {n_co:,} items were co-purchased)")
    for n in notes:
        print(f"[content] {n}", flush=True)

    uri = os.path.join(embeddings.uri, f"Split-{F.CATALOG}", "data_tfrecord")
    p = beam_pipeline
    if vectors is None:
        pairs = (p | "Texts" >> beam.Create(list(zip(item_ids, texts)), reshuffle=False)
                 | "Batch" >> beam.BatchElements(min_batch_size=batch_size, max_batch_size=batch_size)
                 | "Embed" >> beam.ParDo(_EmbedTexts()))
    else:
        pairs = p | "Vectors" >> beam.Create(list(zip(item_ids, vectors)), reshuffle=False)
    category = dict(zip(item_ids, categories))
    (pairs
     | "ToExample" >> beam.Map(lambda kv: examples_io.content_example(kv[0], category[kv[0]], kv[1]))
     | "Write" >> beam.io.WriteToTFRecord(uri, file_name_suffix=".gz"))
    result = p.run()
    result.wait_until_finish()

    embeddings.split_names = artifact_utils.encode_split_names([F.CATALOG])
    examples_utils.set_payload_format(embeddings, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
    examples_utils.set_file_format(embeddings, "tfrecords_gzip")
    embeddings.set_string_custom_property("source", source)
    embeddings.set_string_custom_property("dataset", examples.get_string_custom_property("dataset"))
    fileio.write_json(os.path.join(embeddings.uri, REPORT_FILE),
                      {"source": source, "items": len(item_ids), "notes": notes,
                       "elapsed_s": round(time.time() - start, 1)}, indent=1)
    print(f"[content] {len(item_ids):,} item embeddings ({source}) in {time.time() - start:.0f}s", flush=True)
