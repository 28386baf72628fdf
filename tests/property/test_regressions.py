"""Every input that once crashed the verifier (found by ``scripts/fuzz.py``) stays fixed.

``tests/data/regression/crash-*.dcm`` must verify to a report (no exception); the ``.txt``
beside each file keeps the original traceback. ``falsevalid-*.dcm`` files (a changed covered
byte that verified VALID) must never verify VALID again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dsig.cli import app
from dsig.operations.verifier import INTERNAL_ERROR, VerifyOptions, verify_file
from dsig.results import Indication

REGRESSIONS = Path(__file__).resolve().parents[1] / "data" / "regression"
CRASHES = sorted(REGRESSIONS.glob("crash-*.dcm"))
FALSE_VALID = sorted(REGRESSIONS.glob("falsevalid-*.dcm"))


def test_regression_corpus_is_present() -> None:
    assert CRASHES, "the fuzz regression corpus is missing"
    for path in CRASHES:
        assert path.with_suffix(".txt").exists(), f"{path.name} lacks its traceback note"


@pytest.mark.parametrize("path", CRASHES, ids=lambda p: p.stem)
def test_former_crash_now_reports(path: Path) -> None:
    result = verify_file(path, VerifyOptions(integrity_only=True))
    assert not (result.error or "").startswith(INTERNAL_ERROR), result.error
    r = CliRunner().invoke(app, ["verify", str(path), "--integrity-only"])
    assert r.exit_code in (0, 1, 3, 4) and "internal error" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_former_false_valids_are_not_valid() -> None:
    for path in FALSE_VALID:
        result = verify_file(path, VerifyOptions(integrity_only=True))
        assert any(s.integrity is not Indication.VALID for s in result.signatures), path.name


def test_former_slow_inputs_are_quick() -> None:
    """Inputs the fuzzer found slow (``slow-*.dcm``) verify within its bound now."""
    from time import monotonic

    for path in sorted(REGRESSIONS.glob("slow-*.dcm")):
        started = monotonic()
        verify_file(path, VerifyOptions(integrity_only=True))
        assert monotonic() - started < 5.0, path.name
