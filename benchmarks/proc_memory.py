"""Benchmarks that measure in fresh processes: this process's resident memory from ``/proc/self/status``
(Linux), and a child's measurements read back as the JSON line it prints last."""
from __future__ import annotations

import json
import os
import subprocess
import sys


def status_mb(key: str) -> float:
    """``/proc/self/status`` ``key`` (VmRSS: resident now; VmHWM: the peak since start or ``reset_peak``) in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def reset_peak() -> None:
    """Resets VmHWM to the current resident memory."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child_json(cmd: list[str], label: str) -> dict:
    """Runs ``cmd`` (with ``TF_USE_LEGACY_KERAS=1``) and returns the JSON object on its last stdout line; on a
    non-zero exit, writes the tail of its stderr and stops with ``label`` in the message."""
    run = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TF_USE_LEGACY_KERAS="1"))
    if run.returncode != 0:
        sys.stderr.write(run.stderr[-4000:])
        raise SystemExit(f"[{label}] failed with return code {run.returncode}")
    return json.loads(run.stdout.strip().splitlines()[-1])
