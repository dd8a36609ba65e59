"""The import graph points down only: data → transform → trainer → export → pipeline → serving → apps.

Every ``import`` and ``from ... import`` in the project's packages (function-level
imports included) is read with ``ast``; an import of a package on a higher layer
than the importing module's fails the test with the file, line and edge.
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


def test_no_module_imports_a_higher_layer():
    assert upward_edges() == []


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
