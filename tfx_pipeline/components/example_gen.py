"""SequenceExampleGen: raw events + items → per-user sequence rows and a catalog.

A custom ExampleGen (TFX's own ones read one file pattern per split; ours
reads a dataset through its adapter and derives the splits by time per user).
When the adapter offers it (``recsys.data.event_lines``: MovieLens-100K), the
events file is read inside the Beam pipeline (``transform/event_source.py``) and
only the items table is loaded here; a generator's events (``recsys.data.event_shards``:
the synthetic shop) are generated inside the pipeline, shard of users by shard;
otherwise the adapter loads the events and they are handed to Beam with ``beam.Create``.
Output: an ``Examples`` artifact with splits ``train``/``eval``/``test``
(sequence rows) and ``catalog`` (one row per item), gzipped TFRecords of
tf.Example, as every downstream TFX component expects.

Cache: the component has no input artifacts, so TFX's cache key is its
parameters; ``fingerprint`` (a hash of the source files) is one of them, so
changed data re-runs it and unchanged data reuses the previous output.
"""

import logging
import os
import time

import apache_beam as beam
from tfx import v1 as tfx
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.dsl.component.experimental.annotations import BeamComponentParameter, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component

from recsys import features as F
from recsys.names import PROTOCOL_FILE
from transform import event_source, fileio, sequences

_log = logging.getLogger("recsys.pipeline")


def _write(pcoll, uri: str, split: str):
    return pcoll | f"Write{split.title()}" >> beam.io.WriteToTFRecord(
        os.path.join(uri, f"Split-{split}", "data_tfrecord"), file_name_suffix=".gz")


