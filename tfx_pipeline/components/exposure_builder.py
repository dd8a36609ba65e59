"""ExposureBuilder: retrievers' candidates for every ranked unit → the ranker's exposures (an Examples artifact).

A Beam job (``transform/exposures.py``) over the ranking-window artifact: the
window units (split ``train`` of the output) get candidates from the retrievers
trained on the prefix, the validation and test units from the served ones. The
retrievers are their brute-force twins (exact top-N, stock TF ops). Statistics
per split (candidates and positives per unit, share of units whose target is in
the set = the ranker's ceiling) are printed and stored (``exposure_stats.json``).

The dual-head student is a source only when both copies are given (``prefix_student``
and ``student``) and, if ``student_blessing`` is given, that blessing says the student
is served: a source the served system lacks must not be a feature the ranker learns.
"""
import json
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
from recsys import names as N
from transform import exposures as X
from transform import fileio
from transform.ranking_window import WINDOW

Model = tfx.types.standard_artifacts.Model


@component(use_beam=True)
def ExposureBuilder(  # noqa: N802
    examples: InputArtifact[tfx.types.standard_artifacts.Examples],
    window_examples: InputArtifact[tfx.types.standard_artifacts.Examples],
    prefix_two_tower: InputArtifact[Model],
    prefix_graph: InputArtifact[Model],
    two_tower: InputArtifact[Model],
    graph: InputArtifact[Model],
    exposures: OutputArtifact[tfx.types.standard_artifacts.Examples],
    prefix_student: InputArtifact[Model] = None,
    student: InputArtifact[Model] = None,
    student_blessing: InputArtifact[tfx.types.standard_artifacts.ModelBlessing] = None,
    top_n_json: Parameter[str] = "{}",
    eval_users: Parameter[int] = 0,
    window_users: Parameter[int] = 0,
    code_version: Parameter[int] = 1,  # the pipeline passes it; bumped when the exposures change (cache key)
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    from transform import examples_io

    start = time.time()
    protocol = examples.get_string_custom_property("protocol")
    catalog = examples_io.read_catalog(examples.uri)
    category = dict(zip(catalog.item_ids.tolist(), catalog.categories.tolist()))

    def serving(model):
        return os.path.join(model.uri, N.SERVING_SUBDIR)

    use_student, student_note = _student_decision(prefix_student, student, student_blessing)
    print(f"[exposures] student source: {student_note}", flush=True)
    prefix = X.RetrieverSet(serving(prefix_two_tower), serving(prefix_graph),
                            examples_io.training_item_counts(window_examples.uri),
                            serving(prefix_student) if use_student else "")
    served = X.RetrieverSet(serving(two_tower), serving(graph), examples_io.training_item_counts(examples.uri),
                            serving(student) if use_student else "")
    samples, sample_note = _samples(window_examples.uri, eval_users, window_users)
    print(f"[exposures] units: {sample_note}", flush=True)
    fn = X.CandidateFn(prefix, served, category, exclude_history=protocol == N.LEAVE_ONE_OUT,
                       top_n=json.loads(top_n_json), samples=samples)
    p = beam_pipeline
    reads = {split: p | f"Read-{split}" >> beam.io.ReadFromTFRecord(
        os.path.join(window_examples.uri, f"Split-{split}", "*"),
        compression_type=beam.io.filesystem.CompressionTypes.GZIP)
        for split in (F.TRAIN, WINDOW, F.EVAL, F.TEST)}
    out = reads | "Exposures" >> X.BuildExposures(fn)
    for split in F.SEQUENCE_SPLITS:
        _ = out[split] | f"Write-{split}" >> beam.io.WriteToTFRecord(
            os.path.join(exposures.uri, f"Split-{split}", "data_tfrecord"), file_name_suffix=".gz")
    stats_path = os.path.join(exposures.uri, X.STATS_FILE)
    _ = (out["stats"] | "AllStats" >> beam.combiners.ToList()
         | "Summarise" >> beam.Map(lambda rows: _write_json(X.summarise(rows), stats_path)))
    p.run().wait_until_finish()

    exposures.split_names = artifact_utils.encode_split_names(list(F.SEQUENCE_SPLITS))
    examples_utils.set_payload_format(exposures, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
    examples_utils.set_file_format(exposures, "tfrecords_gzip")
    for key in ("dataset", "protocol"):
        exposures.set_string_custom_property(key, examples.get_string_custom_property(key))
    stats = fileio.read_json(stats_path)
    stats = {"splits": stats, "features": list(X.FEATURE_NAMES), "sources": list(X.SOURCES),
             "student": {"used": use_student, "why": student_note},
             "top_n": dict(X.DEFAULT_TOP_N, **json.loads(top_n_json)),
             "sampled_users": {split: len(users) for split, users in samples.items() if users is not None},
             "elapsed_s": round(time.time() - start, 1)}
    _write_json(stats, stats_path)
    print(X.format_stats(stats["splits"]), flush=True)
    print(f"[exposures] built in {time.time() - start:.0f}s", flush=True)


def _samples(uri: str, eval_users: int, window_users: int) -> tuple[dict, str]:
    """Per unit split, the users whose units are built (None: every user), and a line saying so.

    ``eval_users`` > 0: the validation and test units of the users the evaluators' ``--eval-users`` draws
    (``examples_io.sampled_users`` over the split's rows: the RankerEvaluator and the ranker's validation then
    find exactly these users). ``window_users`` > 0: the ranker's training units (the window) of that many users,
    drawn the same way from the window split's rows (the draw is by user id, so a user with several window
    units keeps all of them).
    """
    from recsys.evaluation.metrics import sample_rows
    from transform import examples_io

    for name, value in (("eval_users", eval_users), ("window_users", window_users)):
        if value < 0:
            raise ValueError(f"ExposureBuilder: {name} must be >= 0 (0 = every user); got {value}")
    draws = {F.TRAIN: (WINDOW, window_users), F.EVAL: (F.EVAL, eval_users), F.TEST: (F.TEST, eval_users)}
    samples, notes = {}, []
    for split, (source, size) in draws.items():
        if not size:
            samples[split] = None
            continue
        # distinct ids (a window user has several rows): for the one-row-per-user validation and test splits this
        # is examples_io.sampled_users' draw exactly
        users = list(dict.fromkeys(examples_io.user_ids(examples_io.split_files(uri, source))))
        keep = sample_rows(users, size)
        samples[split] = None if len(keep) == len(users) else frozenset(users[i] for i in keep.tolist())
        notes.append(f"{split} {len(keep):,} of {len(users):,} users")
    return samples, ("every user's" if not notes else "sampled: " + ", ".join(notes))


def _student_decision(prefix_student, student, blessing) -> tuple[bool, str]:
    """(use the student source?, why) from the optional inputs."""
    if prefix_student is None and student is None:
        return False, "off (no dual-head student in this pipeline)"
    if prefix_student is None or student is None:
        raise ValueError("ExposureBuilder: the student source needs both prefix_student and student")
    if blessing is not None and not blessing.get_int_custom_property("blessed"):
        return False, "off (the dual-head student is not blessed for serving, so the served system lacks it)"
    if blessing is None:
        return True, "on (used whether or not the student is served)"
    return True, "on (the dual-head student is blessed and served)"


def _write_json(obj, path: str) -> None:
    fileio.write_json(path, obj, indent=1)
