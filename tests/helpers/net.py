"""Helpers for the network tests: a ``dsig serve`` subprocess, small DICOM objects, DCMTK storescu.

Everything listens on and connects to 127.0.0.1 only. The server is started with ``--port 0``
and the port is read from its "listening on" line, so there is no free-port race.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from tests.helpers.pki_factory import build_pki

REPO = Path(__file__).resolve().parents[2]
PATIENT = "Test^Net"


def dsig_cmd(*args: str | os.PathLike[str]) -> list[str]:
    """``python -m dsig ARGS`` with the interpreter running the tests."""
    return [sys.executable, "-m", "dsig", *map(str, args)]


def run_dsig(
    *args: str | os.PathLike[str], timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the dsig CLI, capturing text output (stdin closed: no prompts)."""
    return subprocess.run(
        dsig_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False,
        stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip


@dataclass
class NetPki:
    """A signer trusted by ``trust`` and one from an unrelated PKI."""

    directory: Path
    trust: Path  # root + intermediate, PEM
    key: Path
    cert: Path
    stranger_key: Path
    stranger_cert: Path


def make_pki(directory: Path) -> NetPki:
    """Write both signers and the trust bundle under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    pki = build_pki()
    key, cert = pki.leaf("x").write(directory, "x")
    trust = directory / "trust.pem"
    trust.write_bytes(pki.root.cert.public_bytes(pem) + pki.intermediate.cert.public_bytes(pem))
    other = build_pki()
    stranger_key, stranger_cert = other.leaf("stranger").write(directory, "stranger")
    return NetPki(directory, trust, key, cert, stranger_key, stranger_cert)


def small_object(path: Path, *, index: int = 0, size: int = 16) -> Path:
    """A small Secondary Capture object (``size``x``size`` 8-bit pixels), explicit VR LE."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = PATIENT
    ds.PatientID = f"NET{index:05d}"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "OT"
    ds.InstanceNumber = index
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes((index + i) % 256 for i in range(size * size))
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def tamper(src: Path, dst: Path, old: bytes = PATIENT.encode(), new: bytes = b"Test^Nut") -> Path:
    """Copy ``src`` with one signed value changed in place (same length)."""
    data = src.read_bytes()
    assert old in data and len(old) == len(new)
    dst.write_bytes(data.replace(old, new, 1))
    return dst


def sign(src: Path, dst: Path, key: Path, cert: Path) -> Path:
    """``dsig sign`` one file (or a directory into ``dst`` with --out-dir)."""
    if src.is_dir():
        args: list[str | os.PathLike[str]] = [src, "--out-dir", dst, "--recursive"]
    else:
        args = [src, dst]
    proc = run_dsig("sign", *args, "--key", key, "--cert", cert, "--no-password", "--force")
    assert proc.returncode == 0, proc.stderr
    return dst


def dataset_bytes(path: Path) -> bytes:
    """The encoded data set of a Part-10 file (everything after the file meta)."""
    from pynetdicom.dsutils import split_dataset

    _meta, offset = split_dataset(path)
    return path.read_bytes()[offset:]


@dataclass
class Server:
    """A running ``dsig serve`` subprocess."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    store: Path
    quarantine: Path
    port: int = 0
    returncode: int | None = None
    args: list[str] = field(default_factory=list)

    @property
    def audit(self) -> Path:
        """The default audit log."""
        return self.store / "dsig-audit.jsonl"

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def audit_lines(self) -> list[dict[str, Any]]:
        """Parsed audit-log lines."""
        if not self.audit.exists():
            return []
        return [json.loads(line) for line in self.audit.read_text().splitlines()]

    def wait_audit(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        """Wait until the audit log holds ``count`` lines."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.audit_lines()
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the server and wait for it (killed if it does not stop in time)."""
        if self.returncode is not None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.returncode = self.proc.returncode
        return self.returncode

    def stored(self) -> list[Path]:
        """DICOM files in the store."""
        return sorted(self.store.glob("*.dcm"))

    def quarantined(self) -> list[Path]:
        """DICOM files in the quarantine."""
        return sorted(self.quarantine.glob("*.dcm"))


def start_server(directory: Path, *args: str | os.PathLike[str], timeout: float = 30) -> Server:
    """Start ``dsig serve --port 0`` with store/quarantine under ``directory``; wait for it."""
    directory.mkdir(parents=True, exist_ok=True)
    store, quarantine = directory / "store", directory / "quarantine"
    log_path = directory / "serve.log"
    cmd = dsig_cmd(
        "serve", "--port", "0", "--ae-title", "DSIGTEST", "--store", store,
        "--quarantine", quarantine, *args,
    )  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    server = Server(proc, log_path, store, quarantine, args=[str(a) for a in args])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = server.log()
        for line in text.splitlines():
            if "listening on 127.0.0.1:" in line:
                server.port = int(line.split("listening on 127.0.0.1:")[1].split()[0])
                return server
        if proc.poll() is not None:
            server.returncode = proc.returncode
            raise RuntimeError(f"dsig serve exited {proc.returncode}: {text}")
        time.sleep(0.05)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"dsig serve did not start in {timeout} s: {server.log()}")


def dcmtk_storescu() -> str | None:
    """DCMTK's storescu (pynetdicom installs its own ``storescu`` script too: skip that one)."""
    candidates = [shutil.which("storescu"), "/usr/bin/storescu", "/bin/storescu"]
    for path in [*os.get_exec_path()]:
        candidates.append(str(Path(path) / "storescu"))
    for candidate in candidates:
        if not candidate or not os.access(candidate, os.X_OK):
            continue
        try:
            out = subprocess.run(
                [candidate, "--version"], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if "dcmtk" in (out.stdout + out.stderr).lower():
            return candidate
    return None


def storescu(
    exe: str, port: int, files: Sequence[Path], *options: str, called_ae: str = "DSIGTEST"
) -> subprocess.CompletedProcess[str]:
    """Send ``files`` with DCMTK storescu to 127.0.0.1:``port``."""
    cmd = [exe, *options, "-aet", "STORESCU", "-aec", called_ae, "127.0.0.1", str(port)]
    return subprocess.run(
        [*cmd, *map(str, files)], capture_output=True, text=True, timeout=120, check=False
    )


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def echo(port: int, timeout: float = 5) -> int | None:
    """C-ECHO to 127.0.0.1:``port``: the status, or None (no association / no answer)."""
    from pynetdicom import AE

    ae = AE(ae_title="ECHOSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="DSIGTEST")
    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_echo()
        return int(status.Status) if "Status" in status else None
    finally:
        assoc.release()


def deflate_flood(path: Path, items: int) -> Path:
    """A Deflated Explicit VR LE object whose data set inflates to a sequence of ``items``
    empty items (8 bytes each: 10 million deflate to ~80 KB)."""
    import struct
    import zlib

    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    uid = generate_uid()

    def element(tag: int, vr: bytes, value: bytes) -> bytes:
        return (
            struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr + struct.pack("<H", len(value)) + value
        )

    def ui(value: str) -> bytes:
        raw = value.encode()
        return raw + b"\0" * (len(raw) % 2)

    body = element(0x00080016, b"UI", ui(SecondaryCaptureImageStorage))
    body += element(0x00080018, b"UI", ui(uid))
    body += struct.pack("<HH", 0x0040, 0x0275) + b"SQ\0\0" + struct.pack("<I", 0xFFFFFFFF)
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = compressor.compress(body)
    chunk = item * 65536
    for _ in range(items // 65536):
        data += compressor.compress(chunk)
    data += compressor.compress(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    data += compressor.flush()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    with path.open("wb") as fp:
        fp.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(fp, meta, enforce_standard=True)  # type: ignore[arg-type]
        fp.write(data + b"\0" * (len(data) % 2))
    return path


def trickle(port: int, data: bytes, interval: float, stop: Any) -> str:
    """Connect and send ``data`` one byte every ``interval`` s until ``stop`` (an Event) is
    set or the server closes the connection: "closed" or "open"."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(interval)
        for byte in data:
            if stop.is_set():
                return "open"
            try:
                sock.sendall(bytes([byte]))
                got = sock.recv(4096)
                if got == b"" or got[:1] == b"\x07":  # closed, or an A-ABORT
                    return "closed"
            except TimeoutError:
                continue
            except OSError:
                return "closed"
        return "open"


def store_raw(port: int, path: Path, timeout: float = 60) -> int | None:
    """C-STORE a Part-10 file's data set bytes without parsing them (pynetdicom's chunked
    send: only the File Meta is read). The status, or None (no association / no answer).
    Changes pynetdicom's global send mode in the calling (test) process."""
    from pydicom.filereader import read_file_meta_info
    from pynetdicom import AE, _config

    _config.STORE_SEND_CHUNKED_DATASET = True
    meta = read_file_meta_info(path)
    ae = AE(ae_title="RAWSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout
    ae.add_requested_context(meta.MediaStorageSOPClassUID, [meta.TransferSyntaxUID])
    assoc = ae.associate("127.0.0.1", port, ae_title="DSIGTEST")
    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_store(path)
        return int(status.Status) if "Status" in status else None
    finally:
        if assoc.is_established:
            assoc.release()


@dataclass
class TlsPki:
    """DICOM TLS test certificates: a CA bundle, a server (SAN 127.0.0.1 and localhost) with
    an encrypted key, a client, and a client from an unrelated PKI."""

    ca: Path
    server_cert: Path
    server_key: Path  # encrypted with ``password``
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path
    password: str = "tls-secret"


def make_tls_pki(directory: Path) -> TlsPki:
    """Write the TLS test certificates under ``directory`` (built with the test PKI factory)."""
    import ipaddress

    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from tests.helpers.pki_factory import issue

    pem = serialization.Encoding.PEM
    pki = build_pki()
    eku = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    usage = {"digital_signature", "key_encipherment"}
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )

    def tls_leaf(name: str, ca: Any) -> Any:
        return issue(name, issuer=ca, key_usage=usage, eku=eku, extensions=[(san, False)])

    directory.mkdir(parents=True, exist_ok=True)
    password = TlsPki.password
    server_key, server_cert = tls_leaf("dsig tls server", pki.intermediate).write(
        directory, "server", password=password.encode()
    )
    chain = pki.intermediate.cert.public_bytes(pem)
    server_cert.write_bytes(server_cert.read_bytes() + chain)  # leaf + intermediate
    client_key, client_cert = tls_leaf("dsig tls client", pki.intermediate).write(
        directory, "client"
    )
    client_cert.write_bytes(client_cert.read_bytes() + chain)
    other = build_pki()
    stranger_key, stranger_cert = tls_leaf("dsig tls stranger", other.intermediate).write(
        directory, "stranger"
    )
    ca = directory / "tls-ca.pem"
    ca.write_bytes(pki.root.cert.public_bytes(pem) + chain)
    return TlsPki(ca, server_cert, server_key, client_cert, client_key, stranger_cert, stranger_key)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for DCMTK tools, which cannot report one)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dcmtk_tool(name: str) -> str | None:
    """A DCMTK tool (``storescp``...) on PATH, checked by its ``--version`` output."""
    exe = shutil.which(name, path="/usr/bin:/bin") or shutil.which(name)
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
    return exe if "dcmtk" in (out.stdout + out.stderr).lower() else None


@dataclass
class Pacs:
    """A DCMTK storescp standing in for the PACS (bit-preserving, one file per object)."""

    proc: subprocess.Popen[bytes]
    directory: Path
    port: int
    ae_title: str = "PACS"

    @property
    def target(self) -> str:
        """Its ``--forward`` value."""
        return f"{self.ae_title}@127.0.0.1:{self.port}"

    def received(self) -> list[Path]:
        """Files written so far (storescp writes under a temporary name first)."""
        return sorted(p for p in self.directory.iterdir() if p.is_file() and p.suffix != ".tmp")

    def stop(self) -> None:
        """Terminate storescp."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_pacs(exe: str, directory: Path, *options: str, port: int | None = None) -> Pacs:
    """Start ``storescp`` on 127.0.0.1 writing bit-preserved files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = (directory.parent / f"{directory.name}.log").open("ab")
    proc = subprocess.Popen(
        [exe, "-aet", "PACS", "+B", "-od", str(directory), *options, str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    deadline = time.monotonic() + 10
    import socket

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"storescp exited {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return Pacs(proc, directory, port)
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("storescp did not start")
