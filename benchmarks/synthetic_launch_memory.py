"""Peak memory of what `recsys run --dataset synthetic` does before training: the launcher's pre-flight check
and SequenceExampleGen, each in a fresh process, in this checkout or another one (the code before a change).

    TF_USE_LEGACY_KERAS=1 python benchmarks/synthetic_launch_memory.py --users 50000 --items 100000 \\
        --events 1000000 [--repo /path/to/other/checkout] [--output docs/results/x.json]

Each phase runs in its own child process (``--repo``'s code, the interpreter of this one):

* ``check``: ``apps.cli._too_small("synthetic", "", sizes, 0)``, what ``recsys run`` calls before the pipeline;
* ``example_gen``: ``SequenceExampleGen``'s executor (as TFX's launcher calls it) on the pipeline's default
  Beam arguments (in-memory FnApiRunner, one worker: the whole Beam pipeline runs in the child process), into a
  temporary directory.

A child reports its resident memory after its imports (``VmRSS``), its peak (``ru_maxrss``: the whole run,
Beam included) and the phase's seconds; the phase's own cost is peak minus before. The children run one after
the other (the machine's load average before and after is recorded: the seconds stretch with it, the memory
does not). Prints one line per phase and writes ``--output`` (JSON) when given.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CHILD = r"""
import json, os, resource, sys, tempfile, time
sys.path.insert(0, os.getcwd())
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
phase, options = sys.argv[1], json.loads(sys.argv[2])
from apps import cli
from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
from tfx.types import standard_artifacts
from tfx_pipeline.components.example_gen import SequenceExampleGen
from tfx_pipeline.pipeline import DEFAULT_BEAM_ARGS, with_setup_file
import recsys.data  # noqa: F401  (pandas and the adapters imported before the baseline)


def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


before = rss_mb()
start = time.time()
if phase == "check":
    answer = cli._too_small("synthetic", "", options, 0)
else:
    examples = standard_artifacts.Examples()
    examples.uri = tempfile.mkdtemp(prefix="synthetic_launch_memory_")
    context = BaseBeamExecutor.Context(beam_pipeline_args=with_setup_file(DEFAULT_BEAM_ARGS))
    SequenceExampleGen.EXECUTOR_SPEC.executor_class(context).Do(
        {}, {"examples": [examples]}, {"dataset": "synthetic", "options_json": json.dumps(options),
                                       "max_history": 50, "max_users": 0, "data_path": "", "fingerprint": "",
                                       "code_version": 1})
    with open(os.path.join(examples.uri, "load_report.txt")) as f:
        answer = f.read().splitlines()[0]
    import shutil
    shutil.rmtree(examples.uri)
seconds = time.time() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps({"phase": phase, "rss_before_mb": round(before), "peak_rss_mb": round(peak),
                              "peak_minus_before_mb": round(peak - before), "seconds": round(seconds, 1),
                              "answer": answer}))
"""


def run_phase(repo: str, phase: str, options: dict) -> dict:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONPATH": repo}
    proc = subprocess.run([sys.executable, "-c", _CHILD, phase, json.dumps(options)], cwd=repo, env=env,
                          capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{phase} in {repo} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repo", default=REPO, help="the checkout whose code runs (default: this one)")
    parser.add_argument("--phases", default="check,example_gen")
    parser.add_argument("--output", default="")
    args = parser.parse_args(argv)
    options = {"n_users": args.users, "n_items": args.items, "n_events": args.events, "seed": args.seed}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.repo, capture_output=True,
                            text=True).stdout.strip()
    out = {"command": " ".join(["python", "benchmarks/synthetic_launch_memory.py"] + (argv or sys.argv[1:])),
           "repo": args.repo, "commit": commit, "options": options, "phases": []}
    for phase in args.phases.split(","):
        load_before = os.getloadavg()[0]
        row = run_phase(args.repo, phase, options)
        row["load_avg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        out["phases"].append(row)
        print(f"[synthetic_launch_memory] {commit} {phase}: peak RSS {row['peak_rss_mb']:,} MB "
              f"({row['peak_minus_before_mb']:+,} MB over the {row['rss_before_mb']:,} MB after imports), "
              f"{row['seconds']} s at load {row['load_avg_1min']}: {row['answer'] or 'trains'}", flush=True)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(out, f, indent=1)
        print(f"[synthetic_launch_memory] wrote {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
