"""The whole pipeline on generated data of a given size: wall time and peak memory per component.

    python benchmarks/pipeline_scale.py --users 10000 --items 20000 --events 200000 [--label 20k] \\
        [--output /tmp/scale-20k] [--results docs/results] [-- <more recsys run flags, e.g. --epochs 1>]

Runs ``recsys run --dataset synthetic --users U --items I --events E --no-cache`` (plus the flags after
``--``) as a child process and, while it runs:

* reads the runner's progress lines (``[pipeline 12s] Trainer running`` / ``... finished in 40s``;
  ``tfx_pipeline.local_runner.component_progress``) as they arrive, so each component's wall time is
  the time between its two lines (the LocalDagRunner runs one component at a time, in its own process);
* samples the resident memory (RSS) of the child's whole process tree every ``--interval`` seconds
  (``psutil``), and gives each component the highest sample taken while it ran and the sample at its
  start (TensorFlow does not give memory back, so a component's peak includes what earlier ones left);
* samples the 1-minute load average (another job shares this machine's two cores).

The time before the first component (the CLI generating the data once to check it is big enough to
train) is the row ``(launcher: data check)``; after the last, ``(launcher: publish metrics)``. A failed
run is recorded too (``returncode``, the running component, the tail of stderr), and so is one stopped by
``--timeout`` (``stopped``; its running component is marked as not finished). Writes
``<results>/synthetic.scale_<label>.json`` and prints the table that docs/scale.md holds.
``--table FILE`` prints the table of a written JSON instead.

``--restart-above MB``: when a component finishes with the run's resident memory above MB, stop the run there
and resume it at once in a fresh process (the cache on, so only what is left runs). The local runner executes
every component in one process, which keeps what earlier components left (at 10M events a component started at
14.6 GB and was OOM-killed at 20.9); Kubeflow and Vertex run each component in its own container, so this is
the closer measure of a component's own memory. The restarts are runs in the JSON, like ``--resume``'s, and
``--timeout`` bounds them all together.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

import psutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_RUNNING = re.compile(r"^\[pipeline\s+\d+s\] (\S+) running$")
_FINISHED = re.compile(r"^\[pipeline\s+\d+s\] (\S+) finished in \d+s$")
_CACHED = re.compile(r"^\[pipeline\s+\d+s\]\s+cache hit")
LAUNCH, PUBLISH = "(launcher: data check)", "(launcher: publish metrics)"


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (0 when it has gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


class Timeline:
    """Components' start/end times and their memory, fed by progress lines and RSS samples (thread-safe)."""

    def __init__(self, start: float):
        self.lock = threading.Lock()
        self.rows: dict[str, dict] = {LAUNCH: {"start": start}}
        self.current = LAUNCH
        self.cached = 0

    def _open(self, name: str, now: float, rss: int) -> None:
        self.rows.pop(name, None)  # (the launcher's row between components moves to the end)
        self.rows[name] = {"start": now, "rss_start": rss, "rss_peak": rss}
        self.current = name

    def line(self, text: str, now: float, rss: int) -> None:
        with self.lock:
            m = _RUNNING.match(text)
            if m:
                if self.current == LAUNCH:
                    self.rows[LAUNCH]["end"] = now
                self.rows.pop(PUBLISH, None)  # the gap between two components is no row
                self._open(m.group(1), now, rss)
                return
            m = _FINISHED.match(text)
            if m and m.group(1) in self.rows:
                self.rows[m.group(1)]["end"] = now
                self._open(PUBLISH, now, rss)
                return
            if _CACHED.match(text):
                self.cached += 1

    def sample(self, rss: int) -> None:
        with self.lock:
            row = self.rows[self.current]
            row["rss_peak"] = max(row.get("rss_peak", 0), rss)
            row.setdefault("rss_start", rss)


def stop_tree(pid: int) -> None:
    """SIGTERM the run (``pid``, which this script started) and its descendants; SIGKILL what is left after 30 s."""
    try:
        procs = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=30)
    for p in alive:
        p.kill()


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def should_restart(line: str, rss: int, above_mb: float) -> str:
    """Why to restart after ``line`` (a component's finish with ``rss`` bytes resident above ``above_mb``), or ""."""
    m = _FINISHED.match(line)
    if not (above_mb and m and rss > above_mb * 2**20):
        return ""
    return f"restarted after {m.group(1)} finished at {rss / 2**20:,.0f} MB resident (--restart-above {above_mb:g})"


