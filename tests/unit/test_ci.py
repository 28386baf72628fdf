"""CI runs the static checks, not only the tests: ``.ci/run`` is the README's test command,
which runs ruff (lint and format check) and mypy --strict over the packages, the tests and the
scripts before pytest, and stops at the first failure."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = "dsig pki tokens tests scripts"


def _commands(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_ci_runs_the_readme_test_command() -> None:
    assert "bash scripts/test.sh" in _commands(ROOT / ".ci" / "run")
    assert "`.ci/run` runs `scripts/test.sh`" in (ROOT / "README.md").read_text()


def test_the_test_command_checks_before_it_tests() -> None:
    commands = _commands(ROOT / "scripts" / "test.sh")
    assert "set -euo pipefail" in commands  # a failing check stops the run
    wanted = [
        f".venv/bin/ruff check {CHECKED}",
        f".venv/bin/ruff format --check {CHECKED}",
        ".venv/bin/mypy",
    ]
    found = [commands.index(c) for c in wanted]
    tests = next(i for i, c in enumerate(commands) if re.search(r"-m pytest\b", c))
    assert found == sorted(found) and found[-1] < tests


def test_mypy_is_strict_over_packages_and_tests() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    assert set(config["files"]) >= set(CHECKED.split())
