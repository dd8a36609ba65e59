"""A/B experiments for the multi-stage client: arm assignment, an event log, and the CTR report.

* :class:`Experiment` assigns a user to an arm deterministically: ``h = SHA-256(salt ":" user_id)``,
  ``x = first 8 bytes of h as an unsigned integer / 2**64`` in [0, 1), and the arm is the first whose
  cumulative split exceeds ``x``. The same user always lands in the same arm for one salt; a new
  salt reshuffles everyone independently of the old assignment.
* :class:`EventLog` appends one JSON object per line (exposures and responses) to a file rotated at
  ``max_bytes`` (``path.1`` … ``path.<backups>``, the standard library's ``RotatingFileHandler``).
* :func:`ab_report` reads those files back: per arm, exposures, clicks (a click counts once per
  exposure it answers: same request and item), CTR with a Wilson 95% interval, and the difference
  to the first arm with a normal-approximation (Wald) 95% interval.
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import logging.handlers
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Mapping

EXPOSURE, CLICK, PURCHASE = "exposure", "click", "purchase"
EVENT_TYPES = (EXPOSURE, CLICK, PURCHASE)
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Experiment:
    """``splits``: arm -> share, shares > 0 summing to 1 (in the order given)."""

    name: str
    salt: str
    splits: Mapping[str, float]

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"experiment name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.salt, str) or not self.salt:
            raise ValueError(f"experiment salt must be a non-empty string, got {self.salt!r}")
        if not self.splits:
            raise ValueError("an experiment needs at least one arm")
        for arm, share in self.splits.items():
            if not isinstance(arm, str) or not arm:
                raise ValueError(f"arm names must be non-empty strings, got {arm!r}")
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
                raise ValueError(f"arm {arm!r}: share must be in (0, 1], got {share!r}")
        if abs(sum(self.splits.values()) - 1.0) > 1e-9:
            raise ValueError(f"arm shares must sum to 1, got {sum(self.splits.values())} ({dict(self.splits)})")

    def bucket(self, user_id: str) -> float:
        digest = hashlib.sha256(f"{self.salt}:{user_id}".encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    def assign(self, user_id: str) -> str:
        x, total = self.bucket(user_id), 0.0
        arms = list(self.splits)
        for arm in arms:
            total += self.splits[arm]
            if x < total:
                return arm
        return arms[-1]  # float rounding at the very top


class EventLog:
    """Thread-safe JSONL appender with size-based rotation."""

    def __init__(self, path: str, max_bytes: int = 50 * 2**20, backups: int = 10):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1024:
            raise ValueError(f"max_bytes must be an int >= 1024, got {max_bytes!r}")
        if isinstance(backups, bool) or not isinstance(backups, int) or backups < 1:
            raise ValueError(f"backups must be an int >= 1, got {backups!r}")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self._handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups,
                                                             encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._lock = threading.Lock()

    def append(self, events: Iterable[Mapping]) -> int:
        n = 0
        with self._lock:
            for event in events:
                record = logging.LogRecord("recsys.events", logging.INFO, "", 0,
                                           json.dumps(dict(event), ensure_ascii=False, sort_keys=True), None, None)
                self._handler.emit(record)
                n += 1
            self._handler.flush()
        return n

    def close(self) -> None:
        self._handler.close()


def event(kind: str, *, request_id: str, user_id: str, item_id: str, experiment: str | None, arm: str | None,
          position: int | None = None, ts: float | None = None) -> dict:
    if kind not in EVENT_TYPES:
        raise ValueError(f"event type must be one of {EVENT_TYPES}, got {kind!r}")
    return {"type": kind, "ts": round(time.time() if ts is None else ts, 3), "request_id": request_id,
            "user_id": user_id, "item_id": item_id, "experiment": experiment, "arm": arm, "position": position}


@dataclass(frozen=True)
class ArmReport:
    arm: str
    exposures: int
    clicks: int
    ctr: float
    ci_low: float
    ci_high: float
    diff: float | None = None       # CTR − the first arm's CTR
    diff_low: float | None = None
    diff_high: float | None = None


def wilson(clicks: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson, 1927); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = clicks / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


class BadEventLog(ValueError):
    pass


def log_files(path: str) -> list[str]:
    """``path`` and its rotated backups, oldest first."""
    backups = sorted(glob.glob(glob.escape(path) + ".*"),
                     key=lambda p: int(p.rsplit(".", 1)[1]) if p.rsplit(".", 1)[1].isdigit() else -1, reverse=True)
    files = [p for p in backups if p.rsplit(".", 1)[1].isdigit()] + ([path] if os.path.exists(path) else [])
    if not files:
        raise FileNotFoundError(f"no event log at {path} (nor rotated backups {path}.1 ...)")
    return files


def ab_report(path: str, experiment: str | None = None) -> list[ArmReport]:
    """CTR per arm from the log at ``path`` (with its rotated backups); malformed lines raise
    :class:`BadEventLog` naming the file and line."""
    exposed: dict[tuple[str, str], str] = {}  # (request, item) -> arm
    clicked: set[tuple[str, str]] = set()
    order: list[str] = []
    for file in log_files(path):
        with open(file, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    e = json.loads(line)
                    kind, key, arm = e["type"], (str(e["request_id"]), str(e["item_id"])), e.get("arm")
                except (ValueError, KeyError, TypeError) as err:
                    raise BadEventLog(f"{file}:{number}: not an event ({err}): {line[:120]!r}") from None
                if experiment is not None and e.get("experiment") != experiment:
                    continue
                if kind == EXPOSURE and arm is not None:
                    exposed[key] = arm
                    if arm not in order:
                        order.append(arm)
                elif kind in (CLICK, PURCHASE):
                    clicked.add(key)
    reports = []
    for arm in order:
        keys = [k for k, a in exposed.items() if a == arm]
        n, c = len(keys), sum(k in clicked for k in keys)
        reports.append(ArmReport(arm, n, c, c / n if n else 0.0, *wilson(c, n)))
    if len(reports) > 1:
        base = reports[0]
        out = [base]
        for r in reports[1:]:
            se = math.sqrt(base.ctr * (1 - base.ctr) / max(base.exposures, 1) + r.ctr * (1 - r.ctr) / max(r.exposures, 1))
            d = r.ctr - base.ctr
            out.append(ArmReport(r.arm, r.exposures, r.clicks, r.ctr, r.ci_low, r.ci_high, d, d - Z95 * se, d + Z95 * se))
        reports = out
    return reports


def format_report(reports: list[ArmReport]) -> str:
    lines = [f"{'arm':<16} {'exposures':>9} {'clicks':>7} {'CTR':>7}  {'95% CI (Wilson)':<17}  diff vs first (95% CI)"]
    for r in reports:
        diff = "" if r.diff is None else f"{r.diff:+.4f} [{r.diff_low:+.4f}, {r.diff_high:+.4f}]"
        lines.append(f"{r.arm:<16} {r.exposures:>9} {r.clicks:>7} {r.ctr:>7.4f}  [{r.ci_low:.4f}, {r.ci_high:.4f}]  {diff}")
    return "\n".join(lines)
