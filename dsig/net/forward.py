"""Forwarding stored objects to other storage SCPs (the PACS) through a durable queue.

Every object the node stores is first given one more name (a hard link, or an fsync'ed copy
across filesystems) in the queue directory of each target, ``<queue>/<AE@HOST_PORT>/``, and
the directory is fsync'ed, all before the object is placed in the store and the C-STORE
answered. A forwarder thread per target sends the queue in arrival order with
:func:`dsig.net.scu.send_files` (the stored bytes, data set exactly as received) and removes an
entry only when the peer answered success or a warning. A peer that cannot be reached, or
answers "out of resources" (0xA7xx), is retried with a doubling wait (1 s up to
``retry_max``); an object the peer refuses with another failure status would never pass, so
it is moved to ``<queue>/<target>/refused/`` (with a JSON note) instead of blocking the queue.

Guarantee: **at least once**. Nothing stored is lost by a crash or a kill (the queue entry is
durable before the object is acknowledged; a restarted node resumes the queue); an object
whose success answer arrived just before a crash, before its entry was removed, is sent again
(at most the batch in flight per target).
"""

from __future__ import annotations

import contextlib
import json
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsig.net.layout import safe_component
from dsig.net.storage import fsync_directory, link_new, make_directory, place, write_new

#: Default queue directory (inside the store).
QUEUE_DIR = ".dsig-forward"
REFUSED_DIR = "refused"
_TARGET_RE = re.compile(r"^(?P<ae>[^@]{1,16})@(?P<host>\[[0-9A-Fa-f:.]+\]|[^:@\s]+):(?P<port>\d+)$")
#: Objects sent per association.
BATCH = 64
#: Seconds the forwarder waits after being woken, so that a burst shares an association.
LINGER = 0.2


@dataclass(frozen=True)
class ForwardTarget:
    """``AE@HOST:PORT``: a storage SCP to forward to."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ForwardTarget:
        """``AE@HOST:PORT`` (an IPv6 address in brackets); ValueError if malformed."""
        match = _TARGET_RE.match(text.strip())
        if not match or not 0 < int(match["port"]) <= 65535:
            raise ValueError(f"{text!r} is not AE@HOST:PORT")
        ae = match["ae"].strip()
        if not ae or any(not 32 <= ord(c) < 127 or c == "\\" for c in ae):
            raise ValueError(f"{text!r}: bad AE title")
        return cls(ae, match["host"].strip("[]"), int(match["port"]))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"

    @property
    def folder(self) -> str:
        """The target's queue directory name."""
        return safe_component(str(self).replace(":", "_"))


@dataclass(frozen=True, slots=True)
class ForwardEvent:
    """A delivery ("forwarded"), a refusal ("forward-refused") or a failed attempt
    ("forward-retry"), for the log (the first two are also audited); frozen."""

    action: str
    target: str
    sop_instance_uid: str = ""
    status: int | None = None
    message: str = ""
    retry_in: float = 0.0


