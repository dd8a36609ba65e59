"""Test session set-up: TensorFlow Recommenders needs legacy Keras, chosen before TF loads.

Fixtures for the integration and e2e tests:

* ``ml_slice``: the whole pipeline, once per session, on the first 40 MovieLens-100K users, with
  the pipeline's real push gates (``min_lift=0.0``), run in a fresh interpreter seeded beyond what
  the trainers seed themselves (``SEEDED_ENV``). Its output artifacts are pinned right after the
  run (``SliceRun.uri``), so tests that re-run the pipeline on the same metadata (the gate tests)
  do not change what the others read.
* ``deployed``: every model the pipeline exports, pushed the way TFX's Pusher lays it out
  (``serving/<model>/<version>/``) whatever its gate said, beside the slice's pipeline root and
  metadata. Tests that need a served model use it, so they never depend on a gate's verdict; the
  gates and the pipeline's own pushes are tested in ``tests/integration/test_gates.py``.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import recsys  # noqa: E402,F401  (checks the Keras choice and quiets import-time warnings)

import dataclasses  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

SLICE_USERS = 40
DATASET = "movielens-100k"
#: the slice's pipeline arguments (``fingerprint`` is added at run time); ``min_lift=0.0`` is the
#: pipeline's default gate: every gated model must beat its bar on validation to be pushed
SLICE_KWARGS = dict(dataset=DATASET, max_users=SLICE_USERS, two_tower={"epochs": 2, "batch_size": 256},
                    min_lift=0.0, semantic_ids=True, rqvae={"epochs": 5}, dual_head=True,
                    dual_head_config={"epochs": 2, "max_history": 20, "batch_size": 128},
                    sequential=True, sequential_config={"epochs": 2, "max_history": 20, "batch_size": 128}, graph=True,
                    graph_config={"max_epochs": 4, "patience": 4, "embedding_dim": 32, "negatives": 20,
                                  "batch_size": 256},
                    ranking=True, ranking_config={"window": 3, "student": "always", "model": {
                        "max_epochs": 3, "patience": 2, "actions": 10, "negatives": 10, "batch_size": 32,
                        "transact_dim": 32, "deep_units": [32]}})
#: The trainers seed themselves (two-tower, RQ-VAE, dual head: ``seed=0`` ->
#: ``tf.keras.utils.set_random_seed``; the dual head's sampler and the RQ-VAE's k-means and dead-code
#: re-seeding take explicit seeds). What they cannot seed is set for the pipeline's interpreter:
#: Python's string hashing (set/dict orders of item ids) and TensorFlow's op-level determinism.
#: And the interpreter runs on one CPU, so TensorFlow's thread pools (and float summation orders) do
#: not depend on the machine's core count: the dual head trained on 2 CPUs and on 1 gives other
#: weights, each bit-identical run to run (measured; the pipeline took 245 s on 1 CPU, 257-290 s on 2
#: shared ones). Not seedable from here: ScaNN's index training (tfrs's ScaNN layer uses random
#: k-means initialisation, different in every build whatever the seeds and threads), so ScaNN rows
#: are compared with their brute-force twins within a tolerance, never exactly.
SEEDED_ENV = {"PYTHONHASHSEED": "0", "TF_DETERMINISTIC_OPS": "1", "TF_USE_LEGACY_KERAS": "1",
              "TF_CPP_MIN_LOG_LEVEL": "2"}

_RUN_PIPELINE = """
import json, os, sys
import recsys
from tfx_pipeline import local_runner
from tfx_pipeline.layout import Layout

spec = json.load(open(sys.argv[1]))

class _Layout(Layout):
    @property
    def serving_dir(self):
        return spec["serving_dir"] or os.path.join(self.root, "serving")