@component(use_beam=True)
def SequenceExampleGen(  # noqa: N802 (TFX component names are classes)
    examples: OutputArtifact[tfx.types.standard_artifacts.Examples],
    dataset: Parameter[str],
    data_path: Parameter[str] = "",
    fingerprint: Parameter[str] = "",
    options_json: Parameter[str] = "{}",
    max_history: Parameter[int] = F.DEFAULT_MAX_HISTORY,
    max_users: Parameter[int] = 0,
    code_version: Parameter[int] = 1,  # the pipeline passes it; bumped when the output changes (cache key)
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Reads ``dataset`` (a registry name; ``data_path`` for user files) and writes the splits.

    ``max_users`` > 0 keeps only the first users by id (a real-data slice for tests).
    ``options_json`` holds adapter options (e.g. ``{"protocol": ...}`` for user files).
    ``fingerprint`` is unused by the body: it is there to key the cache.
    """
    del fingerprint, code_version
    import json

    from recsys.data import event_lines, event_shards, load_dataset  # heavy pandas import only inside the executor
    from recsys.data import streaming

    start = time.time()
    options = json.loads(options_json)
    uri = examples.uri
    p = beam_pipeline
    source = event_lines(dataset, data_path or None, **options)
    shards = event_shards(dataset, data_path or None, **options) if source is None else None
    report = None  # the load report, when it is computed in the pipeline
    if source is not None:  # the events are read inside the pipeline; only the items are loaded here
        items_frame, protocol, dataset_name, synthetic = source.items, source.protocol, source.name, source.synthetic
        print(f"[example_gen] {source.events_source}: read in the Beam pipeline; {len(items_frame):,} items "
              f"from {source.items_source}", flush=True)
        read = p | "ReadEvents" >> event_source.ReadUserEvents(source, event_source.read_header(source.events_file))
        users, report = read["users"], read["report"]
        if max_users > 0:  # the first users by id (a real-data slice for tests)
            keep = beam.pvalue.AsSingleton(
                users | "UserIds" >> beam.Keys() | "FirstUsers" >> beam.combiners.Top.Smallest(max_users)
                | "AsSet" >> beam.Map(set))
            users = users | "Slice" >> beam.Filter(lambda e, kept: e[0] in kept, keep)
    elif shards is not None:  # the events are generated inside the pipeline, shard by shard; the items here
        items_frame, protocol, dataset_name, synthetic = shards.items, shards.protocol, shards.name, shards.synthetic
        print(f"[example_gen] {dataset_name}: events generated in the Beam pipeline in {len(shards.shards):,} "
              f"shards; {len(items_frame):,} items from {shards.items_source}", flush=True)
        generated = p | "GenerateEvents" >> event_source.GenerateUserEvents(shards)
        users, report = generated["users"], generated["report"]
        if max_users > 0:  # the first users by id: the shards that hold them, made here one at a time
            first = streaming.first_users(shards, max_users)
            users = users | "Slice" >> beam.Filter(lambda e: e[0] in first)
    if report is not None:
        events = users | "Events" >> beam.Map(lambda e: (e[0], [
            sequences.Event(r[3], r[1], r[2], r[4], seq) for seq, r in enumerate(e[1])]))
        report_path = os.path.join(uri, "load_report.txt")
        _ = report | "WriteReport" >> beam.Map(lambda r: fileio.write_text(report_path, r.summary() + "\n"))
        grouped = True
    else:  # the adapter reads the events whole: they are loaded here and handed to Beam
        ds = load_dataset(dataset, data_path or None, **options)
        print(f"[example_gen] {ds.report.summary()}", flush=True)
        items_frame, protocol, dataset_name, synthetic = ds.items, ds.protocol, ds.name, ds.synthetic
        events = ds.events
        if max_users > 0:
            keep = sorted(events["user_id"].unique())[:max_users]
            events = events[events["user_id"].isin(set(keep))]
            _log.info("Slice: first %d users, %d events", len(keep), len(events))
        # seq = row of the canonical frame (user, time, file row): the explicit order key through Beam
        records = [
            (u, sequences.Event(int(t), i, e, o, int(seq)))
            for seq, u, i, e, t, o in zip(events.index, events["user_id"], events["item_id"], events["event_type"],
                                          events["timestamp"], events["order_id"])
        ]
        events = p | "CreateEvents" >> beam.Create(records, reshuffle=False)
        grouped = False
    item_category = dict(zip(items_frame["item_id"], items_frame["category"]))
    items = items_frame.to_dict("records")
    rows = events | "Sequences" >> sequences.BuildSequenceRows(item_category, protocol, max_history, grouped=grouped)
    for split, pcoll in rows.items():
        _write(pcoll, uri, split)
    catalog = (
        p
        | "CreateItems" >> beam.Create(items, reshuffle=False)
        | "CatalogRows" >> beam.Map(
            lambda it: sequences.to_example(sequences.catalog_row(it), F.CATALOG_FEATURES).SerializeToString())
    )
    _write(catalog, uri, F.CATALOG)
    result = p.run()
    result.wait_until_finish()
    if report is not None:
        print(f"[example_gen] {fileio.read_text(os.path.join(uri, 'load_report.txt')).rstrip()}", flush=True)
    counters = {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]
                if c.key.metric.namespace == "recsys"}
    print("[example_gen] " + ", ".join(f"{name} {counters.get(name, 0):,}" for name in
                                      ["users"] + [f"rows_{s}" for s in F.SEQUENCE_SPLITS])
          + f", catalogue items {len(items):,} ({time.time() - start:.0f}s)", flush=True)

    examples.split_names = artifact_utils.encode_split_names(list(F.ALL_SPLITS))
    examples_utils.set_payload_format(examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
    examples_utils.set_file_format(examples, "tfrecords_gzip")
    examples.set_string_custom_property("dataset", dataset_name)
    examples.set_string_custom_property("protocol", protocol)
    examples.set_int_custom_property("synthetic", int(synthetic))
    if report is None:
        fileio.write_text(os.path.join(uri, "load_report.txt"), ds.report.summary() + "\n")
    fileio.write_text(os.path.join(uri, PROTOCOL_FILE), protocol + "\n")
    _log.info("SequenceExampleGen wrote %s in %.1fs", uri, time.time() - start)
