"""A C-STORE SCU that can sign each object (one key-provider open for the batch) before sending.

Objects are sent **bit-for-bit**: pynetdicom reads the data set bytes from a Part-10 file and
sends them without decoding (``STORE_SEND_CHUNKED_DATASET``), so each file is proposed in its
own transfer syntax and never converted (a conversion by the network layer could break the
signatures). A signed copy is written with dsig's own writer to a temporary file first.

Extended negotiation: for every SOP class the SCU proposes SOP Class Extended Negotiation as an
SCU-only requestor; the acceptor's answer (storage level, Digital Signature support level,
element coercion) is reported in :attr:`SendSummary.peer_support`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO

from pydicom.dataset import Dataset
from pydicom.filewriter import write_file_meta_info
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation

from dsig.encoding.read_options import DEFAULT_READ, ReadOptions
from dsig.encoding.reader import read_dicom
from dsig.encoding.writer import target_encoding, write_dataset_file
from dsig.errors import DsigError
from dsig.net import NetError
from dsig.operations.file_signing import sign_dataset
from dsig.operations.signer import SignOptions
from dsig.signature.profiles import ProfileError
from tokens.api import KeyProvider
from tokens.errors import TokenError

#: What an SCU-only requestor puts in SOP Class Extended Negotiation for storage (PS3.4 B.3.1):
#: level of support 3 (N/A, SCU only), signature level 0 (SCU only), coercion 2 (N/A).
SCU_APPLICATION_INFO = bytes([3, 0, 0, 0, 2, 0])

MAX_CONTEXTS = 128
_WARNINGS = {0x0001, 0xB000, 0xB006, 0xB007}

_SIGNATURE_LEVELS = {
    0: "unspecified",
    1: "level 1 (may not preserve signatures)",
    2: "level 2 (preserves signatures)",
    3: "level 3 (preserves or replaces signatures)",
}


@dataclass(frozen=True)
class SendOptions:
    """Where to send and how."""

    host: str
    port: int
    calling_ae: str = "DSIG"
    called_ae: str = "ANY-SCP"
    #: Sign each object before sending (with the provider given to :func:`send_files`).
    sign: SignOptions | None = None
    #: Number of parallel associations.
    associations: int = 1
    #: Seconds for connection, association negotiation and each response.
    timeout: float = 30.0
    #: DICOM TLS (see :func:`dsig.net.tls.client_context`); None = plain TCP.
    tls: ssl.SSLContext | None = None
    #: How input files are read (storescu and dcmsign: ``+f``/``+fo``/``-f``, ``-t=``/``-td``...).
    read: ReadOptions = DEFAULT_READ


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome for one input file (frozen)."""

    path: Path
    #: "stored", "warning" (stored with a warning status), "refused" (failure status, or no
    #: presentation context for the object) or "error" (unreadable, cannot sign, no association)
    outcome: str
    status: int | None = None
    message: str = ""
    sop_instance_uid: str = ""
    signature_uid: str | None = None


@dataclass(frozen=True, slots=True)
class SendSummary:
    """All results, in input order, and what the peer said about signature support (frozen,
    built once every file is sent)."""

    results: tuple[SendResult, ...] = ()
    #: "SOP class UID: description" of the peer's extended negotiation answers (read-only).
    peer_support: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def exit_code(self) -> int:
        """4 operational error, 1 something refused, else 0."""
        outcomes = {r.outcome for r in self.results}
        if "error" in outcomes:
            return 4
        if "refused" in outcomes:
            return 1
        return 0


@dataclass
class _Item:
    index: int
    path: Path
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    has_meta: bool
    #: the data set was read in another encoding than its meta header names (or it has no
    #: meta): it travels re-written by dsig's writer, never with a meta that lies about it
    rewrite: bool = False


def describe_support(info: bytes) -> str:
    """Human reading of a storage SCP's service-class application information."""
    if len(info) < 3:
        return f"unrecognised answer {info.hex()}"
    level = {0: "level 0", 1: "level 1", 2: "level 2", 3: "N/A"}.get(info[0], f"{info[0]}")
    signature = _SIGNATURE_LEVELS.get(info[2], f"{info[2]}")
    text = f"storage {level}, digital signature {signature}"
    if len(info) >= 5:
        text += ", " + {0: "no coercion", 1: "may coerce elements"}.get(info[4], "coercion N/A")
    return text