local_runner.run(_Layout(spec["root"], spec["kwargs"]["dataset"]), **spec["kwargs"])
"""


def _one_cpu() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def run_pipeline(root: str, kwargs: dict, serving_dir: str = "", log_name: str = "pipeline") -> float:
    """Runs the pipeline under ``root`` (a ``Layout`` root) in a fresh, seeded interpreter; returns seconds.

    ``serving_dir``: where the Pushers push (default ``root/serving``); the pipeline root and the
    metadata stay ``root``'s, so a run with other arguments reuses every unchanged component's cache.
    """
    os.makedirs(root, exist_ok=True)
    spec = os.path.join(root, f"{log_name}.json")
    with open(spec, "w") as f:
        json.dump({"root": root, "serving_dir": serving_dir, "kwargs": kwargs}, f)
    script = os.path.join(root, "run_pipeline.py")
    with open(script, "w") as f:
        f.write(_RUN_PIPELINE)
    log = os.path.join(root, f"{log_name}.log")
    start = time.time()
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, script, spec], stdout=out, stderr=subprocess.STDOUT,
                              env=dict(os.environ, **SEEDED_ENV), cwd=os.path.dirname(os.path.dirname(__file__)),
                              preexec_fn=_one_cpu)
    took = time.time() - start
    text = open(log).read()
    assert proc.returncode == 0, f"pipeline run failed ({log}):\n{text[-6000:]}"
    print("\n".join(line for line in text.splitlines() if line.startswith(("[pipeline", "[evaluate]"))))
    print(f"[tests] pipeline run {log_name} took {took:.0f}s")
    return took


@pytest.fixture(scope="session")
def slice_kwargs() -> dict:
    """``create_pipeline`` arguments of the MovieLens slice (a fixture: test modules cannot import
    this conftest by name, another conftest.py shadows it when the whole suite runs)."""
    return dict(SLICE_KWARGS)


@pytest.fixture(scope="session", name="run_pipeline")
def run_pipeline_fixture():
    """:func:`run_pipeline`: the pipeline in a fresh, seeded interpreter."""
    return run_pipeline


def output_uris(layout) -> dict:
    """{(component id, output key): uri} of the newest live artifact of every output under the pipeline root."""
    from tfx_pipeline.artifacts import ArtifactNotFound, latest_output_uri

    out = {}
    for component in sorted(os.listdir(layout.pipeline_root)):
        path = os.path.join(layout.pipeline_root, component)
        if component.startswith((".", "_")) or not os.path.isdir(path):
            continue
        for key in sorted(os.listdir(path)):
            try:
                out[component, key] = latest_output_uri(layout, component, key)
            except ArtifactNotFound:
                pass
    return out


@dataclasses.dataclass(frozen=True)
class Push:
    """One Pusher of the pipeline: model ``name`` from ``model`` = (component, output), gated by ``blessing``."""
    component_id: str
    name: str
    model: tuple
    blessing: tuple | None
    extra: tuple = ()  # further Pushers to the same destination (the student pushed with the ranker)


def pipeline_pushes(kwargs: dict) -> dict:
    """{served model name: Push} read from the pipeline's definition (built, not run); a second
    Pusher to the same destination is in the first one's ``extra``."""
    from google.protobuf import json_format
    from tfx import v1 as tfx

    from tfx_pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(pipeline_name="p", pipeline_root="/nowhere", metadata_path="/nowhere.sqlite",
                               serving_dir="/serving", **kwargs)
    out = {}
    for c in pipeline.components:
        if not c.type.endswith(".Pusher"):
            continue
        dest = json_format.Parse(c.exec_properties["push_destination"], tfx.proto.PushDestination())
        name = os.path.relpath(dest.filesystem.base_directory, "/serving")
        blessing = c.inputs.get("model_blessing")
        push = Push(c.id, name, (c.inputs["model"].producer_component_id, c.inputs["model"].output_key),
                    (blessing.producer_component_id, blessing.output_key) if blessing is not None else None)
        out[name] = dataclasses.replace(out[name], extra=out[name].extra + (push,)) if name in out else push
    return out


@dataclasses.dataclass(frozen=True)
class SliceRun:
    layout: object  # tfx_pipeline.layout.Layout
    kwargs: dict
    outputs: dict   # (component id, output key) -> uri, pinned right after the run
    seconds: float

    def uri(self, component: str, key: str) -> str:
        assert (component, key) in self.outputs, f"no {key} output of {component} (have {sorted(self.outputs)})"
        return self.outputs[component, key]

    def model_dir(self, component: str, key: str) -> str:
        """The SavedModel inside a Model artifact (where TFX's Pusher takes it from)."""
        from recsys.names import SERVING_SUBDIR

        return os.path.join(self.uri(component, key), SERVING_SUBDIR)

    def read_json(self, component: str, key: str, *path: str) -> dict:
        with open(os.path.join(self.uri(component, key), *path)) as f:
            return json.load(f)

    @property
    def pushes(self) -> dict:
        return pipeline_pushes(self.kwargs)


@pytest.fixture(scope="session")
def ml_slice(tmp_path_factory) -> SliceRun:
    """The whole pipeline, once per session, on a real slice: the first 40 MovieLens-100K users."""
    from recsys.data import dataset_fingerprint
    from tfx_pipeline.layout import Layout

    layout = Layout(str(tmp_path_factory.mktemp("artifacts")), DATASET)
    kwargs = dict(SLICE_KWARGS, fingerprint=dataset_fingerprint(DATASET))
    took = run_pipeline(layout.root, kwargs)
    return SliceRun(layout, kwargs, output_uris(layout), took)


