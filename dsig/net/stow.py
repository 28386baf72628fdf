"""DICOMweb STOW-RS for the storage node (``dsig serve --stow HOST:PORT``).

``POST /studies`` (or ``/studies/{StudyInstanceUID}``) with a ``multipart/related;
type="application/dicom"`` body: every part is a Part-10 file, verified and kept by the same
pipeline as a C-STORE (:meth:`dsig.net.scp.ReceiveServer.admit`: audit line, store or
quarantine, bytes kept exactly as received). Parts that do not pass are always refused here
(a STOW-RS client has no other way to learn it). The answer is PS3.18's: a DICOM JSON object
with the Referenced SOP Sequence (stored) and the Failed SOP Sequence (with Failure Reason),
HTTP 200 all stored, 202 some, 409 none.

With ``upstream``, the parts that passed are sent on, byte for byte, in one STOW-RS request to
that URL; a part the upstream did not take is reported failed (0xA700) although kept here:
the client may retry, and an identical resend is a no-op here and forwarded again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.parser
import email.policy
import http.server
import io
import json
import struct
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import pydicom

from dsig.net import NetError
from dsig.net.intake import Spool
from dsig.net.scp import STAGING_DIR, STATUS_OUT_OF_RESOURCES, AuditRecord, ReceiveServer

#: PS3.18 / PS3.4 failure reason for a part that is not a DICOM file.
STATUS_CANNOT_UNDERSTAND = 0xC000
_REFERENCED, _FAILED, _FAILURE_REASON = "00081199", "00081198", "00081197"
_SOP_CLASS, _SOP_INSTANCE, _RETRIEVE_URL = "00081150", "00081155", "00081190"


@dataclass
class PartOutcome:
    """What became of one part of a STOW-RS request."""

    sop_class: str
    sop_instance: str
    #: 0 stored (or already stored, identical), otherwise the failure reason.
    status: int
    data: bytes = b""


class StowServer:
    """An HTTP STOW-RS endpoint in front of a running :class:`ReceiveServer`."""

    def __init__(
        self, node: ReceiveServer, host: str, port: int, *, upstream: str | None = None,
        upstream_timeout: float = 60.0,
    ) -> None:  # fmt: skip
        self.node = node
        self.upstream = upstream
        self.upstream_timeout = upstream_timeout
        self.max_request = node.config.max_object_size
        stow = self

        class Handler(http.server.BaseHTTPRequestHandler):
            server_version = "dsig-stow"

            def do_POST(self) -> None:
                stow._post(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # every object is in the audit log

        try:
            self._http = http.server.ThreadingHTTPServer((host, port), Handler)
        except OSError as e:
            raise NetError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
        self._http.daemon_threads = False  # stop() waits for requests being handled
        self._thread = threading.Thread(target=self._http.serve_forever, name="dsig-stow")

    @property
    def port(self) -> int:
        """The port listened on (useful with port 0)."""
        return int(self._http.server_address[1])

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, finish the requests being handled."""
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(10)

    # -- one request ------------------------------------------------------------------------

    def _post(self, request: http.server.BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0].rstrip("/")
        if not (path.endswith("/studies") or path == "/studies" or "/studies/" in path):
            self._reply(request, 404, {"error": "POST to /studies"})
            return
        content_type = request.headers.get("Content-Type", "")
        try:
            length = int(request.headers.get("Content-Length", ""))
        except ValueError:
            self._reply(request, 411, {"error": "Content-Length required"})
            return
        if length > self.max_request:
            self._reply(request, 413, {"error": f"request over {self.max_request} bytes"})
            return
        body = request.rfile.read(length)
        parts = dicom_parts(content_type, body)
        if parts is None:
            self._reply(request, 415, {"error": 'multipart/related; type="application/dicom" '
                                                "expected"})  # fmt: skip
            return
        peer = f"{request.client_address[0]}:{request.client_address[1]}"
        outcomes = [self._admit(part, peer) for part in parts]
        if self.upstream:
            self._forward([o for o in outcomes if o.status == 0])
        stored = sum(o.status == 0 for o in outcomes)
        code = 200 if stored == len(outcomes) and outcomes else 202 if stored else 409
        self._reply(request, code, response_json(outcomes))

    def _admit(self, data: bytes, peer: str) -> PartOutcome:
        started = time.perf_counter()
        head = _file_meta(data)
        if head is None:
            return PartOutcome("", "", STATUS_CANNOT_UNDERSTAND)
        offset, sop_class, sop_instance, ts = head
        record = AuditRecord(
            time=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            calling_ae="STOW-RS", called_ae="", peer=peer, sop_class_uid=sop_class,
            sop_instance_uid=sop_instance, transfer_syntax=ts, size=0,
            indication="NOT_VERIFIED", action="failed", status=STATUS_OUT_OF_RESOURCES,
        )  # fmt: skip
        cfg = self.node.config
        try:
            spool = Spool.create(cfg.store / STAGING_DIR, data[:offset], sop_class,
                                 sop_instance, ts, cfg.file_mode)  # fmt: skip
        except OSError:
            return PartOutcome(sop_class, sop_instance, STATUS_OUT_OF_RESOURCES)
        try:
            spool.write(memoryview(data)[offset:])
            spool.finish()
            answer = self.node.admit(spool, record, started, reject=True)
        except OSError:
            return PartOutcome(sop_class, sop_instance, STATUS_OUT_OF_RESOURCES)
        finally:
            spool.discard()
        return PartOutcome(sop_class, sop_instance, int(answer.Status), data)

    def _forward(self, outcomes: list[PartOutcome]) -> None:
        """Send the stored parts upstream; those it did not take become failures here."""
        if not outcomes or self.upstream is None:
            return
        body, content_type = multipart_body([o.data for o in outcomes])
        request = urllib.request.Request(  # noqa: S310 - the administrator's URL
            self.upstream, data=body, method="POST",
            headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
        )  # fmt: skip
        failed: set[str] | None = None  # None: every part failed
        try:
            with urllib.request.urlopen(request, timeout=self.upstream_timeout) as response:  # noqa: S310
                failed = set() if response.status == 200 else _failed_uids(response.read())
        except urllib.error.HTTPError as e:
            with contextlib.suppress(OSError):
                failed = _failed_uids(e.read()) if e.code == 202 else None
        except (OSError, ValueError):
            failed = None
        for outcome in outcomes:
            if failed is None or outcome.sop_instance in failed:
                outcome.status = STATUS_OUT_OF_RESOURCES

    def _reply(self, request: http.server.BaseHTTPRequestHandler, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        with contextlib.suppress(OSError):
            request.send_response(code)
            request.send_header("Content-Type", "application/dicom+json")
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)


