"""The client distribution alone (``clients/python``, ``commerce-recsys-client``) in fresh virtual
environments without TensorFlow, against the slice's served models.

Each environment is made with ``python -m venv`` and gets ``pip install ./clients/python`` (numpy
from the registry; ``[grpc]`` adds grpcio, protobuf 3 and min-tfs-client's TF-free protos). A script
run there with a clean environment (outside the repository, no ``PYTHONPATH``) checks that no real
TensorFlow and none of the stack's packages can be imported, then calls the real local model server;
its answers must equal the full stack's client's (``serving.client``, tested against the models
called in-process by the other e2e tests) value for value.
"""
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from recsys import names as N

pytestmark = pytest.mark.e2e
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT_DIR = os.path.join(ROOT, "clients", "python")
MODELS = (N.RETRIEVAL_BRUTE_FORCE, N.RANKER, N.ITEM_ENCODER)
REQUEST_TIME = 893_286_638  # a fixed instant inside MovieLens-100K (the answers must not depend on now)

#: the calls, once: run by the fresh environment's interpreter with ``commerce_recsys_client``'s classes
#: and in this process with ``serving.client``'s
CALLS = textwrap.dedent('''
    def answers(RecommenderClient, ServingError, protocol, target, req):
        client = RecommenderClient(target, protocol=protocol, model_name="retrieval_bruteforce", timeout=60)
        out = {"user": [[r.item_id, r.score] for r in client.recommend(user_id=req["user"], k=10,
                                                                           exclude=req["exclude"])]}
        out["history"] = [[r.item_id, r.score] for r in client.recommend(history=req["history"], k=5)]
        out["batch"] = [[[r.item_id, r.score] for r in row]
                        for row in client.recommend_batch(user_ids=req["users"], k=[3, 4])]
        cands = [i for i, _ in out["user"]]
        out["rank"] = [[x.item_id, x.score, x.pctr, x.pcvr, x.pctcvr] for x in client.rank(
            req["user"], cands, sources={"two_tower": out["user"]}, history=req["history"],
            request_time=req["request_time"])]
        out["encode"] = [list(e.semantic_id) for e in client.encode_items(item_ids=cands[:3])]
        try:
            client.recommend_batch(user_ids=[req["user"]], k=3, model_name="no_such_model")
            out["unknown_model"] = None
        except ServingError as err:
            out["unknown_model"] = str(err.code)
        client.close()
        return out
''')

#: runs inside the fresh environment: argv = protocol, target, request JSON; prints the answers as JSON
CLIENT_SCRIPT = CALLS + textwrap.dedent('''
    import importlib.util, json, sys

    out = {"python": sys.version.split()[0]}
    try:
        import tensorflow
        # the [grpc] extra's min-tfs-client puts its protos under tensorflow/core/ (a namespace
        # package, no __init__.py): importable, but not TensorFlow
        out["tensorflow"] = getattr(tensorflow, "__file__", None) or "namespace only"
        out["real_tensorflow"] = hasattr(tensorflow, "constant")
    except ImportError as err:
        out["tensorflow"] = f"ImportError: {err}"
        out["real_tensorflow"] = False
    out["stack_packages"] = [p for p in ("recsys", "serving", "trainer", "transform", "export", "apps")
                             if importlib.util.find_spec(p) is not None]

    from commerce_recsys_client import RecommenderClient, ServingError

    out.update(answers(RecommenderClient, ServingError, sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
    out["modules"] = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "tensorflow_serving", "grpc"})
    print(json.dumps(out))
''')


def _fresh_venv(path, requirement: str) -> tuple[str, float]:
    """A new virtual environment with ``requirement`` pip-installed; (its python, seconds taken)."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    python = os.path.join(str(path), "bin", "python")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    done = subprocess.run([python, "-m", "pip", "install", "-q", requirement], env=env, cwd=str(path),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"pip install {requirement} failed:\n{done.stdout}\n{done.stderr}"
    return python, time.monotonic() - start


def _run_client(python: str, workdir, protocol: str, target: str, request: dict) -> dict:
    script = workdir / "use_client.py"
    script.write_text(CLIENT_SCRIPT)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(workdir)}  # no PYTHONPATH, no TF variables
    done = subprocess.run([python, str(script), protocol, target, json.dumps(request)], cwd=str(workdir),
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _full_stack_answers(protocol: str, target: str, req: dict) -> dict:
    """The same calls through the full stack's ``serving.client`` (in this process)."""
    from serving.client import RecommenderClient, ServingError

    namespace: dict = {}
    exec(CALLS, namespace)
    return namespace["answers"](RecommenderClient, ServingError, protocol, target, req)


@pytest.fixture(scope="module")
def served(deployed):
    from serving.server import ModelServer, model_server_config

    server = ModelServer(model_server_config({m: os.path.join(deployed.serving_dir, m) for m in MODELS}),
                         grpc_port=0, rest_port=0, poll_seconds=0, host="127.0.0.1").start()
    yield deployed, server
    server.stop()


@pytest.fixture(scope="module")
def request_doc(served):
    import glob

    from recsys import features as F
    from transform import examples_io

    layout, _ = served
    examples = sorted(glob.glob(os.path.join(layout.pipeline_root, "SequenceExampleGen", "examples", "*")))[-1]
    rows = examples_io.read_rows(examples, F.TEST)
    history = [str(h) for h in rows.histories[0]]
    return {"user": str(rows.user_ids[0]), "history": history, "exclude": history[:5],
            "users": [str(u) for u in rows.user_ids[:2]], "request_time": REQUEST_TIME}


def _check(got: dict, want: dict) -> None:
    assert len(got["user"]) == 10 and len(got["history"]) == 5 and len(got["rank"]) == 10
    for key in ("user", "history", "batch", "rank", "encode", "unknown_model"):
        assert got[key] == want[key], key


def test_rest_client_alone_in_a_venv_without_tensorflow(served, request_doc, tmp_path):
    _, server = served
    python, seconds = _fresh_venv(tmp_path / "venv", CLIENT_DIR)
    print(f"\nfresh venv + pip install ./clients/python: {seconds:.1f} s")
    target = f"127.0.0.1:{server.rest_port}"
    got = _run_client(python, tmp_path, "rest", target, request_doc)
    assert got["tensorflow"].startswith("ImportError") and not got["real_tensorflow"], got["tensorflow"]
    assert got["stack_packages"] == [] and got["modules"] == []
    assert got["unknown_model"] == "404"
    _check(got, _full_stack_answers("rest", target, request_doc))
    installed = subprocess.run([python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True,
                               check=True).stdout
    assert {p["name"].lower() for p in json.loads(installed)} <= {"commerce-recsys-client", "numpy", "pip",
                                                                  "setuptools"}


def test_grpc_extra_alone_in_a_venv_without_tensorflow(served, request_doc, tmp_path):
    """``[grpc]``: TF Serving's stubs and protos from min-tfs-client; no TensorFlow installed."""
    _, server = served
    python, seconds = _fresh_venv(tmp_path / "venv", CLIENT_DIR + "[grpc]")
    print(f"\nfresh venv + pip install ./clients/python[grpc]: {seconds:.1f} s")
    target = f"127.0.0.1:{server.grpc_port}"
    got = _run_client(python, tmp_path, "grpc", target, request_doc)
    assert got["tensorflow"] == "namespace only" and not got["real_tensorflow"]
    assert got["stack_packages"] == [] and got["modules"] == ["grpc", "tensorflow", "tensorflow_serving"]
    assert got["unknown_model"] == "NOT_FOUND"
    _check(got, _full_stack_answers("grpc", target, request_doc))
