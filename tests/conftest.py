"""Test session set-up: TensorFlow Recommenders needs legacy Keras, chosen before TF loads."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import recsys  # noqa: E402,F401  (checks the Keras choice and quiets import-time warnings)

import pytest  # noqa: E402

SLICE_USERS = 40


@pytest.fixture(scope="session")
def ml_slice(tmp_path_factory):
    """The whole pipeline, once per session, on a real slice: the first 40 MovieLens-100K users.

    ``min_lift=-1`` blesses whatever the short training gives, so the push path
    always runs; the gate itself is checked on the evaluator's verdict.
    """
    from recsys.data import dataset_fingerprint
    from tfx_pipeline import local_runner
    from tfx_pipeline.layout import Layout

    layout = Layout(str(tmp_path_factory.mktemp("artifacts")), "movielens-100k")
    kwargs = dict(dataset="movielens-100k", fingerprint=dataset_fingerprint("movielens-100k"),
                  max_users=SLICE_USERS, two_tower={"epochs": 2, "batch_size": 256}, min_lift=-1.0,
                  semantic_ids=True, rqvae={"epochs": 5},
                  dual_head=True, dual_head_config={"epochs": 2, "max_history": 20, "batch_size": 128})
    local_runner.run(layout, **kwargs)
    return layout, kwargs


def latest_match(pattern: str) -> str:
    """The last path matching ``pattern`` (TFX names artifact directories by execution id)."""
    import glob

    found = sorted(glob.glob(pattern))
    assert found, f"nothing matches {pattern}"
    return found[-1]


@pytest.fixture
def latest():
    return latest_match


@pytest.fixture
def fresh_process(tmp_path):
    """Runs a python snippet in a new interpreter (nothing shared with this one); returns its JSON output.

    The snippet must assign a JSON-serialisable value to ``result``.
    """
    import json
    import subprocess
    import sys
    import textwrap

    def run(code: str, timeout: float = 300.0):
        script = tmp_path / "fresh.py"
        out = tmp_path / "fresh.json"
        script.write_text("import os\nos.environ['TF_USE_LEGACY_KERAS'] = '1'\nimport recsys\n"
                          + textwrap.dedent(code)
                          + f"\nimport json\njson.dump(result, open({str(out)!r}, 'w'))\n")
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(out.read_text())

    return run
