"""The ``--jsonl FILE`` journal of an audit, and ``--resume`` from it.

One JSON object per verified (or skipped) file, written with a single ``write`` and no user
space buffering, so a run killed at any moment (SIGKILL included) leaves every finished line
in the file and at most one torn last line. Resuming reads the records back, drops the torn
line and the previous summary (the file is truncated after the last record) and appends the
files not yet recorded; the summary written at the end counts the whole audit.

The journal is written in place, not through a temp file and a rename: a journal that only
appeared at the end could not be resumed.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from dsig.errors import DsigError
from dsig.operations.batch import NOT_DICOM, Outcome
from tokens.faults import BadEnvironmentError

if TYPE_CHECKING:
    from dsig.archive.done import DoneIndex


class JournalError(DsigError, BadEnvironmentError):
    """A journal that cannot be read, resumed or written."""


def is_file_record(obj: object) -> bool:
    """A per-file line (``path`` and ``indication``), not the summary."""
    return isinstance(obj, dict) and "path" in obj and "indication" in obj


class Journal:
    """An open journal: :meth:`write` appends one line and hands it to the kernel at once."""

    def __init__(self, path: Path, fp: BinaryIO) -> None:
        self.path = path
        self._fp = fp

    @classmethod
    def create(cls, path: Path) -> Journal:
        """A new (or, once the caller allowed it, replaced) journal. Never replaces a DICOM
        file, even with --force (``--jsonl a.dcm b.dcm`` names a.dcm as the journal)."""
        with contextlib.suppress(OSError), open(path, "rb") as existing:
            if existing.read(132)[128:] == b"DICM":
                raise JournalError(f"journal {path} is a DICOM file: refusing to replace it")
        try:
            return cls(path, open(path, "wb", buffering=0))  # closed by close()
        except OSError as e:
            raise JournalError(f"cannot write journal {path}: {e.strerror or e}") from None

    @classmethod
    def resume(
        cls, path: Path, on_record: Callable[[dict[str, Any]], None]
    ) -> tuple[Journal, DoneIndex]:
        """Reopen ``path`` (created when missing): ``on_record`` gets every recorded file, the
        paths recorded are returned (an on-disk index), and the file is cut after the last
        complete record."""
        try:
            fp = open(path, "a+b", buffering=0)  # closed by close()
        except OSError as e:
            raise JournalError(f"cannot open journal {path}: {e.strerror or e}") from None
        try:
            done = _replay(fp, path, on_record)
        except BaseException:
            fp.close()
            raise
        return cls(path, fp), done

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        try:
            self._fp.write(json.dumps(record).encode("utf-8") + b"\n")
        except OSError as e:
            raise JournalError(f"cannot write journal {self.path}: {e.strerror or e}") from None

    def close(self) -> None:
        """Flush to disk and close."""
        try:
            os.fsync(self._fp.fileno())
        except OSError as e:
            raise JournalError(f"cannot write journal {self.path}: {e.strerror or e}") from None
        finally:
            self._fp.close()

    def close_quietly(self) -> None:
        """Close after a failure (the failure is what gets reported)."""
        with contextlib.suppress(OSError):
            self._fp.close()


def _replay(fp: BinaryIO, path: Path, on_record: Callable[[dict[str, Any]], None]) -> DoneIndex:
    from dsig.archive.done import DoneIndex  # sqlite3: loaded by a resume only

    done = DoneIndex()
    offset = keep = 0
    fp.seek(0)
    for number, line in enumerate(iter(fp.readline, b""), 1):
        offset += len(line)
        if not line.endswith(b"\n"):
            break  # the torn last line of a killed run: redone
        try:
            obj = json.loads(line)
        except ValueError:
            raise JournalError(
                f"journal {path}: line {number} is not JSON (not a dsig JSON-lines journal, "
                "or damaged): refusing to resume"
            ) from None
        if is_file_record(obj):
            done.add(str(obj["path"]))
            on_record(obj)
            keep = offset
        elif not (isinstance(obj, dict) and "summary" in obj):
            raise JournalError(f"journal {path}: line {number} is not a dsig record")
    try:
        fp.truncate(keep)
    except OSError as e:
        raise JournalError(f"cannot resume journal {path}: {e.strerror or e}") from None
    return done


def record_of(outcome: Outcome) -> dict[str, Any]:
    """The JSONL line of an outcome (a skipped file says why)."""
    from dsig.operations.verify_json import json_file_object, jsonl_file_line, jsonl_skipped_line
    from dsig.results import FileResult

    if outcome.skipped is not None:
        return jsonl_skipped_line(outcome.path, outcome.skipped)
    record = outcome.result or json_file_object(FileResult(outcome.path, error="no result"))
    return jsonl_file_line(record)


def outcome_of_record(record: dict[str, Any]) -> Outcome:
    """The outcome a JSONL line records (for the tally and report of a resumed run)."""
    path = str(record["path"])
    if record.get("indication") == "SKIPPED":
        return Outcome(path, skipped=str(record.get("reason") or NOT_DICOM))
    return Outcome(path, result=record)
