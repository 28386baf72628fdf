"""Certificates as callers give them: a ``cryptography`` object, DER bytes or asn1crypto.

cryptography refuses some valid certificates, e.g. a DSA key whose parameters are inherited
from the issuer (RFC 3279 2.3.2: the SubjectPublicKeyInfo omits them). asn1crypto reads them
and path validation handles them, so pki takes them as DER (or asn1crypto) and converts each
input once into a :class:`Cert`. After validation, :func:`path_views` gives every certificate
of the path a cryptography view for the checks that read it (names, extensions, key).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki.errors import CertificateLoadError

#: What pki accepts for a signer or an intermediate certificate.
CertificateInput: TypeAlias = x509.Certificate | bytes | asn1_x509.Certificate


@dataclass(frozen=True, eq=False)
class Cert:
    """One certificate in both forms; ``crypto`` is None when cryptography refuses it."""

    der: bytes
    asn1: asn1_x509.Certificate
    crypto: x509.Certificate | None

    @property
    def aki(self) -> bytes | None:
        """The authority key identifier (None without one)."""
        value = self.asn1.authority_key_identifier
        return bytes(value) if value is not None else None

    @property
    def subject(self) -> str:
        """The subject for messages (RFC 4514 when cryptography reads it)."""
        if self.crypto is not None:
            return self.crypto.subject.rfc4514_string()
        return str(self.asn1.subject.human_friendly)


def as_cert(value: CertificateInput) -> Cert:
    """``value`` in both forms; :class:`CertificateLoadError` when it is not a certificate."""
    if isinstance(value, x509.Certificate):
        der = value.public_bytes(serialization.Encoding.DER)
        return Cert(der, asn1_x509.Certificate.load(der), value)
    if isinstance(value, asn1_x509.Certificate):
        der = value.dump()
    elif isinstance(value, bytes | bytearray | memoryview):
        der = bytes(value)
        if der.lstrip().startswith(b"-----BEGIN"):
            raise CertificateLoadError("PEM given where DER is expected (pki.load_certificates)")
    else:
        raise CertificateLoadError(
            f"expected a certificate (cryptography, asn1crypto or DER bytes), got "
            f"{type(value).__name__}"
        )
    return Cert(der, _parse_asn1(der), _crypto_or_none(der))


def as_certs(values: Iterable[CertificateInput]) -> tuple[Cert, ...]:
    """:func:`as_cert` of each value."""
    return tuple(as_cert(v) for v in values)


def der_fingerprint(value: CertificateInput) -> str:
    """SHA-256 of the certificate's DER, lower-case hex."""
    if isinstance(value, x509.Certificate):
        der = value.public_bytes(serialization.Encoding.DER)
    else:
        der = as_cert(value).der
    return hashlib.sha256(der).hexdigest()


def _parse_asn1(der: bytes) -> asn1_x509.Certificate:
    try:
        cert = asn1_x509.Certificate.load(der, strict=True)
        _ = cert.native  # asn1crypto parses lazily: force every field now, not mid-validation
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise CertificateLoadError(f"not a DER certificate ({e})") from e
    return cert


def _crypto_or_none(der: bytes) -> x509.Certificate | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. a negative serial number: asn1crypto read it
            return x509.load_der_x509_certificate(der)
    except ValueError:
        return None  # e.g. inherited DSA parameters: see path_views


def path_views(path: Sequence[asn1_x509.Certificate], known: Iterable[Cert]) -> tuple[Cert, ...]:
    """The path (anchor first, as asn1crypto) with a cryptography view of each certificate.

    A DSA key without parameters takes those of the key above it (RFC 3279 2.3.2, as the
    validator's working key does); its view is the certificate re-encoded with them, so its
    public key is the one that verifies (and is sized), its names and extensions unchanged.
    Only ``der`` is the certificate as issued; the view's DER, like its signature, is not.
    """
    by_der = {c.der: c for c in known}
    out: list[Cert] = []
    params: asn1_keys.DSAParams | None = None
    for asn1 in path:
        der = asn1.dump()
        cert = by_der.get(der) or Cert(der, asn1, _crypto_or_none(der))
        key = asn1.public_key
        if key.algorithm == "dsa":
            own = key["algorithm"]["parameters"]
            if own.native is not None:
                params = own
            elif params is not None and cert.crypto is None:
                cert = Cert(der, asn1, _with_params(asn1, params))
        else:
            params = None
        out.append(cert)
    return tuple(out)


def _with_params(cert: asn1_x509.Certificate, params: asn1_keys.DSAParams) -> x509.Certificate:
    tbs = cert["tbs_certificate"].copy()
    tbs["subject_public_key_info"]["algorithm"]["parameters"] = params.copy()
    view = asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": cert["signature_algorithm"],
            "signature_value": cert["signature_value"],
        }
    )
    try:
        return x509.load_der_x509_certificate(view.dump(force=True))
    except ValueError as e:
        raise CertificateLoadError(f"{cert.subject.human_friendly}: unreadable key ({e})") from e
