"""RankingWindow: the examples → the same splits with each user's last training units held out (``window``).

The candidate retrievers that produce the ranker's training exposures are trained
on this artifact's ``train`` split (the prefix) and never see the ``window`` units
whose candidates they produce (``transform/ranking_window.py``). ``eval``,
``test`` and ``catalog`` are copied unchanged, so the prefix retrievers select
their epochs on the same validation units as the served ones.
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
from recsys.names import PROTOCOL_FILE
from transform import fileio
from transform import ranking_window as RW


@component(use_beam=True)
def RankingWindow(  # noqa: N802
    examples: InputArtifact[tfx.types.standard_artifacts.Examples],
    window_examples: OutputArtifact[tfx.types.standard_artifacts.Examples],
    window: Parameter[int] = RW.DEFAULT_WINDOW,
    code_version: Parameter[int] = 1,  # the pipeline passes it; bumped when the split changes (cache key)
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    start = time.time()
    src, dst = examples.uri, window_examples.uri
    p = beam_pipeline
    rows = p | "ReadTrain" >> beam.io.ReadFromTFRecord(
        os.path.join(src, f"Split-{F.TRAIN}", "*"), compression_type=beam.io.filesystem.CompressionTypes.GZIP)
    out = rows | "SplitWindow" >> RW.SplitRankingWindow(window)
    for split in (F.TRAIN, RW.WINDOW):
        _ = (out[split] | f"Write-{split}" >> beam.io.WriteToTFRecord(
            os.path.join(dst, f"Split-{split}", "data_tfrecord"), file_name_suffix=".gz"))
        _ = (out[split] | f"Count-{split}" >> beam.combiners.Count.Globally()
             | f"Print-{split}" >> beam.Map(lambda n, s=split: print(f"[ranking_window] {s} rows {n:,}", flush=True)))
    p.run().wait_until_finish()
    for split in (F.EVAL, F.TEST, F.CATALOG):
        fileio.copytree(os.path.join(src, f"Split-{split}"), os.path.join(dst, f"Split-{split}"))
    fileio.copy(os.path.join(src, PROTOCOL_FILE), os.path.join(dst, PROTOCOL_FILE))
    window_examples.split_names = artifact_utils.encode_split_names(list(F.ALL_SPLITS) + [RW.WINDOW])
    examples_utils.set_payload_format(window_examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
    examples_utils.set_file_format(window_examples, "tfrecords_gzip")
    for key in ("dataset", "protocol"):
        window_examples.set_string_custom_property(key, examples.get_string_custom_property(key))
    window_examples.set_int_custom_property("window", window)
    print(f"[ranking_window] last {window} training units per user held out ({time.time() - start:.0f}s)", flush=True)