def run(args, extra: list[str]) -> dict:
    sizes = {"users": args.users, "items": args.items, "events": args.events}
    command = [sys.executable, "-m", "apps.cli", "run", "--dataset", "synthetic", "--output", args.output,
               "--users", str(args.users), "--items", str(args.items), "--events", str(args.events),
               *([] if args.resume else ["--no-cache"]), *extra]
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1",
               PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, "clients", "python", "src")]))
    t0 = time.time()
    load_before = loadavg()
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, bufsize=1)
    timeline = Timeline(t0)
    peak = {"rss": 0}
    loads: list[float] = []
    stderr_tail: list[str] = []
    log = open(args.log, "a" if args.resume else "w") if args.log else None
    restart = [""]

    def read_stdout():
        for text in proc.stdout:
            now = time.time()
            if log:
                log.write(f"{now - t0:8.1f} {text}")
                log.flush()
            print(text, end="", flush=True)
            rss = tree_rss(proc.pid)
            timeline.line(text.rstrip("\n"), now, rss)
            restart[0] = restart[0] or should_restart(text.rstrip("\n"), rss, args.restart_above)

    def read_stderr():
        for text in proc.stderr:
            stderr_tail.append(text)
            del stderr_tail[:-60]

    readers = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
    for r in readers:
        r.start()
    last_load = 0.0
    stopped = ""
    while proc.poll() is None:
        if args.timeout and time.time() - t0 > args.timeout and not stopped:
            stopped = f"stopped by --timeout {getattr(args, 'timeout_given', args.timeout):g} s while {timeline.current} ran"
            print(f"[pipeline_scale] {stopped}", flush=True)
            stop_tree(proc.pid)
        if restart[0] and not stopped:
            stopped = restart[0]
            print(f"[pipeline_scale] {stopped}", flush=True)
            stop_tree(proc.pid)
        rss = tree_rss(proc.pid)
        peak["rss"] = max(peak["rss"], rss)
        timeline.sample(rss)
        if time.time() - last_load >= 30:
            loads.append(os.getloadavg()[0])
            last_load = time.time()
        time.sleep(args.interval)
    for r in readers:
        r.join(timeout=10)
    end = time.time()
    components = []
    for name, row in timeline.rows.items():
        finished = "end" in row or (name == PUBLISH and proc.returncode == 0)
        stop = row.get("end", end)
        components.append({
            "component": name, "seconds": round(stop - row["start"], 1), "finished": finished,
            "rss_start_mb": round(row.get("rss_start", 0) / 2**20), "rss_peak_mb": round(row.get("rss_peak", 0) / 2**20)})
    return {
        "what": "recsys run on the synthetic generator (SYNTHETIC: for scale tests only, never for quality claims)",
        "label": args.label, "sizes": sizes, "command": " ".join(command[1:]), "extra_flags": extra,
        "returncode": proc.returncode, "stopped": stopped, "wall_seconds": round(end - t0, 1),
        "peak_rss_mb": round(peak["rss"] / 2**20), "cached_components": timeline.cached,
        "machine": {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                    "load_before": load_before, "load_after": loadavg(),
                    "load_1min_samples": {"n": len(loads), "mean": round(sum(loads) / len(loads), 2) if loads else None,
                                          "max": round(max(loads), 2) if loads else None}},
        "sample_interval_s": args.interval,
        "components": components,
        "stderr_tail": "".join(stderr_tail[-25:]) if proc.returncode else "",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
    }