def probe(path: Path, read: ReadOptions = DEFAULT_READ) -> tuple[str, str, str, bool, bool]:
    """(SOP Class UID, SOP Instance UID, Transfer Syntax UID, has usable file meta, must be
    re-written).

    The UIDs are the data set's (as DCMTK's storescu sends them), the file meta's only where
    the data set has none; "usable file meta" also means it names the same UIDs. The file is
    read by dsig's reader as ``read`` says (``--read file`` refuses a bare data set,
    ``--read-xfer detect`` ignores the meta's syntax); by default a data set that is not in
    the syntax its meta names is malformed, as for every other command (pydicom would guess
    and the file would travel under a meta that lies). The transfer syntax is the one the data
    set was read in."""
    ds: Dataset = read_dicom(path, read=read)  # DicomFormatError names the path
    layout = ds.dsig_layout
    ts_read = str(ds.file_meta.get("TransferSyntaxUID", "") or "")
    sop_class, sop_instance, ts, has_meta = _probed(path, ds, ds.file_meta)
    rewrite = not layout.has_meta or layout.meta_transfer_syntax != ts_read
    return sop_class, sop_instance, ts, has_meta and not rewrite, rewrite


def _probed(path: Path, ds: Dataset, meta: Dataset) -> tuple[str, str, str, bool]:
    sop_class = str(ds.get("SOPClassUID", "") or meta.get("MediaStorageSOPClassUID", "") or "")
    sop_instance = str(
        ds.get("SOPInstanceUID", "") or meta.get("MediaStorageSOPInstanceUID", "") or ""
    )
    ts = str(meta.get("TransferSyntaxUID", "") or "")
    if not sop_class or not sop_instance:
        raise DsigError(f"{path}: no SOP Class/Instance UID: cannot be sent")
    if not ts:
        raise DsigError(f"{path}: no Transfer Syntax UID")
    has_meta = (
        str(meta.get("MediaStorageSOPClassUID", "")) == sop_class
        and str(meta.get("MediaStorageSOPInstanceUID", "")) == sop_instance
        and "TransferSyntaxUID" in meta
    )
    return sop_class, sop_instance, ts, has_meta


