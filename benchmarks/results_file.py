"""Where a benchmark writes its JSON: ``--results`` if given, else ``docs/results/<dataset>.<name>.json``."""
from __future__ import annotations

import json
import os

RESULTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "results")


def write_results(out: dict, path: str, dataset: str, name: str, tag: str) -> str:
    """Writes ``out`` to ``path`` (or the default ``docs/results/<dataset>.<name>.json``), prints it, returns it."""
    path = path or os.path.join(RESULTS_DIR, f"{dataset}.{name}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"[{tag}] wrote {path}", flush=True)
    return path
