"""Bound the certificates a file offers (signature bags, timestamp tokens) to path building.

Path building over N look-alike CA certificates (one name, signed in a ring) is factorial in
N; a file is outside anyone's control, so what it offers counts against a small budget:
at most :data:`MAX_PER_NAME` certificates per subject name and :data:`MAX_OFFERED` in all.
Certificates whose key identifier matches an authority key identifier in the chain being
built are kept first, so a real issuer survives look-alikes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki.cert_input import Cert

MAX_PER_NAME = 2
MAX_OFFERED = 8


def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except (x509.ExtensionNotFound, ValueError):
        return None


def _aki(cert: x509.Certificate) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    return ext.key_identifier


def bound_offered(
    leaf: Cert,
    offered: Sequence[x509.Certificate],
    known: Sequence[Cert] = (),
) -> tuple[tuple[x509.Certificate, ...], int]:
    """(the offered certificates path building may use, how many were dropped).

    ``known`` (anchors, configured intermediates) are never dropped and never counted:
    offered duplicates of them are simply removed.
    """
    known_der = {c.der for c in (leaf, *known)}
    unique: list[x509.Certificate] = []
    seen: set[bytes] = set()
    for cert in offered:
        der = cert.public_bytes(serialization.Encoding.DER)
        if der not in known_der and der not in seen:
            seen.add(der)
            unique.append(cert)
    akis = (*(c.aki for c in (leaf, *known)), *(_aki(c) for c in unique))
    wanted = {k for k in akis if k}
    # Stable: those an AKI asks for first, then the file's order.
    ranked = sorted(unique, key=lambda c: 0 if _ski(c) in wanted else 1)
    per_name: Counter[bytes] = Counter()
    kept: list[x509.Certificate] = []
    for cert in ranked:
        name = cert.subject.public_bytes()
        if per_name[name] >= MAX_PER_NAME or len(kept) >= MAX_OFFERED:
            continue
        per_name[name] += 1
        kept.append(cert)
    return tuple(kept), len(unique) - len(kept)
