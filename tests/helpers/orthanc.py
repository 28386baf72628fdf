"""A real Orthanc (Debian's, with its Python and DICOMweb plugins) started on 127.0.0.1 with a
temporary configuration, for the plugin and DICOMweb tests."""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLUGINS = Path("/usr/share/orthanc/plugins")


def orthanc_available() -> bool:
    """Orthanc and both plugins are installed."""
    return shutil.which("Orthanc") is not None and all(
        (PLUGINS / name).exists() for name in ("libOrthancPython.so", "libOrthancDicomWeb.so")
    )


def free_port() -> int:
    """An ephemeral port free right now on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Orthanc:
    """A running Orthanc: its ports, its log, its REST API."""

    process: subprocess.Popen[bytes]
    http_port: int
    dicom_port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def get(self, path: str) -> Any:
        """GET a JSON resource of the REST API."""
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def status_of(self, path: str) -> int:
        """The HTTP status of a GET."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    def post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        """POST, returning (status, body) whatever the status."""
        request = urllib.request.Request(
            self.url + path, data=body, headers={"Content-Type": content_type}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as e:
            return int(e.code), bytes(e.read())

    def log(self) -> str:
        return (self.directory / "orthanc.log").read_text(errors="replace")


def dsig_command(directory: Path) -> str:
    """An executable for the plugin's "Command" that runs the dsig of the tree under test (the
    installed ``dsig`` script may import another checkout's, e.g. from a git worktree)."""
    from tests.helpers.net import REPO

    script = directory / "dsig"
    script.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}}\n"
        "export PYTHONPATH\n"
        f'exec {shlex.quote(sys.executable)} -m dsig "$@"\n'
    )
    script.chmod(0o700)
    return str(script)


@contextlib.contextmanager
def running_orthanc(directory: Path, settings: dict[str, Any]) -> Iterator[Orthanc]:
    """Start Orthanc with ``settings`` merged into a minimal configuration; stop it after."""
    directory.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "dsig-test",
        "StorageDirectory": str(directory / "storage"),
        "IndexDirectory": str(directory / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpServerEnabled": True,
        "DicomServerEnabled": True,
        "DicomCheckCalledAet": False,
        "ConcurrentJobs": 1,
        "HttpThreadsCount": 4,
        "Plugins": [str(PLUGINS / "libOrthancDicomWeb.so")],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        **settings,
    }
    path = directory / "orthanc.json"
    path.write_text(json.dumps(config, indent=2))
    log = (directory / "orthanc.log").open("wb")
    process = subprocess.Popen(
        ["Orthanc", "--verbose", str(path)], stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.PIPE,
    )  # fmt: skip
    orthanc = Orthanc(process, http_port, dicom_port, directory)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"Orthanc exited {process.returncode}:\n{orthanc.log()}")
            with contextlib.suppress(OSError):
                orthanc.get("/system")
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"Orthanc did not start:\n{orthanc.log()}")
            time.sleep(0.2)
        yield orthanc
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def multipart_related(
    parts: list[bytes], boundary: str = "dsig-test-boundary"
) -> tuple[bytes, str]:
    """A STOW-RS request body built by hand and its Content-Type."""
    body = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n"
        for part in parts
    )
    body += b"--" + boundary.encode() + b"--\r\n"
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return body, content_type


@dataclass
class Objects:
    """Signed small objects for the Orthanc and STOW-RS tests."""

    signed: list[Path]  # by the trusted signer
    tampered: Path  # a signed value changed
    stranger: Path  # signed by a signer from an unrelated PKI (another SOP Instance UID)
    unsigned: Path
    trust: Path
    key: Path  # the trusted signer's, for objects a test builds
    cert: Path


def make_objects(root: Path) -> Objects:
    """Four signed objects, a tampered one, one from a stranger and an unsigned one."""
    from tests.helpers import net

    pki = net.make_pki(root / "pki")
    (root / "plain").mkdir()
    for i in range(6):
        net.small_object(root / "plain" / f"o{i}.dcm", index=i)
    signed = sorted(net.sign(root / "plain", root / "signed", pki.key, pki.cert).glob("*.dcm"))
    stranger = net.sign(root / "plain" / "o5.dcm", root / "stranger.dcm", pki.stranger_key,
                        pki.stranger_cert)  # fmt: skip
    tampered = net.tamper(signed[4], root / "tampered.dcm")
    unsigned = net.small_object(root / "unsigned.dcm", index=9)
    return Objects(signed[:4], tampered, stranger, unsigned, pki.trust, pki.key, pki.cert)


def ask_verifier(sock_path: Path, data: bytes, timeout: float = 120) -> dict[str, Any]:
    """One request to ``dsig orthanc verifier``'s socket, framed as the plugin frames it."""
    length = struct.Struct(">I")
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(timeout)
        conn.connect(str(sock_path))
        header = json.dumps({"origin": "TEST"}).encode()
        conn.sendall(length.pack(len(header)) + header + length.pack(len(data)) + data)
        with conn.makefile("rb") as answer:
            (size,) = length.unpack(answer.read(4))
            result: dict[str, Any] = json.loads(answer.read(size))
            return result
