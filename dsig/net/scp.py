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
import datetime as dt
import errno
import io
import json
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from cryptography import x509
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID
from pynetdicom import AE, evt
from pynetdicom._globals import ALL_TRANSFER_SYNTAXES
from pynetdicom.events import Event
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.transport import ThreadedAssociationServer

from dsig.errors import DsigError
from dsig.net import NetError
from dsig.report import FileResult, Finding, Indication, SignatureResult, exit_code
from dsig.verifier import VerifyOptions, verify_file
from dsig.writer import atomic_output
from pki.certs import fingerprint
from pki.chain import evaluate_chain
from pki.policy import TrustPolicy
from pki.results import TrustResult

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

STORAGE_SOP_CLASSES: tuple[str, ...] = tuple(
    str(cx.abstract_syntax) for cx in AllStoragePresentationContexts
)

VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"
_SOP_CLASS, _SOP_INSTANCE = 0x00080016, 0x00080018

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

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_TMP_SUFFIX = ".dsig-tmp"
#: Received objects are spooled here (inside the store) while they are verified.
STAGING_DIR = ".dsig-incoming"
_STALE_TMP_SECONDS = 300


class CachingEvaluator:
    """A thread-safe :class:`~pki.results.TrustEvaluator` for a long-running server.

    ``pki.PolicyEvaluator`` caches per exact validation moment, which never repeats when the
    moment is "now", so its cache would grow without bound. This one keeps at most
    ``max_entries`` results (least recently used are dropped) and reuses a result for the same
    certificate while the requested moment is less than ``ttl`` seconds after the moment it was
    computed for. ``ttl=0`` disables the reuse.
    """

    def __init__(self, policy: TrustPolicy, *, ttl: float = 60.0, max_entries: int = 1024) -> None:
        self.policy = policy
        self.ttl = ttl
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._cache: collections.OrderedDict[
            tuple[str, frozenset[str], bool], tuple[dt.datetime, TrustResult]
        ] = collections.OrderedDict()

    def evaluate(
        self,
        leaf: x509.Certificate,
        *,
        at: dt.datetime,
        extra_certs: Sequence[x509.Certificate] = (),
        certified_time: bool = False,
    ) -> TrustResult:
        """Validate ``leaf`` at ``at`` (see :func:`pki.evaluate_chain`), reusing recent results."""
        key = (fingerprint(leaf), frozenset(map(fingerprint, extra_certs)), certified_time)
        if self.ttl > 0:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None and 0 <= (at - hit[0]).total_seconds() < self.ttl:
                    self._cache.move_to_end(key)
                    return hit[1]
        result = evaluate_chain(
            leaf, self.policy, at=at, extra_certs=extra_certs, certified_time=certified_time
        )
        if self.ttl > 0:
            with self._lock:
                self._cache[key] = (at, result)
                self._cache.move_to_end(key)
                while len(self._cache) > self.max_entries:
                    self._cache.popitem(last=False)
        return result


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
    #: Seconds without network traffic before an association is aborted.
    network_timeout: float = 60.0

    @property
    def audit_path(self) -> Path:
        """Where audit lines go."""
        return self.audit_log if self.audit_log is not None else self.store / "dsig-audit.jsonl"


