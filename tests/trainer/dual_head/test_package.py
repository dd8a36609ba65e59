"""The package's surface: the names other code imports, the TFX Trainer's run_fn path, the import layering."""
import ast
import importlib.util
import inspect
import pathlib
import re

import trainer.dual_head as D

PACKAGE = pathlib.Path(D.__file__).parent
REPO = PACKAGE.parent.parent
# what export/dual_head.py, tfx_pipeline/, benchmarks/, recsys/ and the tests use
USED = ("EVENT_TYPES", "VARIANTS", "DualHeadConfig", "ItemSpace", "SequenceData", "DualHeadModel", "PairSampler",
        "Trainer", "TrainResult", "TRAIN_INFO", "relative_orders", "load_sequences", "load_item_space",
        "exclude_history_for", "catalogue_vectors", "user_vectors", "retrieval_topk", "generative_topk", "evaluate",
        "train", "save_trained", "load_trained", "run_fn", "multi_positive_infonce", "distillation_kl", "listmle")


def test_the_names_other_code_uses_are_re_exported():
    missing = [n for n in USED if not hasattr(D, n)]
    assert missing == []
    assert set(USED) <= set(D.__all__)
    # ``train`` and ``evaluate`` are the functions, not modules of the same name
    assert inspect.isfunction(D.train) and inspect.isfunction(D.evaluate) and inspect.isfunction(D.run_fn)
    from trainer.dual_head import EVENT_TYPES, DualHeadModel, ItemSpace  # noqa: F401  (dual_head_export's import)


def test_the_pipeline_run_fn_path_resolves_to_run_fn():
    from tfx.components.util import udf_utils

    # the dual head and its prefix copy (the ranker's student source) are the same trainer
    [path] = set(re.findall(r'run_fn="([^"]*dual_head[^"]*)"', (REPO / "tfx_pipeline" / "pipeline.py").read_text()))
    assert udf_utils.get_fn({"run_fn": path}, "run_fn") is D.run.run_fn


def _imports(path: pathlib.Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__":
            out.add(node.module)
    return out


def test_imports_point_down_and_exist():
    imports = {p.name: _imports(p) for p in PACKAGE.glob("*.py")}
    assert len(imports) >= 10
    everything = set().union(*imports.values())
    assert [m for m in everything if m.split(".")[0] in ("tfx_pipeline", "benchmarks", "serving", "tfx")] == []
    assert [m for m in everything if importlib.util.find_spec(m) is None] == []
    # inside the package: no module imports one below it in this order (the package docstring's)
    order = ["config", "data", "losses", "layers", "items", "generative", "model", "sampler", "evaluation",
             "training", "persist", "run"]
    assert sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__") == sorted(order)
    for name in order:
        inner = {m.split(".")[2] for m in imports[name + ".py"] if m.startswith("trainer.dual_head.")}
        assert all(order.index(m) < order.index(name) for m in inner), (name, inner)
