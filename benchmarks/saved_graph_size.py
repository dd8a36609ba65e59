"""How much of each served SavedModel is graph (``saved_model.pb``, capped at 2 GB by protocol buffers) and which
constants make it up.

    python benchmarks/saved_graph_size.py --serving artifacts-instacart/serving \
        [--output docs/results/instacart.saved_graph_size.json] [--top 3]

For the newest version of every model under ``--serving`` (the pipeline's push directory): the bytes of
``saved_model.pb`` and of ``variables/``, the bytes held in graph constants, and the largest constants with their
shapes. A constant whose first dimension is the catalogue's or the stored users' count grows with them: at a
million items such a table has to live in ``variables/`` (``trainer.base.frozen_table``), as the tests in
``tests/export`` check for every exporter (``pb_growth``).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tensorflow.core.framework import types_pb2  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402


def _const_bytes(tensor) -> int:
    return (len(tensor.tensor_content) + sum(len(s) for s in tensor.string_val) + 4 * len(tensor.float_val)
            + 8 * len(tensor.int64_val) + 4 * len(tensor.int_val) + 8 * len(tensor.double_val))


def graph_constants(pb_path: str) -> list[dict]:
    """Every ``Const`` node of the SavedModel's graph and function library: bytes, shape, dtype, largest first."""
    sm = saved_model_pb2.SavedModel()
    with open(pb_path, "rb") as f:
        sm.ParseFromString(f.read())
    found = []
    for mg in sm.meta_graphs:
        nodes = list(mg.graph_def.node) + [n for fn in mg.graph_def.library.function for n in fn.node_def]
        for node in nodes:
            if node.op == "Const":
                t = node.attr["value"].tensor
                found.append({"bytes": _const_bytes(t), "shape": [d.size for d in t.tensor_shape.dim],
                              "dtype": types_pb2.DataType.Name(t.dtype)})
    return sorted(found, key=lambda c: -c["bytes"])


def _dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def measure(serving_dir: str, top: int = 3) -> dict:
    out = {}
    for name in sorted(os.listdir(serving_dir)):
        if not os.path.isdir(os.path.join(serving_dir, name)):
            continue
        versions = sorted((v for v in os.listdir(os.path.join(serving_dir, name)) if v.isdigit()), key=int)
        if not versions:
            continue
        path = os.path.join(serving_dir, name, versions[-1])
        pb = os.path.join(path, "saved_model.pb")
        consts = graph_constants(pb)
        out[name] = {"version": versions[-1], "saved_model_pb_bytes": os.path.getsize(pb),
                     "variables_bytes": _dir_bytes(os.path.join(path, "variables")),
                     "constant_bytes": sum(c["bytes"] for c in consts), "largest_constants": consts[:top]}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serving", required=True, help="the pipeline's serving (push) directory")
    p.add_argument("--output", default="", help="JSON to write (default: print only)")
    p.add_argument("--top", type=int, default=3, help="largest constants listed per model")
    args = p.parse_args(argv)
    models = measure(args.serving, args.top)
    print(f"{'model':32} {'pb MB':>8} {'variables MB':>13} {'constants MB':>13}  largest constant")
    for name, m in models.items():
        big = m["largest_constants"][0] if m["largest_constants"] else {"shape": [], "dtype": "", "bytes": 0}
        print(f"{name:32} {m['saved_model_pb_bytes'] / 1e6:8.2f} {m['variables_bytes'] / 1e6:13.2f} "
              f"{m['constant_bytes'] / 1e6:13.2f}  {big['dtype']} {big['shape']} ({big['bytes'] / 1e6:.2f} MB)")
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"command": "python benchmarks/saved_graph_size.py " + shlex.join(sys.argv[1:] if argv is None
                                                                                       else argv),
                       "serving": args.serving, "models": models}, f, indent=1)
        print("wrote", args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
