"""Hash algorithms of DICOM MAC Algorithm (0400,0015), streaming hashing and DigestInfo."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import utils

from tokens.errors import UnsupportedAlgorithmError


class Hasher(Protocol):
    """The subset of hashlib's interface the signer and verifier use."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def digest(self) -> bytes: ...


class HashAlgorithm(enum.Enum):
    """DICOM MAC Algorithm defined terms (PS3.3 Table C.12-6); value = the DICOM term."""

    RIPEMD160 = "RIPEMD160"
    MD5 = "MD5"
    SHA1 = "SHA1"
    SHA256 = "SHA256"
    SHA384 = "SHA384"
    SHA512 = "SHA512"

    @classmethod
    def from_name(cls, name: str) -> HashAlgorithm:
        """Accept a DICOM term or a CLI spelling (``sha256``, ``SHA-256``, ``ripemd160``)."""
        key = name.strip().upper().replace("-", "").replace("_", "")
        try:
            return cls(key)
        except ValueError:
            raise UnsupportedAlgorithmError(f"unknown MAC algorithm {name!r}") from None

    @property
    def hashlib_name(self) -> str:
        """Name understood by :func:`hashlib.new`."""
        return self.value.lower()

    @property
    def digest_size(self) -> int:
        """Digest length in bytes."""
        return _SIZES[self]

    @property
    def weak(self) -> bool:
        """True for MD5 and SHA-1: collisions are practical, never use them for new signatures."""
        return self in (HashAlgorithm.MD5, HashAlgorithm.SHA1)

    @property
    def digest_info_prefix(self) -> bytes:
        """DER DigestInfo header before the digest (RFC 8017 §9.2; RIPEMD-160: 1.3.36.3.2.1)."""
        return _DIGEST_INFO_PREFIX[self]

    def new(self) -> Hasher:
        """A fresh hash object; raises UnsupportedAlgorithmError when the local OpenSSL lacks it."""
        try:
            return hashlib.new(self.hashlib_name)
        except ValueError:
            raise UnsupportedAlgorithmError(
                f"{self.value} is not available in this Python/OpenSSL build"
            ) from None

    def digest_info(self, digest: bytes) -> bytes:
        """DER DigestInfo{AlgorithmIdentifier(hash, NULL), digest} for PKCS#1 v1.5."""
        return self.digest_info_prefix + digest


_SIZES = {
    HashAlgorithm.RIPEMD160: 20,
    HashAlgorithm.MD5: 16,
    HashAlgorithm.SHA1: 20,
    HashAlgorithm.SHA256: 32,
    HashAlgorithm.SHA384: 48,
    HashAlgorithm.SHA512: 64,
}

_DIGEST_INFO_PREFIX = {
    HashAlgorithm.MD5: bytes.fromhex("3020300c06082a864886f70d020505000410"),
    HashAlgorithm.SHA1: bytes.fromhex("3021300906052b0e03021a05000414"),
    HashAlgorithm.RIPEMD160: bytes.fromhex("3021300906052b2403020105000414"),
    HashAlgorithm.SHA256: bytes.fromhex("3031300d060960864801650304020105000420"),
    HashAlgorithm.SHA384: bytes.fromhex("3041300d060960864801650304020205000430"),
    HashAlgorithm.SHA512: bytes.fromhex("3051300d060960864801650304020305000440"),
}


@dataclass(frozen=True, slots=True)
class Digest:
    """A finished hash value together with the algorithm that made it."""

    algorithm: HashAlgorithm
    value: bytes

    def __post_init__(self) -> None:
        if len(self.value) != self.algorithm.digest_size:
            raise ValueError(
                f"{self.algorithm.value} digest must be {self.algorithm.digest_size} bytes, "
                f"got {len(self.value)}"
            )


class _NamedDigest(hashes.HashAlgorithm):
    """A hash descriptor for Prehashed ECDSA/DSA when cryptography has no class for it
    (RIPEMD-160): (EC)DSA does not bind the hash, only the digest length matters."""

    def __init__(self, algorithm: HashAlgorithm) -> None:
        self._algorithm = algorithm

    @property
    def name(self) -> str:
        return self._algorithm.hashlib_name

    @property
    def digest_size(self) -> int:
        return self._algorithm.digest_size

    @property
    def block_size(self) -> int | None:
        return None


_CRYPTOGRAPHY_HASHES: dict[HashAlgorithm, type[hashes.HashAlgorithm]] = {
    HashAlgorithm.MD5: hashes.MD5,
    HashAlgorithm.SHA1: hashes.SHA1,
    HashAlgorithm.SHA256: hashes.SHA256,
    HashAlgorithm.SHA384: hashes.SHA384,
    HashAlgorithm.SHA512: hashes.SHA512,
}


def prehashed(algorithm: HashAlgorithm) -> utils.Prehashed:
    """``cryptography`` Prehashed wrapper for signing/verifying a digest with (EC)DSA."""
    cls = _CRYPTOGRAPHY_HASHES.get(algorithm)
    return utils.Prehashed(cls() if cls is not None else _NamedDigest(algorithm))
