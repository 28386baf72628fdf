"""Certificate bytes -> certificates: the one decoder of PEM bundles (CERTIFICATE, OpenSSL's
TRUSTED CERTIFICATE, PKCS7/CMS blocks), DER certificates and DER PKCS#7 bundles.

Key files (:mod:`tokens.files`), tokens and the trust module (:mod:`pki.certs`) all read
certificate files through :func:`load_certificate_file`, each naming its own error class.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7

from tokens.errors import KeyLoadError
from tokens.faults import ToolkitError

#: The error a caller wants for a certificate it cannot use (its class, given the message).
ErrorClass = Callable[[str], ToolkitError]

PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)


def decode_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in ``data``, in order (possibly none); ValueError if malformed."""
    if b"-----BEGIN" in data:
        return _parse_pem(data)
    return _parse_der(data)


def certificates_in(
    data: bytes, *, source: str, error: ErrorClass = KeyLoadError
) -> list[x509.Certificate]:
    """The certificates of ``data`` (at least one); ``error`` with a one-line message naming
    ``source`` when it is malformed or holds none."""
    try:
        certs = decode_certificates(data)
    except ValueError as e:
        raise error(f"{source}: not a certificate file ({_first_line(e)})") from None
    if not certs:
        raise error(f"{source}: no certificate found")
    return certs


def load_certificate_file(
    path: Path, *, what: str = "certificate file", error: ErrorClass = KeyLoadError
) -> list[x509.Certificate]:
    """The certificates of one PEM, DER or PKCS#7 file (at least one); ``error`` when it
    cannot be read (``what`` names the file's role), is malformed or holds none."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from None
    return certificates_in(data, source=str(path), error=error)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _parse_pem(data: bytes) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for match in PEM_BLOCK.finditer(data):
        label = match.group(1)
        block = match.group(0)
        if label in (b"CERTIFICATE", b"X509 CERTIFICATE"):
            certs.append(x509.load_pem_x509_certificate(block))
        elif label == b"TRUSTED CERTIFICATE":
            # OpenSSL's "trusted" form appends trust settings after the DER certificate.
            der = _pem_body(block)
            certs.append(x509.load_der_x509_certificate(_first_der_element(der)))
        elif label in (b"PKCS7", b"CMS"):
            certs.extend(
                pkcs7.load_pem_pkcs7_certificates(block.replace(b"CMS-----", b"PKCS7-----"))
            )
    return certs


def _parse_der(data: bytes) -> list[x509.Certificate]:
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        # Not a certificate: maybe a DER PKCS#7 bundle (degenerate SignedData).
        return list(pkcs7.load_der_pkcs7_certificates(data))


def _pem_body(block: bytes) -> bytes:
    lines = block.splitlines()[1:-1]
    return base64.b64decode(b"".join(line.strip() for line in lines if b":" not in line))


def _first_der_element(der: bytes) -> bytes:
    """The first TLV of ``der`` (definite length)."""
    if len(der) < 2:
        raise ValueError("truncated DER")
    first = der[1]
    if first < 0x80:
        return der[: 2 + first]
    n = first & 0x7F
    length = int.from_bytes(der[2 : 2 + n], "big")
    return der[: 2 + n + length]
