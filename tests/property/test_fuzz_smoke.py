"""A short run of ``scripts/fuzz.py`` (the long run is by hand): the harness still builds its
seeds, drives the structured mutations (issue 13's encoding, UN, certificate and token bags
among them) through its three oracles, and reports a clean summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_fuzz_script_smoke(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, "scripts/fuzz.py", "--engine", "hypothesis", "--examples", "40",
         "--summary", summary, "--regressions", tmp_path / "found"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(summary.read_text())
    assert report["engine"] == "hypothesis" and report["inputs"] == 40, report
    assert (report["crashes"], report["false_valid"], report["slow"]) == (0, 0, 0), report
    assert not (tmp_path / "found").exists()
