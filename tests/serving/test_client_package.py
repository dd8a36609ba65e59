"""The client distribution's package (``clients/python/src/commerce_recsys_client``) stays installable alone.

* its modules import the standard library, numpy and themselves at import time; the gRPC path's
  function-level imports add only grpc, protobuf and TF Serving's protos;
* its ``names`` is the contract module ``recsys/names.py`` itself (a symlink, shipped by path);
* ``serving.client`` is that module, ``serving.tensors`` and ``serving.codec`` re-export its code
  with the server's errors (INVALID_ARGUMENT), and importing either loads neither TensorFlow nor gRPC.
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
            allowed = AT_IMPORT if top else ON_FIRST_USE
            if package not in allowed and package not in sys.stdlib_module_names:
                bad.append(f"{os.path.relpath(path, ROOT)}:{line}: imports {package}"
                           f"{'' if top else ' (in a function)'}")
    assert bad == []
    assert {os.path.basename(p) for p in _modules()} == {"__init__.py", "client.py", "jsontext.py", "names.py",
                                                         "tensors.py"}


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


def test_serving_client_is_the_client_package_module():
    import commerce_recsys_client
    from commerce_recsys_client import client as package_client
    from serving import client

    assert client is package_client
    assert commerce_recsys_client.RecommenderClient is client.RecommenderClient
    from serving.client import RecommenderClient, ServingError  # the stack's spelling keeps working

    assert RecommenderClient.__module__ == "commerce_recsys_client.client" and issubclass(ServingError, Exception)


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
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'grpc', 'recsys'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
