"""Key files: PEM or DER, PKCS#8 or traditional, encrypted or not, and PKCS#12 bundles."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import pkcs12

from tokens.api import CertifiedKey, SecretPrompt, SignatureScheme
from tokens.certificates import certificates_in, load_certificate_file
from tokens.digest import Digest, prehashed
from tokens.errors import (
    KeyLoadError,
    KeyMismatchError,
    PasswordError,
    UnsupportedAlgorithmError,
)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise KeyLoadError(f"cannot read {path}: {e.strerror or e}") from None


def _is_encrypted(data: bytes) -> bool:
    return b"ENCRYPTED" in data[:200] or b"Proc-Type: 4,ENCRYPTED" in data


class FileKeyProvider(CertifiedKey):
    """A private key held in memory, loaded from files.

    Args:
        key: the private key.
        certificate: the signer certificate; must carry the key's public key.
        chain: further certificates (intermediates) that came with the key.
    """

    def __init__(
        self,
        key: PrivateKey,
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate] = (),
    ) -> None:
        if not _same_public_key(key, certificate):
            raise KeyMismatchError(
                "the certificate does not match the private key "
                f"(certificate subject: {certificate.subject.rfc4514_string()})"
            )
        self._key = key
        self._certificate = certificate
        self._chain = tuple(chain)

    @classmethod
    def from_files(
        cls,
        key_path: Path,
        cert_path: Path | None = None,
        *,
        password: bytes | None = None,
        secrets: SecretPrompt | None = None,
    ) -> FileKeyProvider:
        """Load a key (PEM/DER/PKCS#8/PKCS#12) and its certificate.

        The certificate comes from ``cert_path``, from the PKCS#12 bundle, or from a PEM
        certificate that follows the key in the same file. When the key is encrypted and no
        ``password`` is given, ``secrets`` is asked for one.
        """
        data = _read(key_path)
        if key_path.suffix.lower() in (".p12", ".pfx") or _looks_like_pkcs12(data):
            return cls._from_pkcs12(key_path, data, cert_path, password, secrets)
        if password is None and _is_encrypted(data) and secrets is not None:
            password = secrets(f"password for {key_path}").encode()
        key = _load_private_key(key_path, data, password)
        certs: list[x509.Certificate] = []
        if cert_path is not None:
            certs = load_certificate_file(cert_path)
        elif b"-----BEGIN CERTIFICATE" in data:  # a key file that carries its certificate
            certs = certificates_in(data, source=str(key_path))
        if not certs:
            raise KeyLoadError(f"{key_path}: no certificate given", option="cert")
        leaf = _pick_leaf(key, certs)
        return cls(key, leaf, [c for c in certs if c is not leaf])

    @classmethod
    def _from_pkcs12(
        cls,
        path: Path,
        data: bytes,
        cert_path: Path | None,
        password: bytes | None,
        secrets: SecretPrompt | None,
    ) -> FileKeyProvider:
        try:
            bundle = pkcs12.load_pkcs12(data, password)
        except ValueError:
            if password is None and secrets is not None:
                password = secrets(f"password for {path}").encode()
                return cls._from_pkcs12(path, data, cert_path, password, None)
            raise PasswordError(f"{path}: wrong or missing password for the PKCS#12 file") from None
        key = bundle.key
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise UnsupportedAlgorithmError(f"{path}: only RSA and EC keys are supported")
        chain = [c.certificate for c in bundle.additional_certs]
        if cert_path is not None:
            leaf = load_certificate_file(cert_path)[0]
        elif bundle.cert is not None:
            leaf = bundle.cert.certificate
        else:
            raise KeyLoadError(f"{path}: the PKCS#12 file holds no certificate", option="cert")
        return cls(key, leaf, chain)

    @property
    def scheme(self) -> SignatureScheme:
        """RSA PKCS#1 v1.5 for RSA keys, DER ECDSA for EC keys."""
        if isinstance(self._key, rsa.RSAPrivateKey):
            return SignatureScheme.RSA_PKCS1V15
        return SignatureScheme.ECDSA_DER

    @property
    def key_size(self) -> int:
        """Key size in bits."""
        return self._key.key_size

    def sign_digest(self, digest: Digest) -> bytes:
        """Sign a precomputed digest (RSA: PKCS#1 v1.5 over DigestInfo; EC: DER ECDSA)."""
        if isinstance(self._key, rsa.RSAPrivateKey):
            # Any hash, RIPEMD-160 included: pad the DER DigestInfo ourselves via the
            # "no algorithm" PKCS#1 v1.5 path, which signs the given bytes as DigestInfo.
            info = digest.algorithm.digest_info(digest.value)
            signature = self._key.sign(info, padding.PKCS1v15(), utils.NoDigestInfo())
            public = cast(rsa.RSAPublicKey, self._certificate.public_key())  # __init__ checked
            # The key was loaded unchecked: a broken one must not sign (~50 us to check).
            try:
                recovered = public.recover_data_from_signature(signature, padding.PKCS1v15(), None)
            except InvalidSignature:
                recovered = b""
            if recovered != info:
                raise KeyLoadError(
                    "the private key is inconsistent: its signature does not verify with "
                    "the certificate's public key"
                )
            return signature
        return self._key.sign(digest.value, ec.ECDSA(prehashed(digest.algorithm)))

    def close(self) -> None:
        """Nothing to release for an in-memory key."""


def _looks_like_pkcs12(data: bytes) -> bool:
    # DER SEQUENCE { INTEGER 3, ... }: the PFX version; PEM and PKCS#8 never start like this.
    return data[:1] == b"\x30" and b"\x02\x01\x03" in data[2:6]


def _load_private_key(path: Path, data: bytes, password: bytes | None) -> PrivateKey:
    loaders = (
        (serialization.load_pem_private_key,)
        if b"-----BEGIN" in data
        else (serialization.load_der_private_key,)
    )
    try:
        # OpenSSL's consistency check of an RSA private key costs ~30 ms (2048 bits) to
        # ~0.2 s (4096) per start; a bad key is still caught: the public key must match the
        # certificate, and each RSA signature is checked against it (sign_digest).
        key = loaders[0](data, password, unsafe_skip_rsa_key_validation=True)
    except TypeError:
        if password is None:
            raise PasswordError(f"{path}: the key is encrypted and no password was given") from None
        raise PasswordError(f"{path}: the key is not encrypted, but a password was given") from None
    except ValueError as e:
        if _is_encrypted(data) or password is not None:
            raise PasswordError(f"{path}: wrong password, or not a private key") from None
        raise KeyLoadError(f"{path}: not a private key ({str(e).splitlines()[0]})") from None
    except UnsupportedAlgorithm as e:
        raise UnsupportedAlgorithmError(f"{path}: unsupported key algorithm ({e})") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise UnsupportedAlgorithmError(f"{path}: only RSA and EC keys are supported")
    return key


def _same_public_key(key: PrivateKey, cert: x509.Certificate) -> bool:
    public = cert.public_key()
    if isinstance(key, rsa.RSAPrivateKey):
        return (
            isinstance(public, rsa.RSAPublicKey)
            and public.public_numbers() == key.public_key().public_numbers()
        )
    return (
        isinstance(public, ec.EllipticCurvePublicKey)
        and public.public_numbers() == key.public_key().public_numbers()
    )


def _pick_leaf(key: PrivateKey, certs: Sequence[x509.Certificate]) -> x509.Certificate:
    for cert in certs:
        if _same_public_key(key, cert):
            return cert
    raise KeyMismatchError(
        "the certificate does not match the private key "
        f"(certificate subject: {certs[0].subject.rfc4514_string()})"
    )
