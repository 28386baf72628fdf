"""The persistent verifier the Orthanc plugin talks to (``dsig orthanc verifier``).

Orthanc's embedded interpreter is Debian's Python; dsig and its compiled dependencies live
in their own virtualenv. Rather than loading them into Orthanc's process, the plugin starts
this service once and sends it every incoming instance over a Unix socket. The service
verifies in the storage node's worker pool (:class:`dsig.net.pool.VerifierPool`: forked,
time- and memory-bounded workers), decides, quarantines what does not pass and appends a
hash-chained audit line for every verdict.

Protocol, per request on a connection that carries any number of them: a 4-byte big-endian
length and a JSON header (``origin``, ``remote_aet``, ...), a 4-byte length and the DICOM
file; the answer is a 4-byte length and a JSON verdict (see :meth:`VerifierService.judge`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import re
import socketserver
import struct
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsig.net import NetError
from dsig.net.audit import AuditLog, AuditLogError
from dsig.net.pool import PoolBusyError, Verdict
from dsig.net.scp import (
    STATUS_INDETERMINATE,
    STATUS_OUT_OF_RESOURCES,
    STATUS_REQUIREMENT,
    verifier_pool,
)
from dsig.net.storage import DEFAULT_FILE_MODE, make_directory, write_new
from dsig.operations.verifier import VerifyOptions

_LENGTH = struct.Struct(">I")
_UID_RE = re.compile(r"[0-9]+(\.[0-9]+)*")
#: Largest JSON header of a request.
MAX_HEADER = 1 << 16
#: The identifiers Orthanc names an instance by, in ``Verdict.ids``.
_IDENTITY = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


@dataclass(frozen=True)
class ServiceConfig:
    """What the verifier service accepts and where it writes."""

    socket: Path
    verify: VerifyOptions
    #: Indications that pass; empty: exactly what ``dsig verify`` passes (exit 0).
    accept: tuple[str, ...] = ()
    quarantine: Path | None = None
    audit_log: Path | None = None
    workers: int = 2
    verify_timeout: float = 30.0
    worker_memory_mib: int = 2048
    max_object_size: int = 1 << 30


def orthanc_instance_id(patient: str, study: str, series: str, instance: str) -> str:
    """Orthanc's identifier of an instance: SHA-1 of the four identifiers, in 5 groups."""
    digest = hashlib.sha1(f"{patient}|{study}|{series}|{instance}".encode()).hexdigest()  # noqa: S324 - Orthanc's naming, not security
    return "-".join(digest[i : i + 8] for i in range(0, 40, 8))


