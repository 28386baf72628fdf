"""A bounded pool of verifier processes with a deadline per verification.

The storage node verifies in forked worker processes, never in its own: a hostile object
that makes verification slow (or large) burns a worker's CPU and memory, not the server's, and
a worker over its deadline is killed and replaced. The server keeps accepting associations
and answering echoes meanwhile; a request that finds every worker busy for ``wait`` seconds
gets "out of resources" instead of queueing forever.

Workers are forked (the verify options, trust stores included, are inherited, not pickled);
each closes every descriptor it inherited but its own socket, so that client connections
and the listening socket are never held open by a worker.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import resource
import select
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from dsig.errors import DsigError
from tokens.faults import BadEnvironmentError

_LENGTH = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the server needs of one verification (plain data: it crosses a process boundary;
    frozen, its mappings read-only)."""

    indication: str
    #: ``dsig verify`` would exit 0 for it.
    accepted: bool
    #: Failure status and Error Comment for ``--reject-invalid``.
    status: int
    comment: str
    signatures: tuple[dict[str, Any], ...] = ()
    findings: tuple[str, ...] = ()
    #: ``FileResult.to_json()`` (the quarantine report).
    report: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    #: PatientID, StudyInstanceUID, SeriesInstanceUID (the folder layout) and SOPInstanceUID
    #: (with them, the Orthanc ID) of the data set as verified; empty when it was not read.
    ids: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:  # a read-only copy: the caller's dict stays the caller's
        object.__setattr__(self, "report", MappingProxyType(dict(self.report)))
        object.__setattr__(self, "ids", MappingProxyType(dict(self.ids)))

    def __reduce__(self) -> tuple[type[Verdict], tuple[Any, ...]]:
        # a read-only mapping does not pickle: the worker sends plain dicts, rewrapped here
        values = (getattr(self, f.name) for f in fields(self))
        return Verdict, tuple(dict(v) if isinstance(v, Mapping) else v for v in values)


#: (spool path, request SOP Class UID, request SOP Instance UID) -> Verdict, run in a worker.
Task = Callable[[Path, str, str], Verdict]


class PoolBusyError(DsigError, BadEnvironmentError):
    """No worker became free in time."""


class _Worker:
    def __init__(self, task: Task, memory: int | None) -> None:
        parent, child = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 0
            try:
                parent.close()
                _worker_main(child, task, memory)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        child.close()
        self.pid = pid
        self.sock = parent

    def run(self, path: Path, sop_class: str, sop_instance: str, timeout: float) -> Verdict | None:
        """The verdict, or None when the worker died or ran out of time (it is then killed)."""
        try:
            _send(self.sock, (str(path), sop_class, sop_instance))
            reply = _receive(self.sock, timeout)
        except (OSError, EOFError, pickle.PickleError):
            reply = None
        if not isinstance(reply, Verdict):
            self.kill()
            return None
        return reply

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self.sock.close()
        self.pid = 0

    def close(self) -> None:
        self.sock.close()  # the worker reads EOF and exits
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    return
            time.sleep(0.02)
        self.kill()


class VerifierPool:
    """``size`` worker processes; :meth:`verify` blocks until one is free (at most ``wait``
    seconds) and then for at most ``timeout`` seconds of verification."""

    def __init__(
        self,
        task: Task,
        *,
        size: int = 2,
        timeout: float = 30.0,
        wait: float = 30.0,
        memory: int | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a verifier pool needs at least one worker")
        self.task = task
        self.size = size
        self.timeout = timeout
        self.wait = wait
        self.memory = memory
        self.killed = 0
        self._free: list[_Worker] = []
        self._available = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        """Fork the workers (best before the server starts its threads)."""
        for _ in range(self.size):
            self._free.append(_Worker(self.task, self.memory))
            self._available.release()

    def verify(self, path: Path, sop_class: str, sop_instance: str) -> Verdict:
        """Verify in a worker. Raises :class:`PoolBusyError` when none is free within ``wait``."""
        if not self._available.acquire(timeout=self.wait):
            raise PoolBusyError(f"every verifier was busy for {self.wait:g} s")
        with self._lock:
            worker = self._free.pop()
        started = time.monotonic()
        verdict = worker.run(path, sop_class, sop_instance, self.timeout)
        if verdict is None:
            took = time.monotonic() - started
            with self._lock:
                self.killed += 1
            reason = (
                f"verification took over {self.timeout:g} s and was stopped"
                if took >= self.timeout
                else "the verifier process failed (out of memory?)"
            )
            verdict = Verdict("ERROR", False, 0, reason, error=reason, findings=("VERIFY_ABORTED",))
            worker = self._replacement()
        with self._lock:
            if self._closed:
                worker.close()
                return verdict
            self._free.append(worker)
        self._available.release()
        return verdict

    def _replacement(self) -> _Worker:
        return _Worker(self.task, self.memory)

    def close(self) -> None:
        """Stop the idle workers now and busy ones as they finish."""
        with self._lock:
            self._closed = True
            workers, self._free = self._free, []
        for worker in workers:
            worker.close()


def _worker_main(sock: socket.socket, task: Task, memory: int | None) -> None:  # pragma: no cover
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the server decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    keep = sock.fileno()
    top = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    os.closerange(3, keep)
    os.closerange(keep + 1, top if top != resource.RLIM_INFINITY else 65536)
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    while True:
        try:
            request = _receive(sock, None)
        except EOFError:
            return
        path, sop_class, sop_instance = request
        try:
            verdict = task(Path(path), sop_class, sop_instance)
        except MemoryError:
            verdict = Verdict("ERROR", False, 0, "out of memory", error="verification ran out "
                              "of memory", findings=("VERIFY_ABORTED",))  # fmt: skip
        _send(sock, verdict)


def _send(sock: socket.socket, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LENGTH.pack(len(data)) + data)


def _receive(sock: socket.socket, timeout: float | None) -> Any:
    deadline = None if timeout is None else time.monotonic() + timeout
    head = _read(sock, _LENGTH.size, deadline)
    (length,) = _LENGTH.unpack(head)
    return pickle.loads(_read(sock, length, deadline))  # noqa: S301 - our own forked child


def _read(sock: socket.socket, n: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    while n > 0:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                raise TimeoutError("no answer in time")
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


__all__ = ["PoolBusyError", "Task", "Verdict", "VerifierPool"]