@dataclass
class AuditRecord:
    """One received object: who sent what, the verdict, where it went, what was answered."""

    time: str
    calling_ae: str
    called_ae: str
    peer: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    size: int
    indication: str
    #: "stored", "quarantined", "refused" (quarantined and answered with a failure) or "failed"
    action: str
    status: int
    path: str | None = None
    report: str | None = None
    error: str | None = None
    signatures: list[dict[str, Any]] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The audit-log line (one JSON object)."""
        return {
            "time": self.time,
            "calling_ae": self.calling_ae,
            "called_ae": self.called_ae,
            "peer": self.peer,
            "sop_class_uid": self.sop_class_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "transfer_syntax": self.transfer_syntax,
            "size": self.size,
            "indication": self.indication,
            "action": self.action,
            "status": f"0x{self.status:04X}",
            "path": self.path,
            "report": self.report,
            "error": self.error,
            "signatures": self.signatures,
            "findings": self.findings,
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


def _bare_record(event: Event) -> AuditRecord:
    """What is known of a request before looking at its data set (never raises)."""
    request = event.request
    requestor = event.assoc.requestor
    try:
        peer = f"{requestor.address}:{requestor.port}"
    except ValueError:
        peer = ""
    try:
        transfer_syntax = str(event.context.transfer_syntax)
    except Exception:
        transfer_syntax = ""
    return AuditRecord(
        time=_now(),
        calling_ae=str(requestor.ae_title or "").strip(),
        called_ae=_called_ae(event),
        peer=peer,
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
    """Failure status and error comment (at most 64 characters) for an object that failed."""
    codes = [f.code for f in result.findings if f.severity == "error"]
    for sig in result.signatures:
        codes += [f.code for f in sig.findings if f.severity == "error"]
        codes += [f.code for f in sig.trust.findings]
    if result.indication is Indication.ERROR:
        status, text = STATUS_UNREADABLE, f"unreadable: {result.error or ''}"
    elif any(f.code == UID_MISMATCH for f in result.findings):
        status, text = STATUS_MISMATCH, "data set UIDs differ from the request"
    elif any(s.indication is Indication.INVALID for s in result.signatures):
        status, text = STATUS_INVALID, "signature invalid: " + ",".join(dict.fromkeys(codes))
    elif any(f.severity == "error" for f in result.findings):
        status, text = (
            STATUS_REQUIREMENT,
            "requirement not met: "
            + ",".join(f.code for f in result.findings if f.severity == "error"),
        )
    else:
        status, text = (
            STATUS_INDETERMINATE,
            "signature indeterminate: " + ",".join(dict.fromkeys(codes)),
        )
    return status, text[:64]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _status_dataset(status: int, comment: str | None = None) -> Dataset:
    ds = Dataset()
    ds.Status = status
    if comment:
        ds.ErrorComment = comment[:64]
    return ds


class ReceiveServer:
    """The verifying storage node. ``start()``, then ``stop()`` (from any thread).

    ``on_record`` is called (in the association's thread) with every :class:`AuditRecord`
    after the response status is decided and the audit line is written.
    """

    def __init__(
        self, config: ServerConfig, *, on_record: Callable[[AuditRecord], None] | None = None
    ) -> None:
        if config.store.resolve() == config.quarantine.resolve():
            raise NetError("the store and the quarantine must be different directories")
        self.config = config
        self.on_record = on_record
        self.counts: collections.Counter[str] = collections.Counter()
        self._server: ThreadedAssociationServer | None = None
        self._ae: AE | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._stopping = False
        self._reserved: set[Path] = set()
        self._audit_lock = threading.Lock()
        self._audit_fd: int | None = None
        self._staging = config.store / STAGING_DIR

    # -- life cycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port actually listened on (useful with ``port=0``)."""
        if self._server is None:
            raise NetError("the server is not running")
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Create the directories, open the audit log and start listening (non-blocking)."""
        cfg = self.config
        for directory in (cfg.store, cfg.quarantine, cfg.audit_path.parent, self._staging):
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise NetError(f"cannot create {directory}: {e.strerror or e}") from None
        for directory in (cfg.store, cfg.quarantine, self._staging):
            if not os.access(directory, os.W_OK | os.X_OK):
                raise NetError(f"cannot write to {directory}")
            _remove_stale_temporaries(directory)
        try:
            self._audit_fd = os.open(
                cfg.audit_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
            )
        except OSError as e:
            raise NetError(
                f"cannot open the audit log {cfg.audit_path}: {e.strerror or e}"
            ) from None
        try:
            ae = AE(ae_title=cfg.ae_title)
        except ValueError as e:
            self._close_audit()
            raise NetError(f"bad AE title {cfg.ae_title!r}: {e}") from None
        ae.maximum_associations = cfg.max_associations
        ae.maximum_pdu_size = cfg.max_pdu
        ae.network_timeout = cfg.network_timeout
        ae.require_calling_aet = list(cfg.allow_calling_ae)
        ae.require_called_aet = cfg.require_called_ae
        for uid in STORAGE_SOP_CLASSES:
            ae.add_supported_context(uid, list(TRANSFER_SYNTAXES))
        ae.add_supported_context(VERIFICATION_SOP_CLASS, list(TRANSFER_SYNTAXES))
        handlers: list[Any] = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_SOP_EXTENDED, self._on_extended_negotiation),
            (evt.EVT_CONN_OPEN, _no_delay),
        ]
        try:
            server = ae.start_server((cfg.host, cfg.port), block=False, evt_handlers=handlers)
        except OSError as e:
            self._close_audit()
            raise NetError(f"cannot listen on {cfg.host}:{cfg.port}: {e.strerror or e}") from None
        assert server is not None
        self._ae, self._server = ae, server

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
        self._close_audit()

    def _close_audit(self) -> None:
        with self._audit_lock:
            if self._audit_fd is not None:
                os.close(self._audit_fd)
                self._audit_fd = None

    # -- event handlers ---------------------------------------------------------------------

    def _on_extended_negotiation(self, event: Event) -> dict[str, bytes]:
        app_info: dict[str, bytes] = getattr(event, "app_info", {})
        return {uid: SCP_APPLICATION_INFO for uid in app_info if uid in STORAGE_SOP_CLASSES}

    def _on_store(self, event: Event) -> Dataset:
        started = time.perf_counter()
        with self._lock:
            stopping = self._stopping
            if not stopping:
                self._in_flight += 1
        if stopping:
            record = _bare_record(event)
            record.error = "server shutting down"
            return self._finish(record, record.error, started)
        try:
            return self._handle(event, started)
        except Exception as e:  # never let an object be acknowledged by accident
            record = _bare_record(event)
            record.status = STATUS_PROCESSING_FAILURE
            record.error = f"internal error: {type(e).__name__}: {e}"
            return self._finish(record, f"internal error: {type(e).__name__}", started)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _handle(self, event: Event, started: float) -> Dataset:
        record = _bare_record(event)
        raw = _received_bytes(event)
        record.size = len(raw)
        head = file_meta_bytes(
            sop_class=record.sop_class_uid,
            sop_instance=record.sop_instance_uid,
            transfer_syntax=record.transfer_syntax,
            source_ae=record.calling_ae,
        )
        comment: str | None = "cannot store the object"
        try:
            spool = self._spool(head, raw)
        except OSError as e:
            record.error = f"cannot store: {e.strerror or e}"
            return self._finish(record, comment, started)
        finally:
            del raw
        try:
            result = self._verify(spool)
            if result.error is None:
                _check_request_uids(spool, record, result)
            ok = accepted(result)
            record.indication = result.indication.value
            record.action, record.status, comment = "stored" if ok else "quarantined", 0, None
            record.signatures = [_signature_summary(s) for s in result.signatures]
            record.findings = _finding_codes(result)
            if not ok and self.config.reject_invalid:
                record.status, comment = refusal(result)
                record.action = "refused"
            try:
                self._keep(spool, result, record, ok)
            except (OSError, DsigError) as e:
                record.action, record.status = "failed", STATUS_OUT_OF_RESOURCES
                record.error = f"cannot store: {getattr(e, 'strerror', None) or e}"
                comment = "cannot store the object"
        finally:
            spool.unlink(missing_ok=True)
        return self._finish(record, comment, started)

    def _finish(self, record: AuditRecord, comment: str | None, started: float) -> Dataset:
        """Audit, count, report; then the response status (failure if the audit failed)."""
        record.seconds = time.perf_counter() - started
        try:
            self._audit(record)
        except OSError as e:
            if record.status == STATUS_SUCCESS:
                record.status = STATUS_OUT_OF_RESOURCES
                comment = "cannot write the audit log"
            record.error = record.error or f"audit log: {e.strerror or e}"
        with self._lock:
            self.counts[record.action] += 1
        if self.on_record is not None:
            with contextlib.suppress(Exception):
                self.on_record(record)
        return _status_dataset(record.status, comment)

    def _spool(self, head: bytes, dataset: bytes | memoryview) -> Path:
        """The received object in a fsync'ed file of the staging directory (same filesystem
        as the store, so that keeping it is a rename)."""
        path = self._staging / f"{uuid.uuid4().hex}.dcm{_TMP_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            with os.fdopen(fd, "wb") as fp:
                fp.write(head)
                fp.write(dataset)
                fp.flush()
                os.fsync(fp.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def _verify(self, spool: Path) -> FileResult:
        """``dsig verify``'s reading and verification of the spooled file."""
        try:
            return verify_file(spool, self.config.verify)
        except Exception as e:  # a verifier bug must quarantine, not crash the handler
            return FileResult(str(spool), error=f"internal error: {type(e).__name__}: {e}")

    def _keep(self, spool: Path, result: FileResult, record: AuditRecord, ok: bool) -> None:
        stem = record.sop_instance_uid
        if not (_UID_RE.match(stem) and len(stem) <= 64):
            stem = "unnamed-" + uuid.uuid4().hex[:16]
        if ok:
            path = self.config.store / f"{stem}.dcm"
        else:
            path = self._reserve(self.config.quarantine, stem)
        try:
            result.path = record.path = str(path)
            if result.error:
                result.error = result.error.replace(str(spool), path.name)
                record.error = result.error
            _move(spool, path)
            if not ok:
                report = path.with_suffix(".json")
                record.report = str(report)
                content = {"received": record.to_json(), **result.to_json()}
                with atomic_output(report) as fp:
                    fp.write(json.dumps(content, indent=2).encode() + b"\n")
        finally:
            with self._lock:
                self._reserved.discard(path)

    def _reserve(self, directory: Path, stem: str) -> Path:
        """A quarantine name not used yet: earlier quarantined copies are evidence, kept."""
        with self._lock:
            n = 0
            while True:
                name = f"{stem}.dcm" if n == 0 else f"{stem}.{n}.dcm"
                path = directory / name
                if path not in self._reserved and not path.exists():
                    self._reserved.add(path)
                    return path
                n += 1

    def _audit(self, record: AuditRecord) -> None:
        line = json.dumps(record.to_json(), separators=(",", ":")).encode() + b"\n"
        with self._audit_lock:
            if self._audit_fd is None:
                raise OSError(0, "the audit log is closed")
            os.write(self._audit_fd, line)
            os.fsync(self._audit_fd)


