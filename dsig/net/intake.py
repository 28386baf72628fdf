"""Receiving C-STORE data sets straight to disk, with limits, for one storage node.

pynetdicom keeps a received data set in memory until the message is complete. For each
connection the node installs two small hooks on pynetdicom's objects (that connection's
only, never its global configuration):

- on the association's socket: a PDU longer than the limit is refused before it is read (a
  peer announcing a 4 GiB PDU gets the connection closed, not 4 GiB of memory), and each
  complete PDU is recorded as progress;
- on its DIMSE provider: the data-set fragments of a C-STORE request are written to a spool
  file (hashed on the way) instead of memory; pynetdicom sees the same fragments, empty. An
  object over ``max_object`` bytes is dropped and the association aborted.

A watchdog thread aborts connections that made no progress (no complete PDU while no request
of theirs is being handled) for ``idle_timeout`` seconds or that exist for longer than
``association_timeout``: a trickle of one byte every few seconds never holds a slot for long.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.pdu_primitives import P_DATA

from dsig.net.storage import create_exclusive

#: Spool files are named ``*.dcm`` + this suffix (stale ones are removed at start).
SPOOL_SUFFIX = ".dsig-tmp"
#: Largest data set of a message other than a C-STORE request (kept in memory by pynetdicom).
MAX_OTHER_DATASET = 1 << 20
#: Largest A-ASSOCIATE-RQ (or other non-data) PDU read into memory.
MAX_CONTROL_PDU = 1 << 20
_A_ABORT = bytes([0x07, 0x00, 0, 0, 0, 4, 0, 0, 0x02, 0x00])  # source: service provider


@dataclass
class Spool:
    """A received object on its way to disk."""

    path: Path
    head: bytes
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    size: int = 0
    #: SHA-256 of the whole file as it will be stored (meta + data set).
    sha256: str = ""
    #: SHA-256 of transfer syntax + data set (see :func:`dsig.net.storage.content_digest`).
    content: str = ""
    _fp: BinaryIO | None = field(default=None, repr=False)
    _file_hash: Any = field(default=None, repr=False)
    _content_hash: Any = field(default=None, repr=False)

    @classmethod
    def create(
        cls, directory: Path, head: bytes, sop_class: str, sop_instance: str, ts: str, mode: int
    ) -> Spool:
        """A new spool file holding ``head`` (preamble and File Meta Information)."""
        path = directory / f"{uuid.uuid4().hex}.dcm{SPOOL_SUFFIX}"
        fd = create_exclusive(path, mode)
        spool = cls(path, head, sop_class, sop_instance, ts)
        fp = os.fdopen(fd, "wb", buffering=1 << 20)
        spool._fp = fp
        spool._file_hash = hashlib.sha256(head)
        spool._content_hash = hashlib.sha256(ts.encode() + b"\0")
        try:
            fp.write(head)
        except BaseException:
            spool.discard()
            raise
        return spool

    def write(self, data: bytes | memoryview) -> None:
        """Append data-set bytes."""
        assert self._fp is not None
        self._fp.write(data)
        self._file_hash.update(data)
        self._content_hash.update(data)
        self.size += len(data)

    def finish(self) -> None:
        """Flush and fsync; the digests become available."""
        if self._fp is None:
            return
        fp, self._fp = self._fp, None
        try:
            fp.flush()
            os.fsync(fp.fileno())
        finally:
            fp.close()
        self.sha256 = self._file_hash.hexdigest()
        self.content = self._content_hash.hexdigest()

    def discard(self) -> None:
        """Close and remove the file."""
        if self._fp is not None:
            with contextlib.suppress(OSError):
                self._fp.close()
            self._fp = None
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class IntakeLimits:
    """Limits of one storage node's intake."""

    #: Largest data set of one object, bytes.
    max_object: int = 1 << 30
    #: Largest PDU read (0: the negotiated maximum is not enforced beyond MAX_CONTROL_PDU).
    max_pdu: int = 262144
    #: Seconds without a complete PDU (while no request of the connection is being handled).
    idle_timeout: float = 30.0
    #: Seconds a connection may last at all (0: no limit).
    association_timeout: float = 3600.0


