"""Build throw-away PKIs for tests and the demo: root -> intermediate -> leaves.

Code-first (cryptography builders), every validity window relative to one ``now``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
# Real time (to the second), so that certificates made for CLI tests stay valid whenever the
# suite runs; every window is relative to it.
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def make_key(kind: str = "rsa2048") -> PrivateKey:
    """``rsa<bits>`` or ``ec-p256`` / ``ec-p384`` / ``ec-p521``."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    curves: dict[str, ec.EllipticCurve] = {
        "ec-p256": ec.SECP256R1(),
        "ec-p384": ec.SECP384R1(),
        "ec-p521": ec.SECP521R1(),
    }
    return ec.generate_private_key(curves[kind])


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dsig test"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


@dataclass
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: PrivateKey

    def write(
        self, directory: Path, stem: str, *, password: bytes | None = None
    ) -> tuple[Path, Path]:
        """Write ``stem.key.pem`` (PKCS#8, encrypted when ``password``) and ``stem.cert.pem``."""
        directory.mkdir(parents=True, exist_ok=True)
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        key_path = directory / f"{stem}.key.pem"
        key_path.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc
            )
        )
        cert_path = directory / f"{stem}.cert.pem"
        cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return key_path, cert_path


def issue(
    cn: str,
    *,
    issuer: Issued | None = None,
    key_kind: str = "rsa2048",
    ca: bool = False,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    key_usage: set[str] | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    hash_alg: hashes.HashAlgorithm | None = None,
    extensions: list[tuple[x509.ExtensionType, bool]] | None = None,
    now: dt.datetime = NOW,
) -> Issued:
    """Issue a certificate; self-signed when ``issuer`` is None."""
    key = make_key(key_kind)
    subject = _name(cn)
    signer_key = issuer.key if issuer else key
    issuer_name = issuer.cert.subject if issuer else subject
    nb = not_before or now - dt.timedelta(days=30)
    na = not_after or now + dt.timedelta(days=365 * (10 if ca else 2))
    if key_usage is None:
        key_usage = (
            {"key_cert_sign", "crl_sign"} if ca else {"digital_signature", "non_repudiation"}
        )
    ku_flags = {
        name: name in key_usage
        for name in (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
        )
    }
    ku_flags["content_commitment"] = (
        "non_repudiation" in key_usage or ku_flags["content_commitment"]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(nb)
        .not_valid_after(na)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(**ku_flags, encipher_only=False, decipher_only=False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=True)
    for ext, critical in extensions or []:
        builder = builder.add_extension(ext, critical=critical)
    # builder.sign accepts only the SHA-2/SHA-3 family in its types; tests also sign with SHA-1/MD5
    algorithm: Any = hash_alg if hash_alg is not None else hashes.SHA256()
    cert = builder.sign(signer_key, algorithm)
    return Issued(cert, key)


@dataclass
class TestPki:
    """Root CA, intermediate CA and leaves issued by the intermediate."""

    root: Issued
    intermediate: Issued
    leaves: dict[str, Issued] = field(default_factory=dict)

    def write_anchors(self, directory: Path, prefix: str = "") -> tuple[Path, Path]:
        """Write ``<prefix>root.pem`` and ``<prefix>intermediate.pem``; returns both paths."""
        directory.mkdir(parents=True, exist_ok=True)
        root, inter = directory / f"{prefix}root.pem", directory / f"{prefix}intermediate.pem"
        root.write_bytes(self.root.cert.public_bytes(serialization.Encoding.PEM))
        inter.write_bytes(self.intermediate.cert.public_bytes(serialization.Encoding.PEM))
        return root, inter

    def leaf(self, name: str, **kwargs: object) -> Issued:
        """Issue (once) and return a named leaf; kwargs go to :func:`issue`."""
        if name not in self.leaves:
            self.leaves[name] = issue(f"dsig {name}", issuer=self.intermediate, **kwargs)  # type: ignore[arg-type]
        return self.leaves[name]


def build_pki(now: dt.datetime = NOW) -> TestPki:
    """A fresh root -> intermediate PKI."""
    root = issue("dsig Test Root CA", ca=True, now=now)
    inter = issue("dsig Test Intermediate CA", issuer=root, ca=True, now=now)
    return TestPki(root, inter)


TIMESTAMPING = ExtendedKeyUsageOID.TIME_STAMPING


def issue_for_public_key(
    cn: str,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    *,
    issuer: Issued,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    now: dt.datetime = NOW,
) -> x509.Certificate:
    """Issue a signer (leaf) certificate for a public key whose private half lives elsewhere.

    Used for keys generated on a PKCS#11 token: only the public key ever leaves the token.
    """
    nb = not_before or now - dt.timedelta(days=30)
    na = not_after or now + dt.timedelta(days=365 * 2)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(nb)
        .not_valid_after(na)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    return builder.sign(issuer.key, hashes.SHA256())