def dicom_parts(content_type: str, body: bytes) -> list[bytes] | None:
    """The ``application/dicom`` parts of a multipart/related body (bytes as sent), or None
    when it is not one (parsed by the standard library's MIME parser)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if message.get_content_type() != "multipart/related" or not message.is_multipart():
        return None
    if message.get_param("type", "application/dicom") != "application/dicom":
        return None
    parts = []
    for part in message.iter_parts():
        if part.get_content_type() != "application/dicom":
            return None
        payload = part.get_payload(decode=True)
        parts.append(payload if isinstance(payload, bytes) else b"")
    return parts


def multipart_body(parts: list[bytes]) -> tuple[bytes, str]:
    """A multipart/related body of ``application/dicom`` parts and its Content-Type."""
    boundary = f"dsig-{uuid.uuid4().hex}"
    chunks = []
    for part in parts:
        chunks += [b"--", boundary.encode(), b"\r\nContent-Type: application/dicom\r\n\r\n",
                   part, b"\r\n"]  # fmt: skip
    chunks += [b"--", boundary.encode(), b"--\r\n"]
    return b"".join(chunks), f'multipart/related; type="application/dicom"; boundary={boundary}'


def response_json(outcomes: list[PartOutcome]) -> dict[str, Any]:
    """The PS3.18 STOW-RS response: Referenced and Failed SOP Sequences (DICOM JSON)."""

    def item(o: PartOutcome) -> dict[str, Any]:
        entry: dict[str, Any] = {}
        if o.sop_class:
            entry[_SOP_CLASS] = {"vr": "UI", "Value": [o.sop_class]}
        if o.sop_instance:
            entry[_SOP_INSTANCE] = {"vr": "UI", "Value": [o.sop_instance]}
        if o.status:
            entry[_FAILURE_REASON] = {"vr": "US", "Value": [o.status]}
        return entry

    answer: dict[str, Any] = {}
    referenced = [item(o) for o in outcomes if o.status == 0]
    failed = [item(o) for o in outcomes if o.status != 0]
    if referenced:
        answer[_REFERENCED] = {"vr": "SQ", "Value": referenced}
    if failed:
        answer[_FAILED] = {"vr": "SQ", "Value": failed}
    return answer


def _failed_uids(body: bytes) -> set[str] | None:
    try:
        items = json.loads(body).get(_FAILED, {}).get("Value", [])
        return {str(i[_SOP_INSTANCE]["Value"][0]) for i in items}
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None


def _file_meta(data: bytes) -> tuple[int, str, str, str] | None:
    """(offset of the data set, SOP Class UID, SOP Instance UID, Transfer Syntax UID) of a
    Part-10 file's File Meta Information, or None when it has none."""
    if len(data) < 144 or data[128:132] != b"DICM" or data[132:136] != b"\x02\x00\x00\x00":
        return None
    (group_length,) = struct.unpack("<I", data[140:144])
    try:
        ds = pydicom.dcmread(io.BytesIO(data[: 144 + group_length]), stop_before_pixels=True)
        file_meta = ds.file_meta
        values = (str(file_meta.MediaStorageSOPClassUID), str(file_meta.MediaStorageSOPInstanceUID),
                  str(file_meta.TransferSyntaxUID))  # fmt: skip
    except Exception:  # not a readable File Meta group: the part is refused
        return None
    return (144 + group_length, *values)


__all__ = ["PartOutcome", "StowServer", "dicom_parts", "multipart_body", "response_json"]
