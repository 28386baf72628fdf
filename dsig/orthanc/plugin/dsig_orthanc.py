"""dsig's Orthanc plugin: refuse at the door what ``dsig verify`` would not pass.

Runs inside Orthanc's embedded Python (Debian's): standard library only. Point Orthanc's
``PythonScript`` at this file (``dsig orthanc plugin-path`` prints its path); settings live
under the ``"Dsig"`` key of Orthanc's configuration (see dsig's README). At start-up the plugin
starts one ``dsig orthanc verifier`` process (from dsig's virtualenv) and sends every incoming
instance to it over a Unix socket; it fails closed: an instance that could not be verified is
refused, never stored unchecked.
"""

from __future__ import annotations

import atexit
import collections
import hashlib
import json
import os
import socket
import struct
import subprocess
import tempfile
import threading
import time
from typing import Any

import orthanc  # type: ignore[import-not-found]  # provided by Orthanc's Python plugin

_LENGTH = struct.Struct(">I")
_OUT_OF_RESOURCES = 0xA700
_SEEN = 4096  # recent verdicts kept for /dsig/instances (by SHA-256 and by instance)
# A C-STORE instance is seen by the received-instance callback, then by the C-STORE filter:
# the filter reuses the callback's verdict if it comes within this many seconds. Nothing
# else is reused: a resend is verified (and audited) again, as trust may have changed since.
_HANDOVER_SECONDS = 30.0


class _Verdicts:
    """Recent verdicts: by SHA-256 (a C-STORE instance is seen by the filter, then again by
    the received-instance callback: verified once) and by Orthanc ID / SOP Instance UID."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self.counts: collections.Counter[str] = collections.Counter()
        self._handover: dict[str, tuple[dict[str, Any], float]] = {}

    def add(self, verdict: dict[str, Any]) -> None:
        with self._lock:
            self.counts["accepted" if verdict["passed"] else "refused"] += 1
            for key in (verdict.get("sha256"), verdict.get("orthanc_id"),
                        verdict.get("sop_instance_uid")):  # fmt: skip
                if key:
                    self._by_key[key] = verdict
                    self._by_key.move_to_end(key)
            while len(self._by_key) > 3 * _SEEN:
                self._by_key.popitem(last=False)

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._by_key.get(key)

    def hand_over(self, sha256: str, verdict: dict[str, Any]) -> None:
        """Keep ``verdict`` for the C-STORE filter that follows the callback."""
        with self._lock:
            now = time.monotonic()
            for key in [k for k, (_, t) in self._handover.items() if now - t > _HANDOVER_SECONDS]:
                del self._handover[key]
            self._handover[sha256] = (verdict, now)

    def take(self, sha256: str) -> dict[str, Any] | None:
        """The verdict handed over for these bytes, once, if recent enough."""
        with self._lock:
            held = self._handover.pop(sha256, None)
        if held is None or time.monotonic() - held[1] > _HANDOVER_SECONDS:
            return None
        return held[0]


class _Verifier:
    """The ``dsig orthanc verifier`` process and one connection to it per Orthanc thread."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self._dir = tempfile.mkdtemp(prefix="dsig-orthanc-plugin-")
        self.socket_path = os.path.join(self._dir, "verifier.sock")
        command = [str(settings.get("Command", "dsig")), "orthanc", "verifier",
                   "--socket", self.socket_path,
                   "--workers", str(int(settings.get("Workers", 2)))]  # fmt: skip
        for indication in settings.get("Accept") or ():
            command += ["--accept", str(indication)]
        if settings.get("Quarantine"):
            command += ["--quarantine", str(settings["Quarantine"])]
        if settings.get("AuditLog"):
            command += ["--audit-log", str(settings["AuditLog"])]
        command += ["--", *map(str, settings.get("Arguments") or ())]
        self.error: str | None = None
        self._closed = False
        self._local = threading.local()
        # stdin stays open: the verifier exits when Orthanc (its stdin's writer) goes away
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None
        )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline().decode(errors="replace").strip()
        if not ready.startswith("ready"):
            self.error = f"dsig verifier did not start (exit {self.process.wait()})"

    def verify(self, data: bytes, header: dict[str, Any]) -> dict[str, Any]:
        if self.error:
            raise OSError(self.error)
        conn = getattr(self._local, "conn", None)
        for attempt in (1, 2):  # a stale connection (verifier restarted) is retried once
            if conn is None:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.connect(self.socket_path)
                self._local.conn = conn
            try:
                head = json.dumps(header).encode()
                conn.sendall(_LENGTH.pack(len(head)) + head + _LENGTH.pack(len(data)))
                conn.sendall(data)
                verdict: dict[str, Any] = json.loads(_read_frame(conn))
                return verdict
            except OSError:
                conn.close()
                conn = self._local.conn = None
                if attempt == 2:
                    raise
        raise OSError("unreachable")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        for name in os.listdir(self._dir):
            os.unlink(os.path.join(self._dir, name))
        os.rmdir(self._dir)


def _read_frame(conn: socket.socket) -> bytes:
    head = _read(conn, _LENGTH.size)
    return _read(conn, _LENGTH.unpack(head)[0])


