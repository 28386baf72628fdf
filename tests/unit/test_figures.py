"""The figures of docs/how-it-works.md are current: regenerated from the real sample file by
scripts/make_figures.py into a temp dir, they equal the committed ones byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "docs" / "figures"


def test_committed_figures_are_current(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_figures.py"), "--out", str(tmp_path)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    fresh = sorted(p.name for p in tmp_path.glob("*.svg"))
    assert fresh == sorted(p.name for p in FIGURES.glob("*.svg")), "run scripts/make_figures.py"
    for name in fresh:
        assert (tmp_path / name).read_bytes() == (FIGURES / name).read_bytes(), (
            f"docs/figures/{name} is stale: run .venv/bin/python scripts/make_figures.py"
        )
    doc = (ROOT / "docs" / "how-it-works.md").read_text()
    for name in fresh:
        assert f"figures/{name}" in doc, f"{name} is not shown in docs/how-it-works.md"
