"""GraphBuilder: the training events → the interaction graph (an ``Examples`` artifact with two splits).

A Beam job over the **training split only** (``transform/graph.py``): per-behaviour
user–item edges with counts and recency weights (split ``edges``), each item's
top-K UltraGCN item-graph neighbours (split ``item_neighbours``), both as sharded
gzipped tf.Examples that Beam and ``tf.data`` read; degree statistics and the
share of users / items without a purchase edge are printed and stored
(``graph_stats.json``).
"""
import os
import time

import apache_beam as beam
from tfx import v1 as tfx
from tfx.components.util import examples_utils
from tfx.dsl.component.experimental.annotations import BeamComponentParameter, InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils

from recsys import features as F
from transform import fileio
from transform import graph as G


@component(use_beam=True)
def GraphBuilder(  # noqa: N802
    examples: InputArtifact[tfx.types.standard_artifacts.Examples],
    graph: OutputArtifact[tfx.types.standard_artifacts.Examples],
    neighbours: Parameter[int] = G.DEFAULT_NEIGHBOURS,
    half_life: Parameter[float] = G.DEFAULT_HALF_LIFE,
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    from transform import examples_io

    start = time.time()
    protocol = examples.get_string_custom_property("protocol")
    catalog = examples_io.read_catalog(examples.uri)
    item_ids = catalog.item_ids.tolist()
    p = beam_pipeline
    rows = p | "ReadTrain" >> beam.io.ReadFromTFRecord(
        os.path.join(examples.uri, f"Split-{F.TRAIN}", "*"), compression_type=beam.io.filesystem.CompressionTypes.GZIP)
    out = rows | "BuildGraph" >> G.BuildGraph(item_ids, protocol, neighbours=neighbours, half_life=half_life)
    for split in F.GRAPH_SPLITS:
        _ = out[split] | f"Write-{split}" >> beam.io.WriteToTFRecord(
            os.path.join(graph.uri, f"Split-{split}", "data_tfrecord"), file_name_suffix=".gz")
    stats_path = os.path.join(graph.uri, G.STATS_FILE)
    _ = out["stats"] | "WriteStats" >> beam.Map(G.write_stats, stats_path)
    p.run().wait_until_finish()

    graph.split_names = artifact_utils.encode_split_names(list(F.GRAPH_SPLITS))
    examples_utils.set_payload_format(graph, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
    examples_utils.set_file_format(graph, "tfrecords_gzip")
    for key in ("dataset", "protocol"):
        graph.set_string_custom_property(key, examples.get_string_custom_property(key))
    stats = fileio.read_json(stats_path)
    stats["elapsed_s"] = round(time.time() - start, 1)
    stats["neighbours"], stats["half_life_orders"] = neighbours, half_life
    G.write_stats(stats, stats_path)
    print(G.format_stats(stats), flush=True)
    print(f"[graph] built in {time.time() - start:.0f}s", flush=True)