def merge(first: dict, second: dict) -> dict:
    """``second`` (a ``--resume`` run, the cache on) completed by ``first``: each component's figures from the run
    that executed it (``first`` where it finished there; the resumed run reuses those from the cache)."""
    if first["sizes"] != second["sizes"] or first["extra_flags"] != second["extra_flags"]:
        raise ValueError("--resume needs a result of the same sizes and flags")
    runs = first.get("runs") or [_run_summary(first)]  # a chain of resumes keeps every run, numbered from 1
    done = [dict(c, run=c.get("run", 1)) for c in first["components"] if c["finished"] and c["component"] != PUBLISH]
    names = {c["component"] for c in done} | {LAUNCH}  # (the resumed run's data check repeats the first's)
    rows = done + [dict(c, run=len(runs) + 1) for c in second["components"] if c["component"] not in names]
    out = dict(second, components=rows, wall_seconds=round(first["wall_seconds"] + second["wall_seconds"], 1),
               peak_rss_mb=max(first["peak_rss_mb"], second["peak_rss_mb"]))
    out["runs"] = runs + [_run_summary(second)]
    return out


def _run_summary(r: dict) -> dict:
    return {k: r[k] for k in ("command", "returncode", "wall_seconds", "peak_rss_mb", "machine", "when",
                              "stderr_tail")} | {"stopped": r.get("stopped", "")}


def table(result: dict) -> str:
    s = result["sizes"]
    lines = [f"{s['users']:,} users / {s['items']:,} items / {s['events']:,} events "
             f"({' '.join(result['extra_flags']) or 'default flags'}): {result['wall_seconds']:,.0f} s, "
             f"peak RSS {result['peak_rss_mb']:,} MB, returncode {result['returncode']}"
             f"{' (' + result['stopped'] + ')' if result.get('stopped') else ''}, "
             f"load avg mean {result['machine']['load_1min_samples']['mean']}",
             "",
             "| component | s | RSS at start, MB | peak RSS, MB |" + (" run |" if "runs" in result else ""),
             "|---|---:|---:|---:|" + ("---:|" if "runs" in result else "")]
    for c in result["components"]:
        mark = "" if c["finished"] else " **(did not finish)**"
        lines.append(f"| {c['component']}{mark} | {c['seconds']:,.0f} | {c['rss_start_mb']:,} | {c['rss_peak_mb']:,} |"
                     + (f" {c['run']} |" if "runs" in result else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int)
    p.add_argument("--items", type=int)
    p.add_argument("--events", type=int)
    p.add_argument("--label", default="", help="the JSON's name: synthetic.scale_<label>.json (default: <items>)")
    p.add_argument("--output", default="", help="artifact root (default: /tmp/recsys-scale-<label>)")
    p.add_argument("--results", default=os.path.join(REPO, "docs", "results"))
    p.add_argument("--interval", type=float, default=1.0, help="RSS sampling period, s")
    p.add_argument("--timeout", type=float, default=0,
                   help="stop the run after this many seconds and record what finished (0: no limit)")
    p.add_argument("--log", default="", help="also write the run's stdout, timestamped, to this file")
    p.add_argument("--resume", default="",
                   help="a result JSON of the same sizes whose run stopped: run again on its --output with the cache "
                        "on (what finished is reused) and keep its finished components' figures")
    p.add_argument("--restart-above", type=float, default=0, metavar="MB",
                   help="after a component that finishes with more than MB resident, go on in a fresh process "
                        "(the cache on; 0: one process)")
    p.add_argument("--table", default="", help="print the table of this result JSON and stop")
    args = p.parse_args(argv)
    if args.table:
        with open(args.table) as f:
            print(table(json.load(f)))
        return 0
    if not (args.users and args.items and args.events):
        p.error("--users, --items and --events are required")
    args.label = args.label or f"{args.items}"
    args.output = os.path.abspath(args.output or f"/tmp/recsys-scale-{args.label}")
    os.makedirs(args.results, exist_ok=True)
    path = os.path.join(args.results, f"synthetic.scale_{args.label}.json")
    deadline = time.time() + args.timeout if args.timeout else 0
    args.timeout_given = args.timeout  # (each restart gets what is left of it)
    while True:
        result = run(args, extra)
        if args.resume:
            with open(args.resume) as f:
                result = merge(json.load(f), result)
        with open(path, "w") as f:
            json.dump(result, f, indent=1)
        if not (result["stopped"].startswith("restarted") and (not deadline or time.time() < deadline - 60)):
            break
        args.resume = path  # go on in a fresh process, the cache on
        args.timeout = deadline - time.time() if deadline else 0
    print(table(result))
    print(f"written {path}")
    return 0 if result["returncode"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
