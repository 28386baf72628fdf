"""The --jsonl FILE journal: torn last line, previous summary, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dsig.archive.journal import Journal, JournalError


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def test_resume_drops_torn_line_and_summary_then_appends(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    a = {"path": "a.dcm", "indication": "VALID"}
    b = {"path": "b.txt", "indication": "SKIPPED", "reason": "not a DICOM file"}
    path.write_bytes(_line(a) + _line(b) + _line({"summary": {"files": 1}}) + b'{"path": "c')
    seen: list[dict[str, Any]] = []
    journal, done = Journal.resume(path, seen.append)
    assert len(done) == 2 and "a.dcm" in done and "b.txt" in done and "c" not in done
    assert seen == [a, b]
    journal.write({"path": "c.dcm", "indication": "INVALID"})
    journal.close()
    lines = path.read_text().splitlines()
    assert [json.loads(x)["path"] for x in lines] == ["a.dcm", "b.txt", "c.dcm"]


def test_resume_creates_a_missing_journal(tmp_path: Path) -> None:
    journal, done = Journal.resume(tmp_path / "new.jsonl", lambda r: None)
    journal.close()
    assert len(done) == 0 and (tmp_path / "new.jsonl").read_bytes() == b""


def test_resume_refuses_a_file_that_is_not_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello\nworld\n")
    with pytest.raises(JournalError, match="line 1 is not JSON"):
        Journal.resume(path, lambda r: None)
    assert path.read_bytes() == b"hello\nworld\n"  # untouched


def test_create_never_replaces_a_dicom_file(tmp_path: Path) -> None:
    path = tmp_path / "a.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + b"rest")
    with pytest.raises(JournalError, match="is a DICOM file"):
        Journal.create(path)
    assert path.read_bytes().endswith(b"DICMrest")
