"""DualHeadEvaluator: full-ranking metrics of the dual-head models and their two push gates.

* ``retrieval_blessing``: the student (``dual_retrieval``, brute-force twin)
  must beat the two-tower's validation NDCG@10 (read from the
  RetrievalEvaluator's metrics) by ``min_lift``: only then is it pushed, and
  the client's ``recommend`` uses it by default once it is served.
* ``generative_blessing``: the teacher must beat popularity's validation NDCG@10.

Both are ``gate.Gate``s; test metrics are computed and stored, never used to decide.

A second instance evaluates the SASRec-style variant (``student="sequential_retrieval"``): its rows
are ``sequential_retrieval`` and ``sequential_retrieval_scann`` (masked and ``(unmasked)``), its
``retrieval_blessing`` the same gate against the two-tower; it has no teacher, so its
``generative_blessing`` says not blessed (no ``generative`` model was exported).
"""

import os

from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component

from recsys import names as N
from tfx_pipeline.components.evaluator import GATE_MODEL, evaluate_splits, spine_rows
from tfx_pipeline.components.gate import Gate, write_blessing
from transform import fileio

STUDENT = N.DUAL_RETRIEVAL
TEACHER = N.GENERATIVE
STUDENTS = (N.DUAL_RETRIEVAL, N.SEQUENTIAL_RETRIEVAL)
#: what each gate's verdict means for the served system: (passed, failed)
VERDICTS = {N.DUAL_RETRIEVAL: ("BLESSED, pushed as the default retrieval model",
                               "NOT blessed, the two-tower stays the default"),
            N.SEQUENTIAL_RETRIEVAL: ("BLESSED, pushed (a retriever of the multi-stage fan-out)",
                                     "NOT blessed, not pushed")}


@component
def DualHeadEvaluator(  # noqa: N802
    examples: InputArtifact[tfx.types.standard_artifacts.Examples],
    bruteforce_model: InputArtifact[tfx.types.standard_artifacts.Model],
    scann_model: InputArtifact[tfx.types.standard_artifacts.Model],
    generative_model: InputArtifact[tfx.types.standard_artifacts.Model],
    baseline_evaluation: InputArtifact[tfx.types.standard_artifacts.ModelEvaluation],
    evaluation: OutputArtifact[tfx.types.standard_artifacts.ModelEvaluation],
    retrieval_blessing: OutputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    generative_blessing: OutputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    min_lift: Parameter[float] = 0.0,
    student: Parameter[str] = STUDENT,  # the served name of the retriever evaluated (and its rows' label)
    eval_users: Parameter[int] = 0,  # > 0: the users sampled (the spine's RetrievalEvaluator must use the same)
) -> None:
    if student not in STUDENTS:
        raise ValueError(f"DualHeadEvaluator evaluates one of {STUDENTS}, got student={student!r}")
    dirs = {student: os.path.join(bruteforce_model.uri, N.SERVING_SUBDIR),
            f"{student}_scann": os.path.join(scann_model.uri, N.SERVING_SUBDIR)}
    generative_dir = os.path.join(generative_model.uri, N.SERVING_SUBDIR)
    batch_sizes = {}
    if fileio.exists(os.path.join(generative_dir, "saved_model.pb")):
        from export.evaluate import beam_batch_size
        from tfx_pipeline.components.dual_head_exporter import REPORT_FILE

        dirs[TEACHER] = generative_dir
        exported = fileio.read_json(os.path.join(scann_model.uri, REPORT_FILE))
        batch_sizes[TEACHER] = beam_batch_size(exported["catalog_items"])
    # the spine's two-tower (and baselines) beside the new models
    out = evaluate_splits(examples, dirs, evaluation.uri, known=spine_rows(baseline_evaluation.uri),
                          sample_users=eval_users, batch_sizes=batch_sizes)
    val = out["validation"]["models"]
    passed, failed = VERDICTS[student]
    Gate(student, GATE_MODEL, min_lift, passed=passed, failed=failed).apply(val, retrieval_blessing)
    if TEACHER in dirs:
        Gate(TEACHER, "popularity", min_lift).apply(val, generative_blessing)
    else:
        write_blessing(generative_blessing, False, f"{TEACHER}: not exported with {student} (no generative head); "
                                                   "nothing to push")
