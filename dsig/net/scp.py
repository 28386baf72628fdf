"""A C-STORE SCP that verifies the digital signatures of every object it receives.

Each C-STORE request is handled like this, in the association's thread:

1. the data set is taken **exactly as received** (pynetdicom's raw encoded bytes, never decoded
   and re-encoded), prefixed with a preamble and File Meta Information built from the request
   (SOP Class/Instance UID), the presentation context (Transfer Syntax) and the calling AE, and
   spooled (fsync'ed) to ``<store>/.dsig-incoming/``;
2. that file is read and verified exactly as ``dsig verify`` reads and verifies a file
   (:func:`dsig.verify_file`, with its parse limits);
3. the object goes to the store when ``dsig verify`` would exit 0 for it (VALID, or UNSIGNED
   with no ``--require``), otherwise to the quarantine with its JSON report beside it;
4. it is renamed into place (directory fsync'ed; an atomic copy if the quarantine is on another
   filesystem), one JSON line is appended to the audit log (fsync'ed), and only then is the
   C-STORE response sent: success, or with ``reject_invalid`` a failure status for objects
   that did not pass. An object that could not be kept is answered with 0xA700 (out of
   resources), never with success.

Extended negotiation: when the requestor proposes SOP Class Extended Negotiation for a storage
SOP class, the SCP answers Level 2 storage support, Digital Signature support Level 2 (objects
are stored bit-for-bit as received, so incoming signatures keep their integrity) and no
element coercion (PS3.4 B.3.1 / B.4.1).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import io
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID
from pynetdicom import AE, evt
from pynetdicom._globals import ALL_TRANSFER_SYNTAXES
from pynetdicom.events import Event
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.transport import ThreadedAssociationServer

from dsig.errors import OptionsError
from dsig.net import NetError
from dsig.net.audit import AuditLog, AuditLogError
from dsig.net.forward import QUEUE_DIR, ForwardEvent, ForwardQueue, ForwardTarget, event_json
from dsig.net.intake import SPOOL_SUFFIX, Connection, IntakeLimits, Spool, Watchdog
from dsig.net.layout import LAYOUTS, object_directory
from dsig.net.pool import PoolBusyError, Task, Verdict, VerifierPool
from dsig.net.storage import (
    DEFAULT_FILE_MODE,
    content_digest,
    directory_mode,
    link_new,
    make_directory,
    place,
    write_new,
)
from dsig.net.tls import TlsConfig, client_context, server_context
from dsig.operations.verifier import VerifyOptions, verify_file
from dsig.results import FileResult, Finding, Indication, SignatureResult, exit_code, with_findings

#: Service-class application information the SCP returns in SOP Class Extended Negotiation:
#: Level 2 storage SCP, Digital Signature support Level 2, no element coercion (PS3.4 B.3.1).
SCP_APPLICATION_INFO = bytes([2, 0, 2, 0, 0, 0])

STATUS_SUCCESS = 0x0000
#: Failure statuses of ``--reject-invalid`` (PS3.4 B.2.3 "Error: Cannot understand" range).
STATUS_INVALID = 0xC210
STATUS_INDETERMINATE = 0xC211
STATUS_REQUIREMENT = 0xC212
STATUS_UNREADABLE = 0xC213
#: The data set's SOP Class/Instance UID differ from the request's (PS3.4 B.2.3).
STATUS_MISMATCH = 0xA900
#: The object could not be kept (disk, permissions) or the server is shutting down.
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_PROCESSING_FAILURE = 0x0110
#: Duplicate SOP instance (PS3.7 C.4): other bytes under the UID of a stored object, with
#: ``duplicates="reject"``.
STATUS_DUPLICATE = 0x0111

STORAGE_SOP_CLASSES: tuple[str, ...] = tuple(
    str(cx.abstract_syntax) for cx in AllStoragePresentationContexts
)

VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"

_IMPLICIT_LE, _EXPLICIT_LE, _EXPLICIT_BE = (
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
)
#: Accepted transfer syntaxes in order of preference: pynetdicom, as acceptor, picks the first of
#: these that the requestor proposed in a context. Explicit VR little endian comes first and
#: implicit VR last: converting to implicit VR loses the VRs of private and unknown elements,
#: and with them the signatures that cover such elements (PS3.15 A.3 asks for explicit VR).
TRANSFER_SYNTAXES: tuple[str, ...] = (
    _EXPLICIT_LE,
    *(ts for ts in ALL_TRANSFER_SYNTAXES if ts not in (_IMPLICIT_LE, _EXPLICIT_LE, _EXPLICIT_BE)),
    _EXPLICIT_BE,
    _IMPLICIT_LE,
)

#: Finding of the storage node (not of the verifier): the data set names another SOP Class or
#: Instance than the C-STORE request, whose UIDs name the stored file.
UID_MISMATCH = "REQUEST_UID_MISMATCH"
#: Finding of the storage node: the store holds another object under this SOP Instance UID.
DUPLICATE_FINDING = "DUPLICATE_DIFFERS"

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_TMP_SUFFIX = SPOOL_SUFFIX
#: Received objects are spooled here (inside the store) while they are verified.
STAGING_DIR = ".dsig-incoming"
#: With a folder layout, one hard link per stored object named by its SOP Instance UID: the
#: claim on the UID (duplicates are found here whatever folder the first copy went to).
UID_INDEX_DIR = ".dsig-uids"
_STALE_TMP_SECONDS = 300


#: How a second object with the SOP Instance UID of a stored one (and other bytes) is handled.
DUPLICATE_POLICIES = ("reject", "keep-both")


@dataclass(frozen=True)
class ServerConfig:
    """How the storage node listens, verifies and keeps objects."""

    store: Path
    quarantine: Path
    verify: VerifyOptions = field(default_factory=VerifyOptions)
    ae_title: str = "DSIG"
    host: str = "127.0.0.1"
    #: 0 picks a free port (see :attr:`ReceiveServer.port`).
    port: int = 11112
    #: Answer objects that did not pass with a failure status (they are still quarantined).
    reject_invalid: bool = False
    #: JSON-lines audit log; None = ``<store>/dsig-audit.jsonl``.
    audit_log: Path | None = None
    max_associations: int = 10
    #: Accept associations only from these calling AE titles (empty: from any).
    allow_calling_ae: tuple[str, ...] = ()
    #: Reject associations whose called AE title is not ``ae_title``.
    require_called_ae: bool = False
    #: Largest P-DATA PDU we accept (0 = no limit).
    max_pdu: int = 262144
    #: Seconds a single socket read may block (pynetdicom's network timeout).
    network_timeout: float = 60.0
    #: Largest data set of one object, bytes (bigger ones are dropped, the association aborted).
    max_object_size: int = 1 << 30
    #: Seconds without a complete PDU, while none of its requests is being handled, before a
    #: connection is aborted.
    idle_timeout: float = 30.0
    #: Seconds an association may last (0: unlimited).
    association_timeout: float = 3600.0
    #: Verifier worker processes, seconds one verification may take, MiB of memory each.
    workers: int = 2
    verify_timeout: float = 30.0
    worker_memory_mib: int = 2048
    #: "reject" (default) or "keep-both" (versioned names) for a different object under a
    #: stored SOP Instance UID; an identical one is always a no-op ("duplicate").
    duplicates: str = "reject"
    #: Mode of every file created (directories get x where r is set).
    file_mode: int = DEFAULT_FILE_MODE
    #: "flat" (``<store>/<SOP Instance UID>.dcm``) or "patient-study-series"
    #: (``<store>/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<UID>.dcm``, names made
    #: safe by :func:`dsig.net.layout.safe_component`). The quarantine is always flat.
    layout: str = "flat"
    #: Peers every stored object is forwarded to (through a durable queue).
    forward: tuple[ForwardTarget, ...] = ()
    #: The forwarding queue's directory; None = ``<store>/.dsig-forward``.
    forward_queue: Path | None = None
    #: Longest wait between two forwarding attempts (the wait doubles from 1 s up to it).
    forward_retry_max: float = 60.0
    #: DICOM TLS: None = plain TCP.
    tls: TlsConfig | None = None
    #: Forward over TLS too (our certificate as client certificate, peers checked against
    #: the same CA).
    forward_tls: bool = False

    def __post_init__(self) -> None:
        if self.duplicates not in DUPLICATE_POLICIES:
            raise OptionsError(f"duplicates must be one of {DUPLICATE_POLICIES}")
        if self.layout not in LAYOUTS:
            raise OptionsError(f"layout must be one of {LAYOUTS}")
        if self.file_mode & ~0o777 or not self.file_mode & 0o600 == 0o600:
            raise OptionsError("file_mode must be rw for the owner, without special bits")

    @property
    def audit_path(self) -> Path:
        """Where audit lines go."""
        return self.audit_log if self.audit_log is not None else self.store / "dsig-audit.jsonl"

    @property
    def queue_path(self) -> Path:
        """The forwarding queue's directory."""
        return self.forward_queue if self.forward_queue is not None else self.store / QUEUE_DIR


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One received object: who sent what, the verdict, where it went, what was answered
    (frozen; ``signatures`` are the audit line's JSON summaries). The node builds it while
    the object is received and kept, by copying (:func:`dataclasses.replace`)."""

    time: str
    calling_ae: str
    called_ae: str
    peer: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    size: int
    indication: str
    #: "stored", "duplicate" (identical to a stored object: nothing written), "quarantined",
    #: "refused" (quarantined and answered with a failure), "failed" (not kept), "dropped"
    #: (not received whole: too big, connection ended) or "aborted" (a connection ended by
    #: the node's timeouts while no object was in progress)
    action: str
    status: int
    path: str | None = None
    report: str | None = None
    error: str | None = None
    signatures: tuple[dict[str, Any], ...] = ()
    findings: tuple[str, ...] = ()
    seconds: float = 0.0
    #: SHA-256 of the bytes stored (the whole file), and of transfer syntax + data set.
    sha256: str | None = None
    content_sha256: str | None = None
    #: keep-both: the version number of this copy (the first one has none).
    version: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The audit-log line (one JSON object; the log adds ``prev``)."""
        return {
            "time": self.time,
            "calling_ae": self.calling_ae,
            "called_ae": self.called_ae,
            "peer": self.peer,
            "sop_class_uid": self.sop_class_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "transfer_syntax": self.transfer_syntax,
            "size": self.size,
            "sha256": self.sha256,
            "content_sha256": self.content_sha256,
            "indication": self.indication,
            "action": self.action,
            "status": f"0x{self.status:04X}",
            "path": self.path,
            "version": self.version,
            "report": self.report,
            "error": self.error,
            "signatures": list(self.signatures),
            "findings": list(self.findings),
            "seconds": round(self.seconds, 4),
        }


def file_meta_bytes(
    *, sop_class: str, sop_instance: str, transfer_syntax: str, source_ae: str
) -> bytes:
    """Preamble, DICM and File Meta Information for a received data set (which follows it
    unchanged in the file)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    if source_ae:
        meta.SourceApplicationEntityTitle = source_ae
    buf = io.BytesIO()
    buf.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buf, meta, enforce_standard=True)  # type: ignore[arg-type]
    return buf.getvalue()


def _received_bytes(event: Event) -> bytes | memoryview:
    """The data set bytes exactly as received, without a copy when pynetdicom allows."""
    stream = getattr(event.request, "DataSet", None)
    if isinstance(stream, io.BytesIO):
        return stream.getbuffer()
    return event.encoded_dataset(include_meta=False)


def _peer(assoc: Any) -> str:
    try:
        return f"{assoc.requestor.address}:{assoc.requestor.port}"
    except (ValueError, AttributeError):
        return ""


def _bare_record(event: Event) -> AuditRecord:
    """What is known of a request before looking at its data set (never raises)."""
    request = event.request
    requestor = event.assoc.requestor
    try:
        transfer_syntax = str(event.context.transfer_syntax)
    except Exception:
        transfer_syntax = ""
    return AuditRecord(
        time=_now(),
        calling_ae=str(requestor.ae_title or "").strip(),
        called_ae=_called_ae(event),
        peer=_peer(event.assoc),
        sop_class_uid=str(getattr(request, "AffectedSOPClassUID", "") or ""),
        sop_instance_uid=str(getattr(request, "AffectedSOPInstanceUID", "") or ""),
        transfer_syntax=transfer_syntax,
        size=0,
        indication="NOT_VERIFIED",
        action="failed",
        status=STATUS_OUT_OF_RESOURCES,
    )


def accepted(result: FileResult) -> bool:
    """Whether ``dsig verify`` would exit 0 for this result."""
    return exit_code([result]) == 0


def refusal(result: FileResult) -> tuple[int, str]:
    """Failure status and error comment (at most 64 characters) for an object that failed.

    0xC213 unreadable; 0xA900 the data set's UIDs are not the request's; 0xC210 a signature's
    integrity is INVALID (MAC or signature value); 0xC211 no signature invalid, but one is not
    trusted (untrusted or revoked signer, ...): its verdict is INDETERMINATE or INVALID by trust
    alone; 0xC212 the signatures are fine but a ``--require`` or coverage requirement is not.
    """
    codes = [f.code for f in result.findings if f.severity == "error"]
    for sig in result.signatures:
        codes += [f.code for f in sig.findings if f.severity == "error"]
        codes += [f.code for f in sig.trust.findings]
    requirement = [f.code for f in result.findings if f.severity == "error"]
    if result.indication is Indication.ERROR:
        status, text = STATUS_UNREADABLE, f"unreadable: {result.error or ''}"
    elif any(f.code == UID_MISMATCH for f in result.findings):
        status, text = STATUS_MISMATCH, "data set UIDs differ from the request"
    elif any(s.integrity is Indication.INVALID for s in result.signatures):
        status, text = STATUS_INVALID, "signature invalid: " + ",".join(dict.fromkeys(codes))
    elif any(s.indication is not Indication.VALID for s in result.signatures) and not (
        requirement and any(s.indication is Indication.VALID for s in result.signatures)
    ):
        status, text = (
            STATUS_INDETERMINATE,
            "signature indeterminate: " + ",".join(dict.fromkeys(codes)),
        )
    else:
        status, text = STATUS_REQUIREMENT, "requirement not met: " + ",".join(requirement)
    return status, text[:64]


def verify_task(options: VerifyOptions, *, meta_request: bool = False) -> Task:
    """The verification a worker runs: ``dsig verify``'s, plus the request-UID check.

    ``meta_request``: the File Meta's Media Storage SOP Class and Instance UIDs are the
    request (a file received whole, as by the Orthanc service); the task's own UID arguments
    are then ignored.
    """

    def task(spool: Path, sop_class: str, sop_instance: str) -> Verdict:
        try:
            result = verify_file(spool, options)
        except Exception as e:  # a verifier bug must quarantine, not crash the worker
            result = FileResult(str(spool), error=f"internal error: {type(e).__name__}: {e}")
        ids: dict[str, str] = {}
        if result.error is None:
            if meta_request:
                meta = result.identity
                sop_class = meta.meta_sop_class_uid or ""
                sop_instance = meta.meta_sop_instance_uid or ""
            result, ids = _check_request_uids(sop_class, sop_instance, result)
        ok = accepted(result)
        status, comment = (STATUS_SUCCESS, "") if ok else refusal(result)
        return Verdict(
            indication=result.indication.value,
            accepted=ok,
            status=status,
            comment=comment,
            signatures=tuple(_signature_summary(s) for s in result.signatures),
            findings=_finding_codes(result),
            report=result.to_json(),
            error=result.error,
            ids=ids,
        )

    return task


def verifier_pool(
    options: VerifyOptions,
    workers: int,
    verify_timeout: float,
    worker_memory_mib: int,
    *,
    meta_request: bool = False,
) -> VerifierPool:
    """The pool of :func:`verify_task` workers (each bounded by ``verify_timeout`` seconds and
    ``worker_memory_mib`` MiB, 0: unbounded) of a storage node or verifier service."""
    return VerifierPool(
        verify_task(options, meta_request=meta_request),
        size=workers,
        timeout=verify_timeout,
        wait=verify_timeout,
        memory=worker_memory_mib << 20 if worker_memory_mib else None,
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _status_dataset(status: int, comment: str | None = None) -> Dataset:
    ds = Dataset()
    ds.Status = status
    if comment:
        ds.ErrorComment = comment[:64]
    return ds


@dataclass
class _Plan:
    """Where a verified object goes."""

    path: Path
    report: Path | None = None
    duplicate: bool = False
    #: With a folder layout: the object's link in the UID index (made before ``path``).
    claim: Path | None = None
    #: A stored object to put in the forwarding queue.
    forward: bool = False
    #: keep-both: the version number of the new copy (the first one has none).
    version: int | None = None
    #: Passed, but another object holds the UID (reject policy): quarantined instead.
    refused: bool = False


class ReceiveServer:
    """The verifying storage node. ``start()``, then ``stop()`` (from any thread).

    ``on_record`` is called (in the association's thread) with every :class:`AuditRecord`
    after the response status is decided and the audit line is written.
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        on_record: Callable[[AuditRecord], None] | None = None,
        on_forward: Callable[[ForwardEvent], None] | None = None,
    ) -> None:
        if config.store.resolve() == config.quarantine.resolve():
            raise NetError("the store and the quarantine must be different directories")
        if config.forward_tls and config.tls is None:
            raise NetError("forwarding over TLS needs the TLS options")
        self.config = config
        self.on_record = on_record
        self.on_forward = on_forward
        self.counts: collections.Counter[str] = collections.Counter()
        self._server: ThreadedAssociationServer | None = None
        self._ae: AE | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._stopping = False
        self._store_lock = threading.Lock()
        self._staging = config.store / STAGING_DIR
        self._audit = AuditLog(config.audit_path, mode=config.file_mode)
        self._pool = verifier_pool(
            config.verify, config.workers, config.verify_timeout, config.worker_memory_mib
        )
        self._limits = IntakeLimits(
            max_object=config.max_object_size,
            max_pdu=config.max_pdu,
            idle_timeout=config.idle_timeout,
            association_timeout=config.association_timeout,
        )
        self._connections: dict[int, Connection] = {}
        self._watchdog = Watchdog(self._live_connections, self._on_kill)
        self._dir_mode = directory_mode(config.file_mode)
        self._uid_index = config.store / UID_INDEX_DIR
        self._queue: ForwardQueue | None = None

    # -- life cycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port actually listened on (useful with ``port=0``)."""
        if self._server is None:
            raise NetError("the server is not running")
        return int(self._server.server_address[1])

    @property
    def audit_hash(self) -> str:
        """Chain hash of the last audit line written."""
        return self._audit.last_hash

    def start(self) -> None:
        """Create the directories, open the audit log, fork the verifiers and start listening
        (non-blocking)."""
        cfg = self.config
        ssl_context = server_context(cfg.tls) if cfg.tls is not None else None
        directories = [cfg.store, cfg.quarantine, cfg.audit_path.parent, self._staging]
        if cfg.layout != "flat":
            directories.append(self._uid_index)
        for directory in directories:
            try:
                make_directory(directory, self._dir_mode)
            except OSError as e:
                raise NetError(f"cannot create {directory}: {e.strerror or e}") from None
        for directory in (cfg.store, cfg.quarantine, self._staging):
            if not os.access(directory, os.W_OK | os.X_OK):
                raise NetError(f"cannot write to {directory}")
            _remove_stale_temporaries(directory)
        if cfg.forward:
            self._queue = self._forward_queue()
        try:
            self._audit.open()
        except AuditLogError as e:
            raise NetError(str(e)) from None
        try:
            ae = AE(ae_title=cfg.ae_title)
        except ValueError as e:
            self._audit.close()
            raise NetError(f"bad AE title {cfg.ae_title!r}: {e}") from None
        ae.maximum_associations = cfg.max_associations
        ae.maximum_pdu_size = cfg.max_pdu
        ae.network_timeout = cfg.network_timeout
        # pynetdicom waits this long for the A-ASSOCIATE-RQ of a new connection, even after
        # the watchdog closed it: the same bound as the idle timeout frees the slot with it
        if cfg.idle_timeout:
            ae.acse_timeout = cfg.idle_timeout
        ae.require_calling_aet = list(cfg.allow_calling_ae)
        ae.require_called_aet = cfg.require_called_ae
        for uid in STORAGE_SOP_CLASSES:
            ae.add_supported_context(uid, list(TRANSFER_SYNTAXES))
        ae.add_supported_context(VERIFICATION_SOP_CLASS, list(TRANSFER_SYNTAXES))
        handlers: list[Any] = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_SOP_EXTENDED, self._on_extended_negotiation),
            (evt.EVT_CONN_OPEN, self._on_open),
            (evt.EVT_CONN_CLOSE, self._on_close),
        ]
        self._pool.start()  # fork before pynetdicom starts its threads
        try:
            server = ae.start_server(
                (cfg.host, cfg.port), block=False, evt_handlers=handlers, ssl_context=ssl_context
            )
        except OSError as e:
            self._pool.close()
            self._audit.close()
            raise NetError(f"cannot listen on {cfg.host}:{cfg.port}: {e.strerror or e}") from None
        assert server is not None
        self._ae, self._server = ae, server
        self._watchdog.start()
        if self._queue is not None:
            self._queue.start()

    def _forward_queue(self) -> ForwardQueue:
        cfg = self.config
        tls = client_context(cfg.tls) if cfg.forward_tls and cfg.tls is not None else None
        queue = ForwardQueue(
            cfg.queue_path, cfg.forward, calling_ae=cfg.ae_title, file_mode=cfg.file_mode,
            dir_mode=self._dir_mode, tls=tls, retry_max=cfg.forward_retry_max,
            on_event=self._on_forward_event,
        )  # fmt: skip
        try:
            queue.open()
        except OSError as e:
            raise NetError(f"cannot create the forwarding queue: {e.strerror or e}") from None
        return queue

    def pending_forwards(self) -> dict[str, int]:
        """Objects waiting in the forwarding queue, per target."""
        queue = self._queue
        return {} if queue is None else {str(t): len(queue.pending(t)) for t in queue.targets}

    def _on_forward_event(self, event: ForwardEvent) -> None:
        if event.action != "forward-retry":
            with contextlib.suppress(OSError):
                self._audit.append(event_json(event))
        if self.on_forward is not None:
            with contextlib.suppress(Exception):
                self.on_forward(event)

    def stop(self, grace: float = 10.0) -> None:
        """Stop listening, answer new requests with 0xA700, let objects being handled finish
        (up to ``grace`` seconds), abort the remaining associations and close the audit log."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        server = self._server
        if server is not None:
            server.shutdown()
        deadline = time.monotonic() + grace
        with self._idle:
            while self._in_flight and time.monotonic() < deadline:
                self._idle.wait(max(0.0, deadline - time.monotonic()))
        self._watchdog.stop()
        if server is not None:
            for assoc in server.active_associations:
                assoc.abort()
            for assoc in server.active_associations:
                assoc.join(timeout=max(0.1, deadline - time.monotonic()))
        if self._ae is not None:
            self._ae.shutdown()
        with self._idle:  # a handler still running after the grace keeps the log open
            while self._in_flight and time.monotonic() < deadline + 5:
                self._idle.wait(0.1)
        if self._queue is not None:
            self._queue.stop(timeout=max(1.0, deadline - time.monotonic()))
        self._pool.close()
        self._audit.close()

    # -- connections ------------------------------------------------------------------------

    def _on_open(self, event: Event) -> None:
        assoc = event.assoc
        _no_delay(event)
        conn = Connection(
            assoc, self._staging, self.config.file_mode, self._limits, self._head, self._on_drop
        )
        conn.install()
        with self._lock:
            self._connections[id(assoc)] = conn

    def _on_close(self, event: Event) -> None:
        with self._lock:
            conn = self._connections.pop(id(event.assoc), None)
        if conn is not None:
            conn.close()

    def _connection(self, assoc: Any) -> Connection | None:
        with self._lock:
            return self._connections.get(id(assoc))

    def _live_connections(self) -> list[Connection]:
        with self._lock:
            return list(self._connections.values())

    def _head(self, sop_class: str, sop_instance: str, ts: str, source_ae: str) -> bytes:
        return file_meta_bytes(
            sop_class=sop_class, sop_instance=sop_instance, transfer_syntax=ts, source_ae=source_ae
        )

    def _connection_record(self, conn: Connection, action: str, reason: str) -> AuditRecord:
        assoc = conn.assoc
        calling = ""
        with contextlib.suppress(Exception):
            calling = str(assoc.requestor.ae_title or "").strip()
        return AuditRecord(
            time=_now(), calling_ae=calling, called_ae="", peer=_peer(assoc), sop_class_uid="",
            sop_instance_uid="", transfer_syntax="", size=0, indication="NOT_VERIFIED",
            action=action, status=STATUS_OUT_OF_RESOURCES, error=reason,
        )  # fmt: skip

    def _on_drop(self, conn: Connection, reason: str, spool: Spool | None) -> None:
        """An object not received whole (too big, connection ended): audited, never kept."""
        record = self._connection_record(conn, "dropped", reason)
        if spool is not None:
            record = dataclasses.replace(
                record,
                sop_class_uid=spool.sop_class,
                sop_instance_uid=spool.sop_instance,
                transfer_syntax=spool.transfer_syntax,
                size=spool.size,
            )
        self._report(record)

    def _on_kill(self, conn: Connection, reason: str) -> None:
        self._report(self._connection_record(conn, "aborted", reason))

    def _report(self, record: AuditRecord) -> None:
        with contextlib.suppress(OSError):
            self._audit.append(record.to_json())
        self._counted(record)

    def _counted(self, record: AuditRecord) -> None:
        with self._lock:
            self.counts[record.action] += 1
        if self.on_record is not None:
            with contextlib.suppress(Exception):
                self.on_record(record)

    # -- event handlers ---------------------------------------------------------------------

    def _on_extended_negotiation(self, event: Event) -> dict[str, bytes]:
        app_info: dict[str, bytes] = getattr(event, "app_info", {})
        return {uid: SCP_APPLICATION_INFO for uid in app_info if uid in STORAGE_SOP_CLASSES}

    def _on_store(self, event: Event) -> Dataset:
        started = time.perf_counter()
        conn = self._connection(event.assoc)
        spool = conn.take() if conn is not None else None
        if conn is not None and spool is None:
            conn.begin()
        with self._lock:
            stopping = self._stopping
            if not stopping:
                self._in_flight += 1
        try:
            if stopping:
                record = dataclasses.replace(_bare_record(event), error="server shutting down")
                return self._finish(record, record.error, started)
            try:
                return self._handle(event, spool, started)
            except Exception as e:  # never let an object be acknowledged by accident
                error = f"internal error: {type(e).__name__}: {e}"
                record = dataclasses.replace(
                    _bare_record(event), status=STATUS_PROCESSING_FAILURE, error=error
                )
                return self._finish(record, f"internal error: {type(e).__name__}", started)
            finally:
                with self._idle:
                    self._in_flight -= 1
                    self._idle.notify_all()
        finally:
            if spool is not None:
                spool.discard()
            if conn is not None:
                conn.answered()

    def _handle(self, event: Event, spool: Spool | None, started: float) -> Dataset:
        record = _bare_record(event)
        comment: str | None = "cannot store the object"
        try:
            if spool is None:  # a data set that came without fragments (empty)
                spool = self._spool_from_event(event, record)
            spool.finish()
        except OSError as e:
            record = dataclasses.replace(record, error=f"cannot store: {e.strerror or e}")
            return self._finish(record, comment, started)
        return self.admit(spool, record, started)

    def admit(
        self, spool: Spool, record: AuditRecord, started: float, *, reject: bool | None = None
    ) -> Dataset:
        """Verify a finished spool, audit, keep it (store or quarantine), count; the response
        status. ``reject`` (default: the configuration's ``reject_invalid``) answers objects
        that did not pass with their failure status. Also used by the STOW-RS endpoint."""
        comment: str | None = "cannot store the object"
        if reject is None:
            reject = self.config.reject_invalid
        record = dataclasses.replace(
            record, size=spool.size, sha256=spool.sha256, content_sha256=spool.content
        )
        try:
            verdict = self._pool.verify(spool.path, record.sop_class_uid, record.sop_instance_uid)
        except PoolBusyError as e:
            return self._finish(
                dataclasses.replace(record, error=str(e)), "busy: try again later", started
            )
        status = verdict.status
        if not verdict.accepted and status == STATUS_SUCCESS:  # stopped, crashed
            status = STATUS_INDETERMINATE
        error = verdict.error.replace(str(spool.path), spool.path.name) if verdict.error else None
        action, code, comment = "quarantined", STATUS_SUCCESS, None
        if not verdict.accepted and reject:
            action, code, comment = "refused", status, verdict.comment
        if verdict.accepted:
            action = "stored"
        record = dataclasses.replace(
            record,
            indication=verdict.indication,
            signatures=verdict.signatures,
            findings=verdict.findings,
            error=error or record.error,
            action=action,
            status=code,
        )
        with self._store_lock:  # decide the name, audit, place: one object at a time
            plan = self._plan(record, spool, verdict.accepted, verdict.ids)
            if plan.refused:
                findings = (*record.findings, DUPLICATE_FINDING)
                record = dataclasses.replace(record, action="refused", findings=findings)
            if plan.duplicate:
                record, comment = (
                    dataclasses.replace(record, action="duplicate", status=STATUS_SUCCESS),
                    None,
                )
            elif verdict.accepted and record.action != "stored":  # reject policy
                record = dataclasses.replace(record, status=STATUS_DUPLICATE)
                comment = "duplicate SOP instance, other bytes"
            record = dataclasses.replace(
                record,
                path=str(plan.path),
                report=str(plan.report) if plan.report else None,
                version=plan.version,
                seconds=time.perf_counter() - started,
            )
            try:
                self._audit.append(record.to_json())
            except OSError as e:  # not durable: not kept, not acknowledged
                record = _not_kept(record, f"audit log: {e.strerror or e}")
                return self._answer(record, "cannot write the audit log", started)
            if not plan.duplicate:
                try:
                    self._keep(spool, plan, record, verdict)
                except OSError as e:
                    record = _not_kept(record, f"cannot store: {e.strerror or e}")
                    self._report_failure(record, started)
                    return _status_dataset(record.status, "cannot store the object")
        return self._answer(record, comment, started)

    def _spool_from_event(self, event: Event, record: AuditRecord) -> Spool:
        spool = Spool.create(
            self._staging,
            self._head(record.sop_class_uid, record.sop_instance_uid, record.transfer_syntax,
                       record.calling_ae),
            record.sop_class_uid, record.sop_instance_uid, record.transfer_syntax,
            self.config.file_mode,
        )  # fmt: skip
        try:
            spool.write(_received_bytes(event))
        except BaseException:
            spool.discard()
            raise
        return spool

    def _plan(self, record: AuditRecord, spool: Spool, ok: bool, ids: Mapping[str, str]) -> _Plan:
        """The target name: the store (unless a duplicate policy says otherwise) for objects
        that passed, a new quarantine name otherwise. Called under the store lock."""
        stem = record.sop_instance_uid
        if not (_UID_RE.fullmatch(stem) and len(stem) <= 64):  # fullmatch: "$" admits a "\n"
            stem = "unnamed-" + uuid.uuid4().hex[:16]
        if ok:
            flat = self.config.layout == "flat"
            index = self.config.store if flat else self._uid_index
            versions = _versions(index, stem)
            for existing in versions:
                if content_digest(existing) == spool.content:
                    return _Plan(existing, duplicate=True)
            claim: Path | None = None
            if not versions or self.config.duplicates == "keep-both":
                claim = _free_version(index, stem)
            if claim is not None:
                version, forward = len(versions) or None, bool(self._queue)
                if flat:
                    return _Plan(claim, forward=forward, version=version)
                directory = object_directory(self.config.store, self.config.layout, ids)
                return _Plan(directory / claim.name, claim=claim, forward=forward, version=version)
        path = _free_version(self.config.quarantine, stem)
        return _Plan(path, report=path.with_suffix(".json"), refused=ok)

    def _keep(self, spool: Spool, plan: _Plan, record: AuditRecord, verdict: Verdict) -> None:
        """Report (quarantine), forwarding queue entry, UID claim, then the object itself:
        whatever is in the store is also in the queue."""
        mode = self.config.file_mode
        if plan.report is not None:
            report = {**verdict.report, "path": str(plan.path)}
            if report.get("error"):
                report["error"] = str(report["error"]).replace(str(spool.path), plan.path.name)
            content = {"received": record.to_json(), **report}
            write_new(plan.report, json.dumps(content, indent=2).encode() + b"\n", mode)
        if plan.forward and self._queue is not None:
            self._queue.add(spool.path, record.sop_instance_uid)
        if plan.claim is not None:
            make_directory(plan.path.parent, self._dir_mode)
            link_new(spool.path, plan.claim, mode)
        place(spool.path, plan.path, mode)

    def _report_failure(self, record: AuditRecord, started: float) -> None:
        """The object named by an audit line just written could not be placed: say so in a
        second line (the first stays: the log is append-only)."""
        record = dataclasses.replace(record, seconds=time.perf_counter() - started)
        with contextlib.suppress(OSError):
            self._audit.append(record.to_json())
        self._counted(record)

    def _finish(self, record: AuditRecord, comment: str | None, started: float) -> Dataset:
        """Audit a request that was not verified or kept, count, report; the response."""
        record = dataclasses.replace(record, seconds=time.perf_counter() - started)
        try:
            self._audit.append(record.to_json())
        except OSError as e:
            record = dataclasses.replace(
                record, error=record.error or f"audit log: {e.strerror or e}"
            )
        return self._answer(record, comment, started)

    def _answer(self, record: AuditRecord, comment: str | None, started: float) -> Dataset:
        record = dataclasses.replace(
            record, seconds=record.seconds or time.perf_counter() - started
        )
        self._counted(record)
        return _status_dataset(record.status, comment)


def _not_kept(record: AuditRecord, error: str) -> AuditRecord:
    """The record of an object that was verified but could not be kept durably."""
    return dataclasses.replace(
        record, action="failed", status=STATUS_OUT_OF_RESOURCES, path=None, report=None,
        error=error,
    )  # fmt: skip


def _versions(directory: Path, stem: str) -> list[Path]:
    """``stem.dcm``, ``stem.1.dcm``, ... as long as they exist."""
    found: list[Path] = []
    n = 0
    while True:
        path = directory / (f"{stem}.dcm" if n == 0 else f"{stem}.{n}.dcm")
        if not path.exists():
            return found
        found.append(path)
        n += 1


def _free_version(directory: Path, stem: str) -> Path:
    n = len(_versions(directory, stem))
    return directory / (f"{stem}.dcm" if n == 0 else f"{stem}.{n}.dcm")


def _check_request_uids(
    sop_class: str, sop_instance: str, result: FileResult
) -> tuple[FileResult, dict[str, str]]:
    """The stored file is named after the request's SOP Instance UID: a data set that names
    another instance (or class), or none, must not pass, or it could replace another object's
    file. The data set's UIDs are those of the verified read (``result.identity``): a second
    parse could read other bytes (pydicom switches VR when a polyglot invites it). Returns the
    result (with UID_MISMATCH when they differ) and the data set's IDs for the folder layout
    and the Orthanc ID (PatientID, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID)."""
    ident = result.identity
    found = (ident.sop_class_uid or "", ident.sop_instance_uid or "")
    if not found[1] or found != (sop_class, sop_instance):
        mismatch = Finding(
            UID_MISMATCH,
            f"the data set is {found[0] or '-'} / {found[1] or '-'} but the request "
            f"named {sop_class or '-'} / {sop_instance or '-'}",
        )
        result = with_findings(result, mismatch)
    return result, {
        "PatientID": ident.patient_id_text or "",
        "StudyInstanceUID": ident.study_instance_uid or "",
        "SeriesInstanceUID": ident.series_instance_uid or "",
        "SOPInstanceUID": found[1],
    }


def _no_delay(event: Event) -> None:
    """TCP_NODELAY on accepted connections (responses are small, single-PDU messages)."""
    sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _called_ae(event: Event) -> str:
    """The called AE title as the requestor sent it (pynetdicom reports its own otherwise)."""
    primitive = getattr(event.assoc.requestor, "primitive", None)
    called = getattr(primitive, "called_ae_title", None)
    return str(called if called is not None else event.assoc.acceptor.ae_title).strip()


def _signature_summary(sig: SignatureResult) -> dict[str, Any]:
    return {
        "uid": sig.uid,
        "location": sig.location,
        "signer": sig.signer,
        "indication": sig.indication.value,
        # what was and wasn't checked for revocation, as ``dsig verify`` prints it
        "revocation": sig.trust.revocation_line(),
    }


def _finding_codes(result: FileResult) -> tuple[str, ...]:
    codes = [f.code for f in result.findings]
    for sig in result.signatures:
        codes += [f.code for f in sig.findings]
        codes += [f.code for f in sig.trust.findings]
    return tuple(dict.fromkeys(codes))


def _remove_stale_temporaries(directory: Path) -> None:
    """Temporary files of writes interrupted by a crash (never acknowledged objects)."""
    limit = time.time() - _STALE_TMP_SECONDS
    for tmp in directory.glob(f"*{_TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            if tmp.stat().st_mtime < limit:
                tmp.unlink()


__all__ = [
    "DUPLICATE_POLICIES",
    "SCP_APPLICATION_INFO",
    "STORAGE_SOP_CLASSES",
    "TRANSFER_SYNTAXES",
    "AuditRecord",
    "ReceiveServer",
    "ServerConfig",
    "accepted",
    "file_meta_bytes",
    "refusal",
    "verifier_pool",
    "verify_task",
]
