"""Fixtures for the trust-module tests: one test PKI per module, HTTP revocation servers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import pki
from tests.helpers.pki_factory import NOW, Issued, TestPki, build_pki, issue
from tests.helpers.pki_servers import PkiServer


def der(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    """DER encoding of a certificate or CRL."""
    return obj.public_bytes(serialization.Encoding.DER)


def policy(p: TestPki, **kwargs: object) -> pki.TrustPolicy:
    """A policy trusting ``p.root`` with ``p.intermediate`` as untrusted intermediate."""
    kwargs.setdefault("intermediates", (p.intermediate.cert,))
    return pki.TrustPolicy(trust_roots=(p.root.cert,), **kwargs)  # type: ignore[arg-type]


def codes(result: pki.TrustResult) -> list[str]:
    """Finding codes of a result, in order."""
    return [f.code for f in result.findings]


@pytest.fixture(scope="module")
def test_pki() -> TestPki:
    """Root -> intermediate, leaves on demand (RSA keys are slow: build once per module)."""
    return build_pki()


@dataclass
class OnlinePki:
    """A PKI whose certificates point at a live :class:`PkiServer` (CRL DP, OCSP, caIssuers)."""

    server: PkiServer
    root: Issued
    intermediate: Issued
    leaf: Issued  # OCSP only (no CRL DP)
    revoked_leaf: Issued  # OCSP only, revoked 2 days before NOW
    crl_leaf: Issued  # CRL DP only
    aia_leaf: Issued  # OCSP + caIssuers pointing at the intermediate


@pytest.fixture(scope="module")
def online_pki() -> Iterator[OnlinePki]:
    """Live 127.0.0.1 revocation services; stopped when the module's tests are done."""
    with PkiServer() as server:
        root = issue("dsig Online Root CA", ca=True)
        server.add_authority("root", root)
        inter = issue(
            "dsig Online Intermediate CA",
            issuer=root,
            ca=True,
            extensions=server.revinfo_extensions("root", crl=False),
        )
        auth = server.add_authority("inter", inter)
        ocsp_only = server.revinfo_extensions("inter", crl=False)
        leaf = issue("dsig online signer", issuer=inter, extensions=ocsp_only)
        revoked = issue("dsig online revoked", issuer=inter, extensions=ocsp_only)
        auth.revoke(revoked.cert, NOW - dt.timedelta(days=2))
        crl_leaf = issue(
            "dsig crl signer",
            issuer=inter,
            extensions=server.revinfo_extensions("inter", ocsp=False),
        )
        aia_leaf = issue(
            "dsig aia signer",
            issuer=inter,
            extensions=server.revinfo_extensions("inter", crl=False, ca_issuers=True),
        )
        yield OnlinePki(server, root, inter, leaf, revoked, crl_leaf, aia_leaf)


def resign_sha1(cert: x509.Certificate, issuer: Issued) -> x509.Certificate:
    """Re-sign ``cert`` with SHA-1/RSA (cryptography's builder refuses SHA-1 signatures)."""
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    assert isinstance(issuer.key, rsa.RSAPrivateKey)
    parsed = asn1_x509.Certificate.load(der(cert))
    tbs = parsed["tbs_certificate"]
    tbs["signature"] = {"algorithm": "sha1_rsa", "parameters": None}
    tbs_der = tbs.dump(force=True)
    signature = issuer.key.sign(tbs_der, padding.PKCS1v15(), hashes.SHA1())
    rebuilt = asn1_x509.Certificate(
        {
            "tbs_certificate": asn1_x509.TbsCertificate.load(tbs_der),
            "signature_algorithm": {"algorithm": "sha1_rsa", "parameters": None},
            "signature_value": signature,
        }
    )
    return x509.load_der_x509_certificate(rebuilt.dump())