def push_like_tfx(model_dir: str, base_directory: str, version: int) -> str:
    """Copies a SavedModel to ``base_directory/<version>/`` as TFX's Pusher does (saved_model.pb last)."""
    target = os.path.join(base_directory, str(version))
    shutil.copytree(model_dir, target, ignore=lambda d, names: ["saved_model.pb"] if d == model_dir else [])
    shutil.copy2(os.path.join(model_dir, "saved_model.pb"), os.path.join(target, "saved_model.pb"))
    return target


@pytest.fixture(scope="session")
def deployed(ml_slice, tmp_path_factory):
    """A ``Layout`` with every model the pipeline exports pushed (blessed or not) and the slice's run beside it.

    ``pipelines/`` and ``metadata/`` link to the slice's; ``serving/<model>/<version>/`` holds a copy of
    the exporter's output each Pusher would push (for the gated ones, whatever the gate said).
    """
    from tfx_pipeline.layout import Layout

    src = ml_slice.layout
    root = tmp_path_factory.mktemp("deployed")
    os.symlink(os.path.dirname(src.pipeline_root), root / "pipelines")
    os.symlink(os.path.dirname(src.metadata_path), root / "metadata")
    layout = Layout(str(root), src.dataset)
    version = int(time.time())  # the Pusher's versioning: UNIX time of the push
    for name, push in ml_slice.pushes.items():
        push_like_tfx(ml_slice.model_dir(*push.model), os.path.join(layout.serving_dir, name), version)
    return layout


def latest_match(pattern: str) -> str:
    """The last path matching ``pattern`` (TFX names artifact directories by execution id)."""
    import glob

    found = sorted(glob.glob(pattern))
    assert found, f"nothing matches {pattern}"
    return found[-1]


@pytest.fixture
def latest():
    return latest_match


def run_in_fresh_process(code: str, workdir, timeout: float = 300.0):
    """Runs a python snippet in a new interpreter (nothing shared with this one); returns its JSON output.

    The snippet must assign a JSON-serialisable value to ``result``.
    """
    script = os.path.join(str(workdir), "fresh.py")
    out = os.path.join(str(workdir), "fresh.json")
    with open(script, "w", encoding="utf-8") as f:
        f.write("import os\nos.environ['TF_USE_LEGACY_KERAS'] = '1'\nimport recsys\n" + textwrap.dedent(code)
                + f"\nimport json\njson.dump(result, open({out!r}, 'w'))\n")
    proc = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def fresh_process_any_scope(tmp_path_factory):
    """``fresh_process`` for module- and session-scoped fixtures (a new temporary directory per call)."""
    def run(code: str, timeout: float = 300.0):
        return run_in_fresh_process(code, tmp_path_factory.mktemp("fresh"), timeout)

    return run


@pytest.fixture
def fresh_process(tmp_path):
    """Runs a python snippet in a new interpreter (nothing shared with this one); returns its JSON output.

    The snippet must assign a JSON-serialisable value to ``result``.
    """
    def run(code: str, timeout: float = 300.0):
        return run_in_fresh_process(code, tmp_path, timeout)

    return run


#: ``saved_model.pb`` bytes one more user (or item) may add to a served model: its id ("user123456") in a lookup
#: table's keys, with the proto's per-string overhead, and its int64 position in the table's values. A user's 30-item history is at least 90 bytes, a 32-d
#: float vector 128: exporters keep those in the SavedModel's variables (``trainer.base.frozen_table``), since
#: protocol buffers stop at 2 GB (issue 14).
PB_BYTES_PER_ID = 24


@pytest.fixture
def pb_growth(tmp_path):
    """``pb_growth(build, save)``: ``saved_model.pb`` bytes per unit of ``n`` between ``build(10)`` and
    ``build(1010)``, each saved by ``save(module, path)``; ``pb_growth.limit`` is ``PB_BYTES_PER_ID``."""
    def growth(build, save, few: int = 10, many: int = 1010) -> float:
        sizes = []
        for n in (few, many):
            path = str(tmp_path / f"pb_growth_{len(os.listdir(tmp_path))}_{n}")
            save(build(n), path)
            sizes.append(os.path.getsize(os.path.join(path, "saved_model.pb")))
        growth.measured.append((sizes[1] - sizes[0]) / (many - few))
        print("saved_model.pb bytes per unit", growth.measured[-1])
        return growth.measured[-1]

    growth.limit = PB_BYTES_PER_ID
    growth.measured = []
    growth.users = lambda n: [f"user{i:06d}" for i in range(n)]
    return growth
