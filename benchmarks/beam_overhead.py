"""What each TFX Beam executor pays before its first element: the old local Beam arguments against ours.

    python benchmarks/beam_overhead.py [--runs 5] [--output docs/results/beam_overhead.json]

A TFX Beam executor (``BaseBeamExecutor``) runs a two-element pipeline, ``--runs`` times with each set of
arguments, alternating, in this process:

* ``before``: ``--direct_running_mode=in_memory --direct_num_workers=1`` (this repository's default until
  this benchmark): TFX builds an sdist of itself (``make_beam_dependency_flags``: no dependency flag was
  given) and Beam 2.74's DirectRunner first tries Prism, a binary it would download from GitHub;
* ``after``: ``tfx_pipeline.pipeline.with_setup_file(DEFAULT_BEAM_ARGS)``, what ``recsys run`` passes:
  ``--runner=FnApiRunner`` and ``--setup_file=<repo>/setup.py``.

Prints seconds per executor run, the ratio, and the bytes each left in the temporary directory (a
private one, removed at the end). The pipeline runs 9 Beam executors per ``recsys run``.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BEFORE = ("--direct_running_mode=in_memory", "--direct_num_workers=1")

from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor  # noqa: E402


class _Executor(BaseBeamExecutor):
    """A TFX Beam executor whose pipeline is built by TFX's own ``_make_beam_pipeline``."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX's name)
        raise NotImplementedError


def _tree_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def one_run(beam_args: list[str]) -> float:
    import apache_beam as beam

    start = time.perf_counter()
    executor = _Executor(BaseBeamExecutor.Context(beam_pipeline_args=list(beam_args)))
    with executor._make_beam_pipeline() as p:  # what every TFX Beam executor's Do starts with
        _ = p | beam.Create([1, 2]) | beam.Map(lambda x: x + 1)
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="executor runs per set of arguments (default: %(default)s)")
    p.add_argument("--output", default="docs/results/beam_overhead.json")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be >= 1")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from tfx_pipeline.pipeline import DEFAULT_BEAM_ARGS, with_setup_file

    variants = {"before": list(BEFORE), "after": with_setup_file(DEFAULT_BEAM_ARGS)}
    seconds = {name: [] for name in variants}
    left = {name: 0 for name in variants}
    root = tempfile.mkdtemp(prefix="beam-overhead-")
    try:
        for i in range(args.runs + 1):      # run 0 of each warms imports and is not counted
            for name, beam_args in variants.items():
                tmp = os.path.join(root, f"{name}-{i}")
                os.makedirs(tmp)
                saved, tempfile.tempdir = tempfile.tempdir, tmp
                try:
                    took = one_run(beam_args)
                finally:
                    tempfile.tempdir = saved
                if i:
                    seconds[name].append(took)
                    left[name] += _tree_bytes(tmp)
                print(f"[beam-overhead] {name} run {i}: {took:.2f}s, left {_tree_bytes(tmp) / 1e6:.1f} MB"
                      f"{' (warm-up, not counted)' if not i else ''}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = {name: {"args": " ".join(variants[name]), "median_s": round(statistics.median(s), 3),
                   "mean_s": round(statistics.mean(s), 3), "temp_MB_per_run": round(left[name] / args.runs / 1e6, 1)}
            for name, s in seconds.items()}
    ratio = round(rows["before"]["median_s"] / rows["after"]["median_s"], 1)
    print(f"[beam-overhead] per executor: before {rows['before']['median_s']:.2f}s, after "
          f"{rows['after']['median_s']:.2f}s ({ratio}x); temp left per run: {rows['before']['temp_MB_per_run']} MB "
          f"vs {rows['after']['temp_MB_per_run']} MB", flush=True)
    out = {"command": "python benchmarks/beam_overhead.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "runs": args.runs, "results": rows, "before_over_after": ratio,
           "load_average": round(os.getloadavg()[0], 2)}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(out, f, indent=1)
    print(f"[beam-overhead] wrote {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