def _read(conn: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = conn.recv(min(n, 1 << 20))
        if not chunk:
            raise OSError("the verifier closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


_SETTINGS: dict[str, Any] = json.loads(orthanc.GetConfiguration()).get("Dsig") or {}
_VERDICTS = _Verdicts()
_STARTED = time.time()
_VERIFIER = _Verifier(_SETTINGS)
if _VERIFIER.error:
    orthanc.LogError(f"dsig: {_VERIFIER.error}: every instance will be refused")
atexit.register(_VERIFIER.close)


def _judge(data: bytes, origin: str, remote_aet: str = "") -> dict[str, Any]:
    """The verdict on ``data``, verified now; a failure to verify refuses."""
    try:
        verdict = _VERIFIER.verify(data, {"origin": origin, "remote_aet": remote_aet})
    except (OSError, ValueError) as e:
        orthanc.LogError(f"dsig: cannot verify an instance: {e}")
        return {"passed": False, "status": _OUT_OF_RESOURCES, "indication": "ERROR",
                "comment": f"not verified: {e}"}  # fmt: skip
    _VERDICTS.add(verdict)
    if not verdict["passed"]:
        orthanc.LogWarning(
            f"dsig: refused {verdict.get('sop_instance_uid')} from {origin} {remote_aet}: "
            f"{verdict.get('indication')} {verdict.get('comment')}"
        )
    return verdict


def _on_cstore(received: Any) -> int:
    """C-STORE: 0 stores, a DIMSE failure status refuses."""
    data = received.GetInstanceData()
    verdict = _VERDICTS.take(hashlib.sha256(data).hexdigest())
    if verdict is None:  # the callback did not run first (or too long ago): verify here
        verdict = _judge(data, "DICOM", received.GetInstanceRemoteAet())
    return 0 if verdict["passed"] else int(verdict["status"])


def _on_received(data: bytes, origin: Any) -> tuple[Any, None]:
    """Every ingress (REST, DICOMweb STOW-RS, C-STORE), before the C-STORE filter: discard or
    keep. A C-STORE instance is kept here and refused by :func:`_on_cstore` with its status
    (a discard would answer the sender with success)."""
    origins = orthanc.InstanceOrigin
    names = {getattr(origins, n): n for n in ("DICOM_PROTOCOL", "REST_API", "PLUGIN", "LUA")
             if hasattr(origins, n)}  # fmt: skip
    verdict = _judge(data, names.get(origin, str(origin)))
    action = orthanc.ReceivedInstanceAction
    if origin == origins.DICOM_PROTOCOL:  # the C-STORE filter answers with the status
        _VERDICTS.hand_over(hashlib.sha256(data).hexdigest(), verdict)
        return action.KEEP_AS_IS, None
    if verdict["passed"]:
        return action.KEEP_AS_IS, None
    return action.DISCARD, None


def _on_change(change_type: Any, level: Any, resource: str) -> None:
    if change_type == orthanc.ChangeType.NEW_INSTANCE and _SETTINGS.get("Metadata", True):
        verdict = _VERDICTS.get(resource)
        if verdict is not None:
            try:  # needs "UserMetadata": {"DsigVerdict": ...} in Orthanc's configuration
                orthanc.RestApiPut(f"/instances/{resource}/metadata/DsigVerdict",
                                   verdict["indication"])  # fmt: skip
            except Exception as e:  # Orthanc raises its own error type here
                orthanc.LogWarning(f"dsig: cannot record the verdict as metadata: {e}")
    elif change_type == orthanc.ChangeType.ORTHANC_STOPPED:
        _VERIFIER.close()


def _json(output: Any, value: Any) -> None:
    output.AnswerBuffer(json.dumps(value, indent=2), "application/json")


def _status(output: Any, uri: str, **request: Any) -> None:
    if request.get("method") != "GET":
        output.SendMethodNotAllowed("GET")
        return
    _json(output, {
        "verifier": "running" if _VERIFIER.process.poll() is None and not _VERIFIER.error
        else "stopped",
        "verifier_pid": _VERIFIER.process.pid,
        "error": _VERIFIER.error,
        "accept": _SETTINGS.get("Accept") or "what dsig verify passes",
        "arguments": _SETTINGS.get("Arguments") or [],
        "quarantine": _SETTINGS.get("Quarantine"),
        "audit_log": _SETTINGS.get("AuditLog"),
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_STARTED)),
        "counts": dict(_VERDICTS.counts),
    })  # fmt: skip


def _instance(output: Any, uri: str, **request: Any) -> None:
    """The verification report of an instance, by Orthanc ID or SOP Instance UID (recent ones;
    older ones are in the audit log and, for stored ones, the DsigVerdict metadata)."""
    if request.get("method") != "GET":
        output.SendMethodNotAllowed("GET")
        return
    verdict = _VERDICTS.get(request["groups"][0])
    if verdict is None:
        output.SendHttpStatusCode(404)
        return
    _json(output, verdict)


orthanc.RegisterIncomingCStoreInstanceFilter(_on_cstore)
orthanc.RegisterReceivedInstanceCallback(_on_received)
orthanc.RegisterOnChangeCallback(_on_change)
orthanc.RegisterRestCallback("/dsig/status", _status)
orthanc.RegisterRestCallback("/dsig/instances/(.*)", _instance)
