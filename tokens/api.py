"""The key-provider seam: the signer only asks a provider to sign a digest and for its certificate.

A provider may be a key file (:mod:`tokens.files`) or a PKCS#11 token (:mod:`tokens.pkcs11`);
the DICOM signer never knows which.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from cryptography import x509

from tokens.digest import Digest

#: Asks the user for a secret; the argument says what for (e.g. "password for key.pem").
SecretPrompt = Callable[[str], str]


class SignatureScheme(enum.Enum):
    """How the digest becomes a DICOM Signature (0400,0120) value."""

    #: RSASSA-PKCS1-v1_5 with DigestInfo (PS3.15 C.1, RFC 2437): what DICOM profiles use.
    RSA_PKCS1V15 = "rsa-pkcs1v15"
    #: ECDSA, DER Ecdsa-Sig-Value as DCMTK writes it (outside the standard's profiles).
    ECDSA_DER = "ecdsa-der"


class ClosesOnExit:
    """``with provider:`` closes it on leaving the block (key providers subclass this)."""

    def close(self) -> None:
        """Release what the object holds."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class CertifiedKey(ClosesOnExit):
    """What every key provider holds alike: the signer certificate and the certificates that
    came with the key (providers subclass this and set both in ``__init__``)."""

    _certificate: x509.Certificate
    _chain: tuple[x509.Certificate, ...]

    @property
    def certificate(self) -> x509.Certificate:
        """The signer certificate (for a token: from the token unless one was given)."""
        return self._certificate

    @property
    def chain(self) -> Sequence[x509.Certificate]:
        """Issuer certificates known with the key (a PKCS#12 file's, the token's or the given
        file's), leaf excluded."""
        return self._chain


@runtime_checkable
class KeyProvider(Protocol):
    """A private key that signs digests, with the signer certificate that goes into the object."""

    @property
    def certificate(self) -> x509.Certificate:
        """The signer certificate (Certificate of Signer)."""
        ...

    @property
    def chain(self) -> Sequence[x509.Certificate]:
        """Further certificates known with the key (intermediates), leaf excluded."""
        ...

    @property
    def scheme(self) -> SignatureScheme:
        """The signature scheme this key produces."""
        ...

    def sign_digest(self, digest: Digest) -> bytes:
        """Sign a digest computed on the host; returns the Signature value (unpadded)."""
        ...

    def close(self) -> None:
        """Release the key (log out of a token); idempotent."""
        ...

    def __enter__(self) -> KeyProvider:
        """A provider is a context manager: ``with open_key_provider(...) as key:`` closes it."""
        ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