class ForwardQueue:
    """The durable queue and its forwarder threads: :meth:`open`, :meth:`add` (any thread),
    :meth:`start`, :meth:`stop`."""

    def __init__(
        self,
        directory: Path,
        targets: tuple[ForwardTarget, ...],
        *,
        calling_ae: str,
        file_mode: int,
        dir_mode: int,
        tls: ssl.SSLContext | None = None,
        retry_max: float = 60.0,
        timeout: float = 30.0,
        on_event: Callable[[ForwardEvent], None] | None = None,
    ) -> None:
        self.directory = directory
        self.targets = targets
        self.calling_ae = calling_ae
        self.file_mode = file_mode
        self.dir_mode = dir_mode
        self.tls = tls
        self.retry_max = max(1.0, retry_max)
        self.timeout = timeout
        self.on_event = on_event
        self._stop = threading.Event()
        self._wake = {t: threading.Event() for t in targets}
        self._threads: list[threading.Thread] = []

    def folder(self, target: ForwardTarget) -> Path:
        """Where ``target``'s entries wait."""
        return self.directory / target.folder

    def pending(self, target: ForwardTarget) -> list[Path]:
        """Entries not yet delivered, oldest first."""
        return sorted(self.folder(target).glob("*.dcm"))

    def open(self) -> None:
        """Create the directories (OSError if impossible)."""
        for target in self.targets:
            make_directory(self.folder(target) / REFUSED_DIR, self.dir_mode)

    def add(self, path: Path, sop_instance_uid: str) -> None:
        """Queue the fsync'ed file ``path`` for every target, durably (OSError if not)."""
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}-{safe_component(sop_instance_uid)}"
        for target in self.targets:
            link_new(path, self.folder(target) / f"{name}.dcm", self.file_mode)
            self._wake[target].set()

    def start(self) -> None:
        """One forwarder thread per target (it first sends what an earlier run left)."""
        for target in self.targets:
            thread = threading.Thread(
                target=self._run, args=(target,), name=f"dsig-forward-{target}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the batches in flight (what is left stays queued)."""
        self._stop.set()
        for event in self._wake.values():
            event.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))

    def _run(self, target: ForwardTarget) -> None:
        wait = 1.0
        while not self._stop.is_set():
            self._wake[target].clear()
            entries = self.pending(target)[:BATCH]
            if not entries:
                self._wake[target].wait(5.0)
                self._stop.wait(LINGER)  # let a burst gather into one association
                continue
            try:
                delivered_all, message = self._send(target, entries)
            except Exception as e:  # a bug must not end forwarding silently
                delivered_all, message = False, f"internal error: {type(e).__name__}: {e}"
            if delivered_all:
                wait = 1.0
                continue
            self._emit(ForwardEvent("forward-retry", str(target), message=message, retry_in=wait))
            if self._stop.wait(wait):
                return
            wait = min(wait * 2, self.retry_max)

    def _send(self, target: ForwardTarget, entries: list[Path]) -> tuple[bool, str]:
        from dsig.net.scu import SendOptions, send_files

        options = SendOptions(
            host=target.host, port=target.port, calling_ae=self.calling_ae,
            called_ae=target.ae_title, timeout=self.timeout, tls=self.tls,
        )  # fmt: skip
        summary = send_files(entries, options)
        folder = self.folder(target)
        problem = ""
        for result in summary.results:
            uid = result.sop_instance_uid
            if result.outcome in ("stored", "warning"):
                result.path.unlink(missing_ok=True)
                self._emit(ForwardEvent("forwarded", str(target), uid, result.status))
            elif result.outcome == "refused" and not _out_of_resources(result.status):
                self._set_aside(folder, result.path, result.status, result.message)
                self._emit(
                    ForwardEvent("forward-refused", str(target), uid, result.status, result.message)
                )
            else:
                problem = problem or result.message or f"status 0x{result.status or 0:04X}"
        fsync_directory(folder)
        return not problem, problem

    def _set_aside(self, folder: Path, entry: Path, status: int | None, message: str) -> None:
        refused = folder / REFUSED_DIR / entry.name
        note = {"status": f"0x{status or 0:04X}", "message": message, "time": time.time()}
        data = json.dumps(note).encode() + b"\n"
        with contextlib.suppress(FileExistsError):
            write_new(refused.with_suffix(".json"), data, self.file_mode)
        with contextlib.suppress(FileExistsError):
            place(entry, refused, self.file_mode)
        entry.unlink(missing_ok=True)

    def _emit(self, event: ForwardEvent) -> None:
        if self.on_event is not None:
            with contextlib.suppress(Exception):
                self.on_event(event)


def _out_of_resources(status: int | None) -> bool:
    """0xA7xx: the peer may take it later (a refusal without status is "no presentation
    context for it": it would never pass either)."""
    return status is not None and status & 0xFF00 == 0xA700


def event_json(event: ForwardEvent) -> dict[str, Any]:
    """The audit-log line of a delivery or refusal."""
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "action": event.action,
        "sop_instance_uid": event.sop_instance_uid,
        "forward_to": event.target,
        "status": None if event.status is None else f"0x{event.status:04X}",
        "error": event.message or None,
    }


__all__ = [
    "BATCH",
    "QUEUE_DIR",
    "ForwardEvent",
    "ForwardQueue",
    "ForwardTarget",
    "event_json",
]
