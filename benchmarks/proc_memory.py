"""This process's resident memory from ``/proc/self/status`` (Linux), for benchmarks that measure a step's peak."""
from __future__ import annotations


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
