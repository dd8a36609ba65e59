"""The import graph points down only: data → transform → trainer → export → pipeline → serving → apps.

Every ``import`` and ``from ... import`` in the project's packages (function-level
imports included) is read with ``ast``; an import of a package on a higher layer
than the importing module's fails the test with the file, line and edge.

The client distribution's package (``clients/python/src/commerce_recsys_client``) sits beside
``serving``: the layers below serving must not import it, and it imports none of the stack's
packages (not even ``recsys``: its ``names`` is ``recsys/names.py`` by path) and no TensorFlow
(beyond the TF-free protos of the ``grpc`` extra, checked in ``tests/serving/test_client_package.py``).
"""
from __future__ import annotations

import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: bottom first; a module may import its own layer and the layers below it
LAYERS = ("recsys", "transform", "trainer", "export", "tfx_pipeline", "serving", "apps", "benchmarks")
RANK = {name: i for i, name in enumerate(LAYERS)}
CLIENT = "commerce_recsys_client"
CLIENT_DIR = os.path.join("clients", "python", "src", CLIENT)
RANK[CLIENT] = RANK["serving"]  # beside serving: imported by serving (its aliases) and above only
#: what the client package must never import (the whole stack, and the TensorFlow/TFX runtimes)
CLIENT_FORBIDDEN = set(LAYERS) | {"tfx", "tensorflow_transform", "tensorflow_recommenders", "scann", "apache_beam",
                                  "tf_keras", "keras"}


def _modules():
    for layer in LAYERS:
        base = os.path.join(ROOT, layer)
        for dirpath, _, files in os.walk(base):
            for name in files:
                if name.endswith(".py"):
                    yield layer, os.path.join(dirpath, name)


def _imported_packages(path: str):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def upward_edges() -> list[str]:
    edges = []
    for layer, path in _modules():
        for line, package in _imported_packages(path):
            if package in RANK and RANK[package] > RANK[layer]:
                edges.append(f"{os.path.relpath(path, ROOT)}:{line}: {layer} imports {package}")
    return edges


def _guarded_imports(tree) -> set:
    """ids of the import nodes directly inside a ``try`` that catches ImportError (optional imports)."""
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            guarded.update(id(n) for n in node.body if isinstance(n, (ast.Import, ast.ImportFrom)))
    return guarded


def client_edges() -> list[str]:
    """The client package's imports of the stack. ``tensorflow``: only its ``tensorflow.core`` protos (the
    ``grpc`` extra ships them without TensorFlow) or guarded by ``except ImportError`` (used when present)."""
    edges = []
    base = os.path.join(ROOT, CLIENT_DIR)
    for name in sorted(os.listdir(base)):
        if not name.endswith(".py"):
            continue
        path = os.path.join(base, name)
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
        guarded = _guarded_imports(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in CLIENT_FORBIDDEN or (top == "tensorflow" and not module.startswith("tensorflow.core")
                                               and id(node) not in guarded):
                    edges.append(f"{os.path.relpath(path, ROOT)}:{node.lineno}: {CLIENT} imports {module}")
    return edges


def test_no_module_imports_a_higher_layer():
    assert upward_edges() == []


def test_the_client_package_imports_nothing_of_the_stack():
    assert client_edges() == []


def test_the_client_checker_sees_a_stack_import(tmp_path, monkeypatch):
    package = tmp_path / CLIENT_DIR
    package.mkdir(parents=True)
    (package / "ok.py").write_text("import numpy\n\ndef f():\n    from tensorflow.core.framework import tensor_pb2\n"
                                   "    try:\n        import tensorflow\n    except ImportError:\n        pass\n")
    (package / "bad.py").write_text("from recsys import features\n\ndef f():\n    import tensorflow as tf\n")
    (tmp_path / "transform").mkdir()
    (tmp_path / "transform" / "up.py").write_text(f"from {CLIENT} import multistage\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    assert client_edges() == [f"{CLIENT_DIR}/bad.py:1: {CLIENT} imports recsys",
                              f"{CLIENT_DIR}/bad.py:4: {CLIENT} imports tensorflow"]
    assert upward_edges() == [f"transform/up.py:1: transform imports {CLIENT}"]


def test_the_contract_module_imports_nothing():
    tree = ast.parse(open(os.path.join(ROOT, "recsys", "names.py"), encoding="utf-8").read())
    assert [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))] == []


def test_the_checker_sees_an_upward_edge(tmp_path, monkeypatch):
    """The test above can fail: a planted upward import is reported with its file and line."""
    (tmp_path / "trainer").mkdir()
    (tmp_path / "trainer" / "bad.py").write_text("import os\n\ndef f():\n    from tfx_pipeline import pipeline\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    assert upward_edges() == ["trainer/bad.py:4: trainer imports tfx_pipeline"]


@pytest.mark.parametrize("layer", LAYERS)
def test_every_layer_exists(layer):
    assert os.path.isdir(os.path.join(ROOT, layer))
