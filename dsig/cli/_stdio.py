"""Standard streams of the ``dsig`` command, made safe before any command runs.

- A closed descriptor 0, 1 or 2 (``dsig verify f <&-``) is reopened on /dev/null: otherwise
  the next file opened would take its number, and output meant for the terminal could land in
  a DICOM file. A closed stdin reads as empty (no prompt); a closed stdout fails the first
  write with one line, as ``grep`` does.
- A write to stdout that fails stops the command however deep it happens (including inside
  code that catches ``Exception``): a closed pipe (``dsig verify ... | head -1``) ends the
  process quietly by SIGPIPE, as ``grep``; any other error (``>/dev/full``) is one line and
  exit 4.
"""

from __future__ import annotations

import errno
import io
import os
import signal
import sys
from typing import Any


class StdoutFailure(BaseException):
    """Writing to stdout failed: derives from BaseException so no ``except Exception`` on the
    way can swallow it and carry on with nowhere to report to."""

    def __init__(self, reason: str, broken_pipe: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.broken_pipe = broken_pipe


def _failure(error: OSError) -> StdoutFailure:
    return StdoutFailure(error.strerror or str(error), error.errno == errno.EPIPE)


class _GuardedStdout(io.TextIOWrapper):
    """sys.stdout whose write and flush errors become :class:`StdoutFailure`."""

    closed_at_start = False

    def write(self, text: str) -> int:
        if self.closed_at_start:
            raise StdoutFailure("standard output is closed", False)
        try:
            return super().write(text)
        except OSError as e:
            raise _failure(e) from None

    def flush(self) -> None:
        if self.closed_at_start:
            return
        try:
            super().flush()
        except OSError as e:
            raise _failure(e) from None


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def guard_stdio() -> None:
    """Reopen closed standard descriptors on /dev/null; install the guarded stdout."""
    closed = {fd: not _is_open(fd) for fd in (0, 1, 2)}
    for fd in (0, 1, 2):  # in order: os.open returns the lowest free descriptor
        if closed[fd]:
            null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if closed[0]:
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    if closed[2]:
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
    current = sys.stdout
    encoding = getattr(current, "encoding", None) or "utf-8"
    errors = getattr(current, "errors", None) or "strict"
    line_buffering = bool(getattr(current, "line_buffering", False))
    buffer: Any = io.FileIO(1, "w", closefd=False) if closed[1] else _buffer_of(current)
    guarded = _GuardedStdout(
        buffer,
        encoding=encoding,
        errors=errors,
        line_buffering=line_buffering,
    )
    guarded.closed_at_start = closed[1]
    sys.stdout = guarded


def _buffer_of(stream: object) -> io.BufferedIOBase:
    """The binary buffer under the interpreter's sys.stdout, detached so that the old text
    wrapper, when collected, does not close it."""
    if isinstance(stream, io.TextIOWrapper):
        stream.flush()
        buffer: io.BufferedIOBase = stream.detach()
        return buffer
    return io.BufferedWriter(io.FileIO(1, "w", closefd=False))


def end_for(failure: StdoutFailure) -> int:
    """Finish after a stdout failure: die of SIGPIPE for a closed pipe (nothing printed,
    exit status 128+13 as grep's), else print one line and return exit code 4."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # buffered output left over must not fail again at interpreter exit
    os.close(null)
    if failure.broken_pipe:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)
    from dsig import printable

    sys.stderr.write(f"dsig: error: cannot write to standard output: {printable(failure)}\n")
    sys.stderr.flush()
    return 4
