"""Load certificates (PEM, DER, PKCS#7, directories) as ``cryptography`` objects."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from pki.errors import CertificateLoadError
from tokens.certificates import certificates_in, load_certificate_file

# Files an OpenSSL hashed directory or a CA bundle directory may hold next to the certificates.
_SKIP_IN_DIR = re.compile(r"(^\.|\.(crl|key|csr|txt|md|json|r\d+)$|^[0-9a-f]{8}\.r\d+$)", re.I)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint of the DER encoding, lower-case hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def describe(cert: x509.Certificate) -> str:
    """Short human display: the subject as an RFC 4514 string."""
    return cert.subject.rfc4514_string()


def dedupe(certs: Iterable[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    """Drop repeated certificates (same DER), keeping the first occurrence."""
    seen: set[bytes] = set()
    out: list[x509.Certificate] = []
    for cert in certs:
        der = cert.public_bytes(serialization.Encoding.DER)
        if der not in seen:
            seen.add(der)
            out.append(cert)
    return tuple(out)


def parse_certificates(data: bytes, *, source: str = "<data>") -> tuple[x509.Certificate, ...]:
    """Certificates from PEM (CERTIFICATE / PKCS7 blocks), DER, or DER PKCS#7 bytes.

    Raises :class:`CertificateLoadError` when ``data`` holds no certificate.
    """
    return dedupe(certificates_in(data, source=source, error=CertificateLoadError))


def read_path(path: Path, what: str) -> bytes:
    """Read a file, mapping OS errors to :class:`CertificateLoadError`."""
    try:
        return path.read_bytes()
    except OSError as e:
        raise CertificateLoadError(f"cannot read {what} {path}: {e.strerror or e}") from e


def list_dir(directory: Path, what: str) -> list[Path]:
    """Regular, non-hidden files of ``directory`` (symlinks followed), sorted."""
    try:
        entries = sorted(directory.iterdir())
    except OSError as e:
        msg = f"cannot list {what} directory {directory}: {e.strerror or e}"
        raise CertificateLoadError(msg) from e
    return [p for p in entries if p.is_file() and not p.name.startswith(".")]


def iter_dir_files(directory: Path, what: str) -> list[Path]:
    """Files of ``directory`` that may hold certificates (skips CRLs, keys, notes)."""
    return [p for p in list_dir(directory, what) if not _SKIP_IN_DIR.search(p.name)]


def load_from_paths(paths: Sequence[Path], what: str) -> tuple[x509.Certificate, ...]:
    """Certificates from files and directories (OpenSSL hashed directories included).

    ``what`` names the option in error messages (e.g. ``"trust store"``).
    """
    certs: list[x509.Certificate] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found: list[x509.Certificate] = []
            for file in iter_dir_files(path, what):
                found.extend(load_certificate_file(file, what=what, error=CertificateLoadError))
            if not found:
                raise CertificateLoadError(f"{what} directory {path} holds no certificate")
            certs.extend(found)
        elif path.exists():
            certs.extend(load_certificate_file(path, what=what, error=CertificateLoadError))
        else:
            raise CertificateLoadError(f"{what} {path} does not exist")
    return dedupe(certs)


def load_certificates(
    *paths: str | os.PathLike[str], what: str = "certificate file"
) -> tuple[x509.Certificate, ...]:
    """Load certificates from PEM bundles, DER files, PKCS#7 bundles or directories of them.

    Raises :class:`CertificateLoadError` (a :class:`~pki.errors.TrustConfigError`) with a
    one-line message on a missing path, an unreadable or unparsable file, or an empty result.
    """
    return load_from_paths([Path(p) for p in paths], what)
