#!/usr/bin/env python3
"""Hostile-input cost: time and peak RSS of ``dsig verify --integrity-only`` per bomb (issue 13).

Builds each bomb (each 10 MB or less on disk) in a temporary directory, verifies it in a fresh
process and prints a Markdown table: outcome (exit code, the limit that fired), wall seconds,
peak RSS of the process (``wait4`` rusage). ``dsig verify --help`` is the baseline (the
interpreter and imports). Not run by CI.

    .venv/bin/python scripts/bombs.py [--scale 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers.rawdicom import (
    DEFLATED_LE,
    EXPLICIT_LE,
    basic_dataset,
    element,
    item,
    meta,
    part10,
    sequence,
)

DSIG = [sys.executable, "-m", "dsig"]
UID = "1.2.3.13"
SEQ = 0x00400275  # Request Attributes Sequence: any SQ will do
PRIVATE_SEQ = 0x00091010


def explicit(body: bytes) -> bytes:
    return part10(meta(EXPLICIT_LE, UID), basic_dataset(UID, extra=[(SEQ, "RAW", body)]))


def deflated(body: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw = basic_dataset(UID, extra=[(SEQ, "RAW", body)])
    return part10(meta(DEFLATED_LE, UID), c.compress(raw) + c.flush())


def nested(depth: int) -> bytes:
    body = element(0x00100010, "PN", b"X ")
    for _ in range(depth):
        body = sequence(SEQ, [item(body)])
    return body


def element_flood(n: int) -> bytes:
    """``n`` empty private LO elements in one item (8 bytes each)."""
    tags = (0x00090000 | (0x1000 + k % 0xEFFF) for k in range(n))
    per_item = 0xEFFF  # distinct tags per item (duplicates are refused): many items
    items, chunk = [], []
    for k, tag in enumerate(tags):
        chunk.append(element(tag, "LO", b""))
        if len(chunk) == per_item or k == n - 1:
            items.append(item(b"".join(chunk)))
            chunk = []
    return sequence(SEQ, items)


def empty_items(n: int) -> bytes:
    return sequence(SEQ, [item(b"")] * n)


def one_element_items(n: int) -> bytes:
    return sequence(SEQ, [item(element(0x00100010, "PN", b""))] * n)


def zeros(n: int) -> bytes:
    return element(PRIVATE_SEQ, "OB", b"\0" * n)


def signature_items(n: int) -> bytes:
    signatures = sequence(0xFFFAFFFA, [item(b"")] * n)
    dataset = basic_dataset(UID, extra=[(0xFFFAFFFA, "RAW", signatures)])
    return part10(meta(EXPLICIT_LE, UID), dataset)


def bombs(scale: float) -> dict[str, Callable[[], bytes]]:
    def n(x: int) -> int:
        return max(1, int(x * scale))

    return {
        "nesting 10,000 deep": lambda: explicit(nested(n(10_000))),
        "nesting 60 deep (under the limit)": lambda: explicit(nested(60)),
        "1.2 M empty elements (10 MB)": lambda: explicit(element_flood(n(1_200_000))),
        "200 k empty elements (1.6 MB)": lambda: explicit(element_flood(n(200_000))),
        "1 M empty items, deflated (12 KB)": lambda: deflated(empty_items(n(1_000_000))),
        "1 M empty items (8 MB)": lambda: explicit(empty_items(n(1_000_000))),
        "600 k one-element items (9.6 MB)": lambda: explicit(one_element_items(n(600_000))),
        "deflate bomb: 1 GiB of zeros (1 MB)": lambda: deflated(zeros(n(1 << 30))),
        "deflate bomb: 200 MiB of zeros": lambda: deflated(zeros(n(200 << 20))),
        "10,000 empty signature items": lambda: signature_items(n(10_000)),
    }  # fmt: skip


#: Runs the command and reports its exit code and peak RSS. A child forked from this process
#: would inherit its high-water mark (the bomb was built here) as its own ru_maxrss; a child
#: of this fresh, small launcher starts from the launcher's.
_LAUNCH = """
import json, os, subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
out = p.stdout.read().decode(errors="replace") if p.stdout else ""
_, status, usage = os.wait4(p.pid, 0)
print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "kib": usage.ru_maxrss, "out": out}))
"""


def measure(cmd: list[str]) -> tuple[int, float, float, str]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _LAUNCH, *cmd], capture_output=True, text=True,
                          cwd=REPO, check=True)  # fmt: skip
    seconds = time.monotonic() - start  # the launcher's start-up (~20 ms) included
    run = json.loads(proc.stdout)
    return int(run["rc"]), seconds, run["kib"] / 1024, str(run["out"]).strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="shrink the bombs (to try the script)")
    args = ap.parse_args()
    rows: list[tuple[str, str, int, float, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="dsig-bombs-") as tmp:
        code, s, rss, _ = measure([*DSIG, "verify", "--help"])
        rows.append(("baseline: dsig verify --help", "-", code, s, rss, ""))
        for name, make in bombs(args.scale).items():
            path = Path(tmp) / "bomb.dcm"
            path.write_bytes(make())
            size = f"{path.stat().st_size:,}"
            code, s, rss, text = measure([*DSIG, "verify", str(path), "--integrity-only"])
            limit = next((w.strip("()") for w in text.split() if "ParseLimits." in w), "")
            rows.append((name, size, code, s, rss, limit))
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"{os.cpu_count()} cores\n")  # fmt: skip
    print("| bomb | bytes | exit | wall | peak RSS | limit that fired |")
    print("|---|---:|---:|---:|---:|---|")
    for name, size, exit_code, s, rss, limit in rows:
        print(f"| {name} | {size} | {exit_code} | {s:.2f} s | {rss:.0f} MiB | {limit or '-'} |")
    print("\nCommand: `.venv/bin/python scripts/bombs.py`")


if __name__ == "__main__":
    main()