class VerifierService:
    """Verifies DICOM files sent over a Unix socket. ``start()``, then ``stop()``."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self._pool = verifier_pool(  # the File Meta's UIDs are the request the data set matches
            config.verify, config.workers, config.verify_timeout, config.worker_memory_mib,
            meta_request=True,
        )  # fmt: skip
        self._audit = AuditLog(config.audit_log) if config.audit_log else None
        self._spool_dir: tempfile.TemporaryDirectory[str] | None = None
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the audit log, fork the verifiers, listen on the socket (non-blocking)."""
        cfg = self.config
        try:
            if cfg.quarantine is not None:
                make_directory(cfg.quarantine, 0o700)
            if self._audit is not None:
                self._audit.open()
        except (OSError, AuditLogError) as e:
            raise NetError(str(e) if isinstance(e, AuditLogError) else f"{e}") from None
        self._spool_dir = tempfile.TemporaryDirectory(prefix="dsig-orthanc-")
        self._pool.start()  # fork before any thread starts
        cfg.socket.unlink(missing_ok=True)
        service = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                service._serve_connection(self.rfile, self.wfile)

        old_umask = os.umask(0o077)  # only Orthanc's user may talk to the verifier
        try:
            server = socketserver.ThreadingUnixStreamServer(str(cfg.socket), Handler)
        except OSError as e:
            self._pool.close()
            raise NetError(f"cannot listen on {cfg.socket}: {e.strerror or e}") from None
        finally:
            os.umask(old_umask)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="dsig-orthanc")
        self._thread.start()

    def stop(self) -> None:
        """Stop listening, close the workers and the audit log."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._pool.close()
        if self._audit is not None:
            self._audit.close()
        if self._spool_dir is not None:
            self._spool_dir.cleanup()
        self.config.socket.unlink(missing_ok=True)

    def _serve_connection(self, rfile: io.BufferedIOBase, wfile: io.BufferedIOBase) -> None:
        while True:
            try:
                header_bytes = _read_frame(rfile, MAX_HEADER)
                if header_bytes is None:
                    return
                data = _read_frame(rfile, self.config.max_object_size)
                if data is None:
                    return
                header = json.loads(header_bytes)
                if not isinstance(header, dict):
                    raise ValueError("the header is not a JSON object")
            except (ValueError, OSError):
                return  # a broken client: drop the connection, the plugin fails closed
            answer = json.dumps(self.judge(data, header)).encode()
            try:
                wfile.write(_LENGTH.pack(len(answer)) + answer)
                wfile.flush()
            except OSError:
                return

    def judge(self, data: bytes, header: dict[str, Any]) -> dict[str, Any]:
        """The verdict on one DICOM file: ``passed``, ``status`` (0 or the DIMSE status to
        refuse with), ``indication``, ``comment``, ``findings``, ``sop_instance_uid``,
        ``orthanc_id``, ``sha256`` and ``report`` (``dsig verify --json``'s record)."""
        started = time.perf_counter()
        sha256 = hashlib.sha256(data).hexdigest()
        # the identity is the verified read's, taken in the worker (within its time and
        # memory bounds): none when the object could not be read or verified
        verdict = self._verify(data)
        patient, study, series, sop = (verdict.ids.get(k, "") for k in _IDENTITY)
        passed = (
            verdict.indication in self.config.accept if self.config.accept else verdict.accepted
        )
        status = 0 if passed else (verdict.status or STATUS_INDETERMINATE)
        comment = "" if passed else verdict.comment
        if not passed and verdict.accepted:  # refused only by "Accept"
            status, comment = STATUS_REQUIREMENT, f"{verdict.indication} is not accepted"
        answer: dict[str, Any] = {
            "passed": passed,
            "status": status,
            "indication": verdict.indication,
            "comment": comment,
            "findings": list(verdict.findings),
            "signatures": list(verdict.signatures),
            "sop_instance_uid": sop,
            "orthanc_id": orthanc_instance_id(patient, study, series, sop) if sop else None,
            "sha256": sha256,
            "report": dict(verdict.report),
            "error": verdict.error,
        }
        quarantined = None
        if not passed and self.config.quarantine is not None:
            quarantined = self._quarantine(data, sop, answer)
        self._log(answer, header, quarantined, time.perf_counter() - started, len(data))
        return answer

    def _verify(self, data: bytes) -> Verdict:
        assert self._spool_dir is not None
        path = Path(self._spool_dir.name) / f"{uuid.uuid4().hex}.dcm"
        try:
            path.write_bytes(data)
            return self._pool.verify(path, "", "")  # the request: the file's own meta
        except (OSError, PoolBusyError) as e:
            reason = f"not verified: {getattr(e, 'strerror', None) or e}"
            return Verdict("ERROR", False, STATUS_OUT_OF_RESOURCES, reason[:64], error=reason)
        finally:
            path.unlink(missing_ok=True)

    def _quarantine(self, data: bytes, sop_instance: str, answer: dict[str, Any]) -> str | None:
        assert self.config.quarantine is not None
        # the data set's UID names the file only when it is a UID ("../x" would leave the folder)
        named = _UID_RE.fullmatch(sop_instance) and len(sop_instance) <= 64
        stem = f"{sop_instance if named else 'unnamed'}.{uuid.uuid4().hex[:12]}"
        target = self.config.quarantine / f"{stem}.dcm"
        try:
            write_new(target, data, DEFAULT_FILE_MODE)
            report = json.dumps({**answer, "path": str(target)}, indent=2).encode() + b"\n"
            write_new(target.with_suffix(".json"), report, DEFAULT_FILE_MODE)
        except OSError as e:
            answer["error"] = answer["error"] or f"cannot quarantine: {e.strerror or e}"
            return None
        return str(target)

    def _log(
        self,
        answer: dict[str, Any],
        header: dict[str, Any],
        quarantined: str | None,
        seconds: float,
        size: int,
    ) -> None:
        if self._audit is None:
            return
        entry = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "origin": str(header.get("origin", "")),
            "remote_aet": str(header.get("remote_aet", "")),
            "remote_ip": str(header.get("remote_ip", "")),
            "sop_instance_uid": answer["sop_instance_uid"],
            "orthanc_id": answer["orthanc_id"],
            "size": size,
            "sha256": answer["sha256"],
            "indication": answer["indication"],
            "action": "accepted" if answer["passed"] else "refused",
            "status": f"0x{answer['status']:04X}",
            "findings": answer["findings"],
            "quarantine": quarantined,
            "error": answer["error"],
            "seconds": round(seconds, 4),
        }
        with contextlib.suppress(OSError):  # the log serializes appends itself
            self._audit.append(entry)


def _read_frame(fp: io.BufferedIOBase, limit: int) -> bytes | None:
    head = fp.read(_LENGTH.size)
    if not head:
        return None
    if len(head) < _LENGTH.size:
        raise ValueError("truncated frame")
    (length,) = _LENGTH.unpack(head)
    if length > limit:
        raise ValueError(f"a frame of {length} bytes (limit {limit})")
    data = fp.read(length)
    if len(data) < length:
        raise ValueError("truncated frame")
    return data


def plugin_path() -> Path:
    """The Orthanc plugin script (for Orthanc's ``PythonScript`` setting)."""
    return Path(__file__).with_name("plugin") / "dsig_orthanc.py"


__all__ = ["ServiceConfig", "VerifierService", "orthanc_instance_id", "plugin_path"]
