#!/usr/bin/env python3
"""Cold starts of two dsig checkouts and a bare interpreter, run alternately (issue 18).

On a shared machine the load changes between two benchmark runs; alternating the processes
round by round gives both builds the same load. Medians of wall time and of CPU time (user +
system, from ``wait4``, in microseconds) over ``--rounds`` rounds, after one warm-up round:

    .venv/bin/python scripts/cold_pair.py --before ../wt-main FILE
    .venv/bin/python scripts/cold_pair.py --before ../wt-main --rounds 9 FILE -- --trust-store R

Each checkout runs ``python -m dsig verify [--integrity-only | ARGS] FILE`` from its own root
(compile both first: ``python -m compileall -q dsig pki tokens``); this script's own options
come before FILE.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _one(cmd: list[str], cwd: Path | None) -> tuple[float, float]:
    """Wall and CPU seconds of one process, output discarded."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1, 3):  # a usage or operational error would time something else
        raise SystemExit(f"exit {code}: {' '.join(cmd)}")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True, help="the other checkout's root")
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("file", help="the DICOM file to verify")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="-- verify options (default "
                    "--integrity-only)")  # fmt: skip
    opts = ap.parse_args()
    given = [a for a in opts.args if a != "--"]
    verify = [sys.executable, "-m", "dsig", "verify", *(given or ["--integrity-only"])]
    runs: dict[str, tuple[list[str], Path | None]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], None),
        "before": ([*verify, opts.file], opts.before.resolve()),
        "this checkout": ([*verify, opts.file], REPO),
    }
    walls: dict[str, list[float]] = {name: [] for name in runs}
    cpus: dict[str, list[float]] = {name: [] for name in runs}
    for n in range(opts.rounds + 1):
        for name, (cmd, cwd) in runs.items():
            wall, cpu = _one(cmd, cwd)
            if n:  # round 0 warms the page cache
                walls[name].append(wall)
                cpus[name].append(cpu)
    bare_wall = statistics.median(walls["python -c pass"])
    bare_cpu = statistics.median(cpus["python -c pass"])
    for name in runs:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(f"{name:15s} wall {wall * 1000:6.1f} ms ({wall / bare_wall:5.2f}x)  "
              f"cpu {cpu * 1000:6.1f} ms ({cpu / bare_cpu:5.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
