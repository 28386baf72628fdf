"""The storage node's audit log: one JSON object per line, each chained to the line before.

Every line carries ``"prev"``, the SHA-256 (hex) of the previous line's bytes (without its
newline; 64 zeros for the first line). Removing or editing a line breaks the chain at the
next line, which :func:`check_audit_log` (``dsig serve audit-check LOG``) reports by number.
What the chain cannot show on its own: the *last* lines cut off, or the whole log rewritten;
keep the hash :func:`check_audit_log` prints (or a copy of the log) elsewhere for that.

A line is written with one ``write`` and fsync'ed before :meth:`AuditLog.append` returns; a
write that fails (disk full) is truncated away, so the log never ends with a partial line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsig.errors import DsigError
from tokens.faults import BadEnvironmentError

#: ``prev`` of the first line.
GENESIS = "0" * 64
_TAIL_CHUNK = 65536


class AuditLogError(DsigError, BadEnvironmentError):
    """The audit log cannot be opened or continued (exit 4)."""


def line_hash(line: bytes) -> str:
    """The chain hash of one line (its bytes without the trailing newline)."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


class AuditLog:
    """An append-only, hash-chained JSON-lines file, safe to share between threads."""

    def __init__(self, path: Path, *, mode: int = 0o600) -> None:
        self.path = path
        self.mode = mode
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._prev = GENESIS
        self._regular = False

    @property
    def last_hash(self) -> str:
        """Hash of the last line written (what the next line's ``prev`` will be)."""
        return self._prev

    def open(self) -> None:
        """Open (creating it with ``mode``) and find the hash to continue the chain from."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, self.mode)
        except OSError as e:
            raise AuditLogError(
                f"cannot open the audit log {self.path}: {e.strerror or e}"
            ) from None
        try:
            info = os.fstat(fd)
            self._regular = stat.S_ISREG(info.st_mode)
            if self._regular and info.st_size == 0:
                os.fchmod(fd, self.mode)  # new log: exactly the configured mode, not umask's
            self._prev = _last_line_hash(fd, info.st_size) if self._regular else GENESIS
        except AuditLogError:
            os.close(fd)
            raise
        except OSError as e:
            os.close(fd)
            raise AuditLogError(f"cannot read the audit log {self.path}: {e.strerror}") from None
        self._fd = fd

    def append(self, entry: dict[str, Any]) -> str:
        """Write ``entry`` (plus ``prev``) as one durable line; its chain hash.

        Raises :class:`OSError` when the line could not be made durable; the log is then
        left as it was before the call (a partial line is truncated away).
        """
        with self._lock:
            if self._fd is None:
                raise OSError(0, "the audit log is closed")
            line = json.dumps({**entry, "prev": self._prev}, separators=(",", ":")).encode()
            size = os.fstat(self._fd).st_size if self._regular else 0
            try:
                written = os.write(self._fd, line + b"\n")
                if written != len(line) + 1:
                    raise OSError(28, f"short write to the audit log ({written} bytes)")
                os.fsync(self._fd)
            except OSError:
                if self._regular:
                    with contextlib.suppress(OSError):
                        os.ftruncate(self._fd, size)
                raise
            self._prev = line_hash(line)
            return self._prev

    def close(self) -> None:
        """Close the file (further appends raise OSError)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _last_line_hash(fd: int, size: int) -> str:
    if size == 0:
        return GENESIS
    if os.pread(fd, 1, size - 1) != b"\n":
        raise AuditLogError(
            "the audit log ends with an incomplete line (run 'dsig serve audit-check')"
        )
    end = size - 1  # the final newline; the last line is [start of line, end)
    pos, buf = end, b""
    while pos > 0:
        step = min(_TAIL_CHUNK, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        cut = buf.rfind(b"\n")
        if cut >= 0:
            return line_hash(buf[cut + 1 :])
    return line_hash(buf)


@dataclass(frozen=True)
class AuditCheck:
    """What :func:`check_audit_log` found."""

    lines: int
    #: 1-based number of the first line that breaks the chain (None: intact).
    bad_line: int | None = None
    problem: str = ""
    #: Chain hash of the last line (keep it elsewhere to detect later truncation).
    last_hash: str = GENESIS

    @property
    def ok(self) -> bool:
        """Whether every line is well formed and chained to the one before."""
        return self.bad_line is None


def check_audit_log(path: Path) -> AuditCheck:
    """Walk the chain; the first broken line (removed, inserted, edited or malformed) is named.

    Raises :class:`OSError` when the file cannot be read.
    """
    prev = GENESIS
    number = 0
    with path.open("rb") as fp:
        for number, raw in enumerate(fp, start=1):
            if not raw.endswith(b"\n"):
                return AuditCheck(number, number, "incomplete last line", prev)
            try:
                entry = json.loads(raw)
            except ValueError:
                return AuditCheck(number, number, "not a JSON line", prev)
            if not isinstance(entry, dict) or not isinstance(entry.get("prev"), str):
                return AuditCheck(number, number, "no chain hash ('prev')", prev)
            if entry["prev"] != prev:
                return AuditCheck(
                    number, number,
                    "does not follow the line before it (that line was edited, or lines were "
                    "removed or inserted here)",
                    prev,
                )  # fmt: skip
            prev = line_hash(raw)
    return AuditCheck(number, None, "", prev)


__all__ = ["GENESIS", "AuditCheck", "AuditLog", "AuditLogError", "check_audit_log", "line_hash"]