class Connection:
    """One peer connection: its spools and the progress the watchdog looks at."""

    def __init__(
        self,
        assoc: Any,
        staging: Path,
        mode: int,
        limits: IntakeLimits,
        make_head: Callable[[str, str, str, str], bytes],
        on_drop: Callable[[Connection, str, Spool | None], None],
    ) -> None:
        self.assoc = assoc
        self.staging = staging
        self.mode = mode
        self.limits = limits
        self.make_head = make_head
        self.on_drop = on_drop
        self.opened = self.progress = time.monotonic()
        self.busy = 0
        self.ready: collections.deque[Spool] = collections.deque()
        self.current: Spool | None = None
        self.other_bytes = 0
        self.dropped: str | None = None
        self._lock = threading.Lock()

    # -- hooks ------------------------------------------------------------------------------

    def install(self) -> None:
        """Hook this connection's socket reads and DIMSE reception."""
        asock = self.assoc.dul.socket
        read = asock.recv
        limit = max(self.limits.max_pdu, MAX_CONTROL_PDU) if self.limits.max_pdu else 64 << 20

        def recv(nr_bytes: int) -> bytearray:
            if nr_bytes > limit + 6:
                self.dropped = f"PDU of {nr_bytes} bytes (limit {limit})"
                raise OSError(f"refused a {self.dropped}")
            try:
                data: bytearray = read(nr_bytes)
            except ssl.SSLError as e:  # a refused TLS handshake (or a broken record): audited
                if not self.dropped:
                    self.dropped = f"TLS: {e.reason or e}"
                    self.on_drop(self, self.dropped, None)
                raise
            if nr_bytes != 6:
                self.progress = time.monotonic()
            return data

        asock.recv = recv
        dimse = self.assoc.dimse
        receive = dimse.receive_primitive

        def receive_primitive(primitive: P_DATA) -> None:
            try:
                self._receive(dimse, receive, primitive)
            except Exception as e:  # an exception here would kill pynetdicom's reactor thread
                self._drop(f"cannot receive: {type(e).__name__}: {e}")

        dimse.receive_primitive = receive_primitive

    def _receive(self, dimse: Any, receive: Callable[[P_DATA], None], primitive: P_DATA) -> None:
        if self.dropped:
            return
        for context_id, data in primitive.presentation_data_value_list:
            control = data[0]
            message = dimse.message
            if not control & 1:  # a data-set fragment
                if isinstance(message, C_STORE_RQ):
                    if not self._spool_fragment(message, context_id, data):
                        return
                    data = bytes([control])  # pynetdicom sees the fragment, empty
                else:
                    self.other_bytes += len(data)
                    if self.other_bytes > MAX_OTHER_DATASET:
                        self._drop(f"a non-storage data set over {MAX_OTHER_DATASET} bytes")
                        return
            elif message is None or not isinstance(message, C_STORE_RQ):
                encoded = getattr(message, "encoded_command_set", None)
                if encoded is not None and encoded.tell() > MAX_CONTROL_PDU:
                    self._drop("a command set over 1 MiB")
                    return
            single = P_DATA()
            single.presentation_data_value_list = [[context_id, data]]  # type: ignore[list-item]  # pynetdicom checks for lists
            receive(single)
            if not control & 1 and control & 2:  # last fragment: the message is complete
                self.other_bytes = 0
                if self.current is not None:
                    spool, self.current = self.current, None
                    with self._lock:
                        self.busy += 1  # the handler answers it: not idle meanwhile
                        self.ready.append(spool)

    def _spool_fragment(self, message: Any, context_id: int, data: bytes) -> bool:
        try:
            if self.current is None:
                cs = message.command_set
                ts = str(self.assoc._accepted_cx[context_id].transfer_syntax[0])
                sop_class = str(cs.AffectedSOPClassUID or "")
                sop_instance = str(cs.AffectedSOPInstanceUID or "")
                head = self.make_head(sop_class, sop_instance, ts, self._calling_ae())
                self.current = Spool.create(
                    self.staging, head, sop_class, sop_instance, ts, self.mode
                )
            if self.current.size + len(data) - 1 > self.limits.max_object:
                self._drop(f"an object over {self.limits.max_object} bytes")
                return False
            self.current.write(memoryview(data)[1:])
        except (OSError, KeyError, AttributeError) as e:
            self._drop(f"cannot spool the object: {getattr(e, 'strerror', None) or e}")
            return False
        return True

    def _calling_ae(self) -> str:
        with contextlib.suppress(Exception):
            return str(self.assoc.requestor.ae_title or "").strip()
        return ""

    # -- handler side -----------------------------------------------------------------------

    def take(self) -> Spool | None:
        """The oldest complete spool (the one the C-STORE handler is answering)."""
        with self._lock:
            return self.ready.popleft() if self.ready else None

    def answered(self) -> None:
        """A request was answered: the idle clock restarts."""
        with self._lock:
            self.busy = max(0, self.busy - 1)
            self.progress = time.monotonic()

    def begin(self) -> None:
        """A request without spool is being handled."""
        with self._lock:
            self.busy += 1

    # -- ending -----------------------------------------------------------------------------

    def _drop(self, reason: str) -> None:
        """Give up on this connection: drop the object being received, abort (from the DUL
        thread, through pynetdicom's own invalid-PDU path)."""
        self.dropped = reason
        spool, self.current = self.current, None
        self.on_drop(self, reason, spool)
        if spool is not None:
            spool.discard()
        self.assoc.dul.event_queue.put("Evt19")

    def expired(self, now: float) -> str | None:
        """Why the watchdog should end this connection now, if it should."""
        limits = self.limits
        with self._lock:
            busy = self.busy
        if limits.association_timeout and now - self.opened > limits.association_timeout:
            return f"association lasted over {limits.association_timeout:g} s"
        if not busy and limits.idle_timeout and now - self.progress > limits.idle_timeout:
            return f"no complete PDU for {limits.idle_timeout:g} s"
        return None

    def kill(self, reason: str) -> None:
        """End the connection from another thread, even while pynetdicom is blocked reading
        a trickle: an A-ABORT, then both directions shut (the blocked read returns)."""
        self.dropped = reason
        raw = getattr(getattr(self.assoc.dul, "socket", None), "socket", None)
        if isinstance(raw, socket.socket):
            with contextlib.suppress(OSError):
                raw.send(_A_ABORT)
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)
        spool, self.current = self.current, None
        if spool is not None:
            self.on_drop(self, reason, spool)

    def close(self) -> None:
        """Remove spools nobody will answer (the connection ended)."""
        with self._lock:
            leftovers = list(self.ready)
            self.ready.clear()
        current, self.current = self.current, None
        for spool in [*leftovers, *([current] if current else [])]:
            spool.discard()


class Watchdog:
    """Every ``interval`` seconds, ends the connections :meth:`Connection.expired` names."""

    def __init__(
        self,
        connections: Callable[[], list[Connection]],
        on_kill: Callable[[Connection, str], None],
        interval: float = 0.5,
    ) -> None:
        self._connections = connections
        self._on_kill = on_kill
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dsig-watchdog", daemon=True)

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (waits for the thread)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            now = time.monotonic()
            for conn in self._connections():
                if conn.dropped:
                    continue
                reason = conn.expired(now)
                if reason:
                    conn.kill(reason)
                    self._on_kill(conn, reason)


__all__ = ["SPOOL_SUFFIX", "Connection", "IntakeLimits", "Spool", "Watchdog"]
