"""How long hash functions and signature keys stay suitable for evidence: the table behind
``dsig evidence status`` and the renewal checks of ``dsig evidence verify``.

Each entry is the last day an algorithm is considered secure for new timestamps and hash
trees; ``None`` means no public end date yet. Sources (read 2026):

- NIST SP 800-131A Rev. 2 (2019), "Transitioning the Use of Cryptographic Algorithms and Key
  Lengths", Tables 1, 8 and 9: SHA-1 disallowed for digital signature generation (and so for
  evidence) after 2013; RSA/DSA below 2048 bits disallowed after 2013.
- NIST SP 800-57 Part 1 Rev. 5 (2020), Table 4: 112-bit security strength (RSA-2048,
  SHA-224, P-224) acceptable through 2030; 128 bits and more "acceptable beyond 2031".
- NIST IR 8547 (initial public draft, November 2024), "Transition to Post-Quantum
  Cryptography Standards", Tables 2 and 4: quantum-vulnerable RSA and ECDSA deprecated after
  2030 at 112 bits and disallowed after 2035 at every size.
- MD5: practical collisions since 2004 (Wang et al.); RFC 6151 (2011) forbids it for
  signatures; taken as unsuitable from 2005.

The hash functions SHA-256/384/512 and SHA3-* have no announced end (None): a record whose
hashes are all of them is due for renewal only because of its timestamp (TSA key or
certificate). A table can be passed explicitly to every API function that uses one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa


def _day(text: str) -> dt.datetime:
    """The end of that day, UTC."""
    return dt.datetime.fromisoformat(text).replace(hour=23, minute=59, second=59, tzinfo=dt.UTC)


_HASHES: dict[str, dt.datetime | None] = {
    "md5": _day("2004-12-31"),
    "sha1": _day("2013-12-31"),
    "ripemd160": _day("2013-12-31"),
    "sha224": _day("2030-12-31"),
    "sha256": None,
    "sha384": None,
    "sha512": None,
    "sha512_224": _day("2030-12-31"),
    "sha512_256": None,
    "sha3_224": _day("2030-12-31"),
    "sha3_256": None,
    "sha3_384": None,
    "sha3_512": None,
}

#: (key family, minimum bits) -> last day; the largest minimum not above the key size applies.
_KEYS: dict[tuple[str, int], dt.datetime | None] = {
    ("rsa", 0): _day("2013-12-31"),
    ("rsa", 2048): _day("2030-12-31"),
    ("rsa", 3072): _day("2035-12-31"),
    ("dsa", 0): _day("2013-12-31"),
    ("dsa", 2048): _day("2030-12-31"),
    ("ec", 0): _day("2013-12-31"),
    ("ec", 224): _day("2030-12-31"),
    ("ec", 256): _day("2035-12-31"),
    ("ed", 0): _day("2035-12-31"),
}

SOURCES = (
    "NIST SP 800-131A Rev. 2 (2019)",
    "NIST SP 800-57 Part 1 Rev. 5 (2020), Table 4",
    "NIST IR 8547 ipd (2024), Tables 2 and 4",
    "RFC 6151 (2011) for MD5",
)


@dataclass(frozen=True)
class AlgorithmLifetimes:
    """Last secure day of hash functions (by hashlib name) and of key families/sizes."""

    hashes: Mapping[str, dt.datetime | None] = field(default_factory=lambda: dict(_HASHES))
    keys: Mapping[tuple[str, int], dt.datetime | None] = field(default_factory=lambda: dict(_KEYS))

    def hash_end(self, name: str) -> dt.datetime | None:
        """Last secure moment of a hash; an unknown hash counts as already unsuitable."""
        if name not in self.hashes:
            return dt.datetime.min.replace(tzinfo=dt.UTC)
        return self.hashes[name]

    def key_end(self, family: str, bits: int) -> dt.datetime | None:
        """Last secure moment of a key of ``family`` (rsa, dsa, ec, ed) and ``bits``."""
        rows = [(b, end) for (f, b), end in self.keys.items() if f == family and b <= bits]
        if not rows:
            return dt.datetime.min.replace(tzinfo=dt.UTC)
        return max(rows, key=lambda r: r[0])[1]

    def certificate_key_end(self, cert: x509.Certificate) -> dt.datetime | None:
        """:meth:`key_end` of a certificate's public key."""
        family, bits = key_kind(cert)
        return self.key_end(family, bits)


def key_kind(cert: x509.Certificate) -> tuple[str, int]:
    """(family, bits) of a certificate's public key; ("unknown", 0) for anything else."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa", key.key_size
    if isinstance(key, dsa.DSAPublicKey):
        return "dsa", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ec", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "ed", 256
    return "unknown", 0


def earliest(*moments: dt.datetime | None) -> dt.datetime | None:
    """The earliest of the moments given (None = no end)."""
    known = [m for m in moments if m is not None]
    return min(known) if known else None


DEFAULT_LIFETIMES = AlgorithmLifetimes()