def _check_request_uids(spool: Path, record: AuditRecord, result: FileResult) -> None:
    """The stored file is named after the request's SOP Instance UID: a data set that names
    another instance (or class) must not pass, or it could replace another object's file."""
    ds: Dataset
    try:
        ds = pydicom.dcmread(
            spool, stop_before_pixels=True, specific_tags=[_SOP_CLASS, _SOP_INSTANCE]
        )
    except Exception:  # unreadable now: the verifier read it, so this should not happen
        ds = Dataset()
    found = (str(ds.get("SOPClassUID", "") or ""), str(ds.get("SOPInstanceUID", "") or ""))
    if found != (record.sop_class_uid, record.sop_instance_uid):
        result.findings.append(
            Finding(
                UID_MISMATCH,
                f"the data set is {found[0] or '-'} / {found[1] or '-'} but the C-STORE request "
                f"named {record.sop_class_uid or '-'} / {record.sop_instance_uid or '-'}",
            )
        )


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
    }


def _finding_codes(result: FileResult) -> list[str]:
    codes = [f.code for f in result.findings]
    for sig in result.signatures:
        codes += [f.code for f in sig.findings]
        codes += [f.code for f in sig.trust.findings]
    return list(dict.fromkeys(codes))


def _move(src: Path, dst: Path) -> None:
    """Rename ``src`` (already fsync'ed) over ``dst`` and fsync the directory; copy atomically
    when they are on different filesystems."""
    try:
        os.replace(src, dst)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        with src.open("rb") as fin, atomic_output(dst) as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
        return
    with contextlib.suppress(OSError):  # best effort, as in dsig.writer.atomic_output
        fd = os.open(dst.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_stale_temporaries(directory: Path) -> None:
    """Temporary files of writes interrupted by a crash (never acknowledged objects)."""
    limit = time.time() - _STALE_TMP_SECONDS
    for tmp in directory.glob(f"*{_TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            if tmp.stat().st_mtime < limit:
                tmp.unlink()


__all__ = [
    "SCP_APPLICATION_INFO",
    "STORAGE_SOP_CLASSES",
    "TRANSFER_SYNTAXES",
    "AuditRecord",
    "CachingEvaluator",
    "ReceiveServer",
    "ServerConfig",
    "accepted",
    "file_meta_bytes",
    "refusal",
]
