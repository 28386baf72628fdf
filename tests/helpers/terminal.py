"""Drive a command on a real pseudo-terminal, as a user at a keyboard would.

The child gets the pty as its controlling terminal (``pty.fork``), so ``isatty()`` is true and
``getpass`` reads from ``/dev/tty``. Reads are bounded by timeouts: a test never hangs.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import time
from collections.abc import Mapping, Sequence


class TerminalError(AssertionError):
    """The expected text did not appear in time (the output so far is in the message)."""


class Terminal:
    """One command on a pty: :meth:`expect` output, :meth:`send` keystrokes, :meth:`wait`."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: str | None = None):
        pid, fd = pty.fork()
        if pid == 0:  # child: exec at once, nothing else of the test process runs here
            try:
                if cwd is not None:
                    os.chdir(cwd)
                os.execvpe(argv[0], list(argv), dict(env))
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.output = ""
        self._seen = 0
        self.returncode: int | None = None

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not data:
            return False
        self.output += data.decode("utf-8", "replace").replace("\r\n", "\n")
        return True

    def expect(self, text: str, timeout: float = 30.0) -> str:
        """Wait for ``text`` after what earlier expects consumed; returns the output up to it."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.output.find(text, self._seen)
            if found >= 0:
                before = self.output[self._seen : found]
                self._seen = found + len(text)
                return before
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(min(remaining, 0.5)):
                if self.output.find(text, self._seen) >= 0:
                    continue
                raise TerminalError(f"{text!r} not seen; output so far:\n{self.output}")

    def send(self, text: str) -> None:
        """Type ``text`` (include ``\\n`` for Enter)."""
        os.write(self.fd, text.encode())

    def wait(self, timeout: float = 60.0) -> int:
        """Read everything until the child exits; its exit code."""
        deadline = time.monotonic() + timeout
        open_ = True
        while time.monotonic() < deadline:
            if open_:
                open_ = self._read(0.2)
            else:
                time.sleep(0.05)
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                while open_ and self._read(0.1):
                    if not self._pending():
                        break
                return self._finish(status)
        self.close()
        raise TerminalError(f"still running after {timeout}s; output:\n{self.output}")

    def _pending(self) -> bool:
        ready, _, _ = select.select([self.fd], [], [], 0)
        return bool(ready)

    def _finish(self, status: int) -> int:
        self.returncode = os.waitstatus_to_exitcode(status)
        os.close(self.fd)
        return self.returncode

    def close(self) -> None:
        """Kill the child if it still runs (only this child, by its pid)."""
        if self.returncode is None:
            # Already gone or already reaped: nothing left to stop.
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            self.returncode = -9
            with contextlib.suppress(OSError):  # closed by wait() already
                os.close(self.fd)