class _ConnectErrors(logging.Handler):
    """Catches pynetdicom's "TCP Initialisation Error: ..." (it reports no cause otherwise)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("TCP Initialisation Error:"):
            self.messages.append(message.split(":", 1)[1].strip())


def _groups(items: list[_Item], associations: int) -> list[list[_Item]]:
    """Split items over associations: round-robin, then by at most 128 contexts each."""
    lanes: list[list[_Item]] = [items[i :: max(1, associations)] for i in range(associations)]
    groups: list[list[_Item]] = []
    for lane in lanes:
        current: list[_Item] = []
        contexts: set[tuple[str, str]] = set()
        for item in lane:
            key = (item.sop_class, item.transfer_syntax)
            if key not in contexts and len(contexts) == MAX_CONTEXTS:
                groups.append(current)
                current, contexts = [], set()
            contexts.add(key)
            current.append(item)
        if current:
            groups.append(current)
    return groups


def send_files(
    files: Sequence[Path],
    options: SendOptions,
    *,
    provider: KeyProvider | None = None,
    on_result: Callable[[SendResult], None] | None = None,
) -> SendSummary:
    """Send ``files`` (optionally signed with ``provider``); one result per file, in order.

    Raises :class:`NetError` only for bad options; per-file and per-association problems are
    reported in the results.
    """
    if options.sign is not None and provider is None:
        raise NetError("signing needs a key provider")
    if options.associations < 1:
        raise NetError("the number of associations must be at least 1")
    results: list[SendResult | None] = [None] * len(files)
    report_lock = threading.Lock()

    def report(index: int, result: SendResult) -> None:
        with report_lock:
            results[index] = result
            if on_result is not None:
                on_result(result)

    items: list[_Item] = []
    for index, path in enumerate(files):
        try:
            sop_class, sop_instance, ts, has_meta, rewrite = probe(path, options.read)
        except (DsigError, ProfileError) as e:
            report(index, SendResult(path, "error", message=str(e)))
            continue
        items.append(_Item(index, path, sop_class, sop_instance, ts, has_meta, rewrite))

    sender = _Sender(options, provider, report)
    groups = _groups(items, options.associations)
    with _chunked_sending():
        with tempfile.TemporaryDirectory(prefix="dsig-send-") as tmp:
            sender.tmp = Path(tmp)
            if options.associations == 1:
                for group in groups:
                    sender.run(group)
            else:
                threads = [threading.Thread(target=sender.run, args=(g,)) for g in groups]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
    done = tuple(r for r in results if r is not None)
    return SendSummary(done, MappingProxyType(dict(sender.peer_support)))


_chunked_lock = threading.Lock()
_chunked_users = 0
_chunked_previous = False


@contextlib.contextmanager
def _chunked_sending() -> Iterator[None]:
    """pynetdicom's bit-for-bit send mode while any ``send_files`` runs (several may, in
    threads: the forwarders), then its previous value."""
    global _chunked_users, _chunked_previous
    with _chunked_lock:
        if _chunked_users == 0:
            _chunked_previous = _config.STORE_SEND_CHUNKED_DATASET
            _config.STORE_SEND_CHUNKED_DATASET = True
        _chunked_users += 1
    try:
        yield
    finally:
        with _chunked_lock:
            _chunked_users -= 1
            if _chunked_users == 0:
                _config.STORE_SEND_CHUNKED_DATASET = _chunked_previous


class _Sender:
    def __init__(
        self,
        options: SendOptions,
        provider: KeyProvider | None,
        report: Callable[[int, SendResult], None],
    ) -> None:
        self.options = options
        self.provider = provider
        self.report = report
        #: What the peers said about signature support, per SOP class UID (every association).
        self.peer_support: dict[str, str] = {}
        self.tmp = Path(tempfile.gettempdir())
        self._sign_lock = threading.Lock()

    def run(self, group: list[_Item]) -> None:
        try:
            assoc = self._associate(group)
        except NetError as e:
            for item in group:
                self.report(item.index, _unsent(item, str(e)))
            return
        stop_reason = ""
        try:
            for item in group:
                if not stop_reason and not (assoc.is_established and assoc.is_alive()):
                    stop_reason = "not sent: the association was aborted"
                if stop_reason:
                    self.report(item.index, _unsent(item, stop_reason))
                    continue
                result, broken = self._send_one(assoc, item)
                self.report(item.index, result)
                if broken:
                    stop_reason = "not sent: the association was lost"
                elif result.status is not None and result.status & 0xFF00 == 0xA700:
                    # out of resources (disk full, shutting down): the rest would fail too
                    stop_reason = f"not sent: the peer is out of resources ({result.message})"
        finally:
            if assoc.is_established:
                assoc.release()
            elif assoc.is_alive():
                assoc.abort()

    def _associate(self, group: list[_Item]) -> Association:
        opts = self.options
        try:
            ae = AE(ae_title=opts.calling_ae)
        except ValueError as e:
            raise NetError(f"bad calling AE title {opts.calling_ae!r}: {e}") from None
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = opts.timeout
        ae.connection_timeout = opts.timeout
        contexts = sorted({(i.sop_class, i.transfer_syntax) for i in group})
        for sop_class, ts in contexts:
            ae.add_requested_context(sop_class, [ts])
        ext_neg: list[Any] = []
        for uid in sorted({c for c, _ in contexts}):
            neg = SOPClassExtendedNegotiation()
            neg.sop_class_uid = uid
            neg.service_class_application_information = SCU_APPLICATION_INFO
            ext_neg.append(neg)
        catcher = _ConnectErrors()
        logger = logging.getLogger("pynetdicom")
        logger.addHandler(catcher)
        level = logger.level
        if not level or level > logging.ERROR:
            logger.setLevel(logging.ERROR)
        try:
            tls_args = (opts.tls, opts.host) if opts.tls is not None else None
            assoc = ae.associate(
                opts.host, opts.port, ae_title=opts.called_ae, ext_neg=ext_neg, tls_args=tls_args
            )
        except ValueError as e:
            raise NetError(f"bad association parameters: {e}") from None
        finally:
            logger.removeHandler(catcher)
            logger.setLevel(level)
        if assoc.is_established:
            _no_delay(assoc)
            for uid, info in assoc.acceptor.sop_class_extended.items():
                self.peer_support[str(uid)] = describe_support(info)
            return assoc
        where = f"{opts.host}:{opts.port}"
        if catcher.messages:
            raise NetError(f"cannot connect to {where}: {catcher.messages[-1]}")
        if assoc.is_rejected:
            raise NetError(f"{where} ({opts.called_ae}) rejected the association")
        if assoc.is_aborted:
            raise NetError(f"{where} ({opts.called_ae}) aborted the association")
        raise NetError(f"cannot connect to {where}")

    def _send_one(self, assoc: Association, item: _Item) -> tuple[SendResult, bool]:
        """The result, and whether the association is unusable afterwards."""
        signed: list[str] = []  # the UID of the signature made for the copy sent, if any

        def result(outcome: str = "error", message: str = "") -> SendResult:
            uid = signed[-1] if signed else None
            return SendResult(item.path, outcome, None, message, item.sop_instance, uid)

        try:
            with self._prepared(item, signed) as path:
                status = assoc.send_c_store(path)
        except (DsigError, ProfileError, TokenError) as e:
            return result(message=str(e)), False
        except ValueError as e:  # pynetdicom: no accepted presentation context
            why = f"the peer accepted no context for it ({e})".replace("\n", " ")
            return result("refused", why), False
        except (OSError, RuntimeError, AttributeError) as e:
            return result(message=f"cannot send: {e}"), True
        answered = _interpret(status, result())
        # No status: DIMSE timeout or abort. pynetdicom would spin forever in the next
        # send_c_store on an association whose reactor has stopped, so never reuse it.
        return answered, answered.status is None

    @contextlib.contextmanager
    def _prepared(self, item: _Item, signed: list[str]) -> Iterator[Path]:
        """The file to send: the input itself, or a signed / completed copy (the UID of the
        signature made for it is appended to ``signed``)."""
        # pynetdicom reads only a file with the preamble and DICM (a meta without them is a
        # file for dcmsign and dsig): such a file is re-written like a bare data set
        preamble = _has_preamble(item.path)
        if self.options.sign is None and item.has_meta and preamble:
            yield item.path
            return
        out = self.tmp / f"{item.index}.dcm"
        if self.options.sign is None and not item.rewrite and preamble:
            # the file meta names other UIDs (pynetdicom would put those in the request): a
            # copy with a meta naming the data set's, and the data set bytes unchanged
            try:
                with out.open("wb") as fp:
                    _copy_with_meta(item, fp)
                yield out
            finally:
                out.unlink(missing_ok=True)
            return
        ds = read_dicom(item.path, read=self.options.read)
        if self.options.sign is not None:
            assert self.provider is not None
            with self._sign_lock:
                info = sign_dataset(
                    ds, self.provider, self.options.sign, target_encoding(ds, "same", None)
                )
            signed.append(info.uid)
        encoding = target_encoding(ds, "same", None)
        try:
            with out.open("wb") as fp:
                write_dataset_file(ds, fp, encoding)
            yield out
        finally:
            out.unlink(missing_ok=True)


def _has_preamble(path: Path) -> bool:
    with path.open("rb") as fp:
        fp.seek(128)
        return fp.read(4) == b"DICM"


def _copy_with_meta(item: _Item, fp: BinaryIO) -> None:
    """``item``'s data set bytes after a File Meta naming its data set's UIDs."""
    from pydicom.uid import UID
    from pynetdicom.dsutils import split_dataset

    meta, offset = split_dataset(item.path)
    meta.MediaStorageSOPClassUID = UID(item.sop_class)
    meta.MediaStorageSOPInstanceUID = UID(item.sop_instance)
    fp.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(fp, meta, enforce_standard=True)  # type: ignore[arg-type]
    with item.path.open("rb") as src:
        src.seek(offset)
        shutil.copyfileobj(src, fp, 1 << 20)


def _unsent(item: _Item, message: str) -> SendResult:
    return SendResult(item.path, "error", message=message, sop_instance_uid=item.sop_instance)


def _no_delay(assoc: Association) -> None:
    """Disable Nagle's algorithm: pynetdicom writes a PDU in pieces, and Nagle plus delayed
    ACKs would hold each C-STORE for ~40 ms (20 objects/s instead of well over 100)."""
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _interpret(status: Dataset, result: SendResult) -> SendResult:
    if "Status" not in status:
        return replace(result, message="no response (timeout or the association was aborted)")
    code = int(status.Status)
    comment = str(status.get("ErrorComment", "") or "")
    if code == 0:
        return replace(result, status=code, outcome="stored")
    if code in _WARNINGS:
        return replace(result, status=code, outcome="warning", message=comment)
    return replace(result, status=code, outcome="refused", message=comment)


__all__ = [
    "SCU_APPLICATION_INFO",
    "SendOptions",
    "SendResult",
    "SendSummary",
    "describe_support",
    "probe",
    "send_files",
]
