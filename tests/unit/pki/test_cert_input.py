"""Certificates cryptography refuses, given to pki as DER or asn1crypto: a DSA signer whose
parameters are inherited from its issuer (RFC 3279 2.3.2), and inputs that are no certificate."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa

import pki
from tests.helpers import pki_factory as factory
from tests.helpers.pki_factory import NOW
from tests.unit.pki.conftest import codes, der

V = pki.TrustIndication.VALID
_ALLOW_DSA1024 = pki.AlgorithmRule.from_names(["dsa1024"])


def _dsa_issued(
    cn: str,
    key: dsa.DSAPrivateKey,
    issuer: x509.Certificate,
    issuer_key: factory.PrivateKey | dsa.DSAPrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    usage = {"key_cert_sign", "crl_sign"} if ca else {"digital_signature"}
    template = factory.issue(cn, ca=ca, key_usage=usage).cert  # its names, dates, extensions
    builder = (
        x509.CertificateBuilder()
        .subject_name(template.subject)
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(template.serial_number)
        .not_valid_before(template.not_valid_before_utc)
        .not_valid_after(template.not_valid_after_utc)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    for ext in template.extensions:
        if not isinstance(ext.value, x509.SubjectKeyIdentifier):
            builder = builder.add_extension(ext.value, critical=ext.critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _without_params(
    cert: x509.Certificate, issuer_key: dsa.DSAPrivateKey | rsa.RSAPrivateKey
) -> bytes:
    """``cert`` with its DSA parameters left out (inherited), signed again by its issuer."""
    parsed = asn1_x509.Certificate.load(der(cert))
    tbs = parsed["tbs_certificate"].copy()
    tbs["subject_public_key_info"]["algorithm"]["parameters"] = None
    tbs_der = tbs.dump(force=True)
    if isinstance(issuer_key, rsa.RSAPrivateKey):
        signature = issuer_key.sign(tbs_der, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = issuer_key.sign(tbs_der, hashes.SHA256())
    out = asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": parsed["signature_algorithm"],
            "signature_value": signature,
        }
    )
    return bytes(out.dump(force=True))


class DsaInherited:
    """root (RSA) -> intermediate (RSA) -> DSA CA (1024-bit parameters) -> signer whose key
    inherits them, as DER only."""

    def __init__(self, p: factory.TestPki) -> None:
        params = dsa.generate_parameters(1024)
        self.ca_key = params.generate_private_key()
        self.ca = _dsa_issued(
            "dsig DSA CA", self.ca_key, p.intermediate.cert, p.intermediate.key, ca=True
        )
        signer = _dsa_issued(
            "dsig DSA inherited signer",
            params.generate_private_key(),
            self.ca,
            self.ca_key,
            ca=False,
        )
        self.leaf = _without_params(signer, self.ca_key)
        self.policy = pki.TrustPolicy(
            trust_roots=(p.root.cert,),
            intermediates=(p.intermediate.cert, self.ca),
            algorithms=_ALLOW_DSA1024,
        )


@pytest.fixture(scope="module")
def inherited(test_pki: factory.TestPki) -> DsaInherited:
    return DsaInherited(test_pki)


def test_cryptography_refuses_the_inherited_signer(inherited: DsaInherited) -> None:
    with pytest.raises(ValueError, match="SubjectPublicKeyInfo"):
        x509.load_der_x509_certificate(inherited.leaf)


def test_inherited_parameters_signer_as_der_is_valid(
    inherited: DsaInherited, test_pki: factory.TestPki
) -> None:
    for leaf in (inherited.leaf, asn1_x509.Certificate.load(inherited.leaf)):
        result = pki.evaluate_chain(leaf, inherited.policy, at=NOW)
        assert (result.indication, codes(result)) == (V, []), result.findings
        assert result.chain[1:] == (inherited.ca, test_pki.intermediate.cert, test_pki.root.cert)
        # the view of the signer: its own names, the key completed with the CA's parameters
        view = result.chain[0]
        assert view.subject.rfc4514_string() == "CN=dsig DSA inherited signer,O=dsig test"
        key = view.public_key()
        assert isinstance(key, dsa.DSAPublicKey) and key.key_size == 1024
        ca_key = inherited.ca.public_key()
        assert isinstance(ca_key, dsa.DSAPublicKey)
        assert key.parameters().parameter_numbers() == ca_key.parameters().parameter_numbers()


def test_inherited_key_size_is_that_of_the_inherited_parameters(
    inherited: DsaInherited, test_pki: factory.TestPki
) -> None:
    strict = pki.TrustPolicy(
        trust_roots=(test_pki.root.cert,), intermediates=(test_pki.intermediate.cert, inherited.ca)
    )
    result = pki.evaluate_chain(inherited.leaf, strict, at=NOW)
    assert result.indication is pki.TrustIndication.INVALID
    signer = [f.message for f in result.findings if "inherited signer" in f.message]
    assert signer == ["CN=dsig DSA inherited signer,O=dsig test: DSA key of 1024 bits (policy "
                      "needs >= 2048)"]  # fmt: skip


def test_inherited_signer_rules_apply(inherited: DsaInherited) -> None:
    # its key usage is digitalSignature only: a rule asking for nonRepudiation refuses it
    picky = dataclasses.replace(inherited.policy, key_usage=frozenset({"non_repudiation"}))
    result = pki.evaluate_chain(inherited.leaf, picky, at=NOW)
    assert (result.indication, codes(result)) == (pki.TrustIndication.INVALID, ["KEY_USAGE"])


def test_nothing_to_inherit_is_no_verdict(
    inherited: DsaInherited, test_pki: factory.TestPki
) -> None:
    """A DSA signer without parameters under an RSA issuer: the path validates (its key signs
    nothing in it), but its key is unknown, so key size and signer rules cannot be checked."""
    issuer = test_pki.intermediate
    assert isinstance(issuer.key, rsa.RSAPrivateKey)
    bare = dsa.generate_parameters(1024).generate_private_key()
    leaf = _without_params(
        _dsa_issued("dsig DSA orphan", bare, issuer.cert, issuer.key, ca=False), issuer.key
    )
    result = pki.evaluate_chain(leaf, inherited.policy, at=NOW)
    assert result.indication is pki.TrustIndication.INDETERMINATE
    assert codes(result) == ["VALIDATION_ERROR"] and result.chain == ()
    assert "dsig DSA orphan" in result.findings[0].message


def test_inherited_intermediate_as_der(inherited: DsaInherited, test_pki: factory.TestPki) -> None:
    """An intermediate given as DER (here one cryptography reads) is used like the object."""
    policy = pki.TrustPolicy(
        trust_roots=(test_pki.root.cert,),
        intermediates=(der(test_pki.intermediate.cert), der(inherited.ca)),
        algorithms=_ALLOW_DSA1024,
    )
    result = pki.evaluate_chain(inherited.leaf, policy, at=NOW)
    assert result.indication is V and len(result.chain) == 4, result.findings


def test_cached_evaluator_takes_der(inherited: DsaInherited) -> None:
    evaluator = pki.PolicyEvaluator(inherited.policy)
    first = evaluator.evaluate(inherited.leaf, at=NOW)
    assert first.indication is V
    assert evaluator.evaluate(inherited.leaf, at=NOW) is first


@pytest.mark.parametrize("junk", [b"", b"not a certificate", b"\x30\x03\x02\x01\x01"])
def test_der_that_is_not_a_certificate_is_a_load_error(
    junk: bytes, test_pki: factory.TestPki
) -> None:
    policy = pki.TrustPolicy(trust_roots=(test_pki.root.cert,))
    with pytest.raises(pki.CertificateLoadError, match="not a DER certificate"):
        pki.evaluate_chain(junk, policy, at=NOW)
    with pytest.raises(pki.CertificateLoadError, match="not a DER certificate"):
        pki.TrustPolicy(trust_roots=(test_pki.root.cert,), intermediates=(junk,))


def test_other_types_are_a_load_error(test_pki: factory.TestPki) -> None:
    policy = pki.TrustPolicy(trust_roots=(test_pki.root.cert,))
    with pytest.raises(pki.CertificateLoadError, match="got str"):
        pki.evaluate_chain("leaf.pem", policy, at=NOW)  # asn1crypto is untyped: checked at run time
    with pytest.raises(pki.CertificateLoadError, match="PEM given"):
        # a PEM file's bytes are not DER: callers load them with pki.load_certificates
        pki.evaluate_chain(
            test_pki.root.cert.public_bytes(serialization.Encoding.PEM), policy, at=NOW
        )


def _pkits() -> Path | None:
    env = os.environ.get("DSIG_PKITS_DIR")
    here = Path(__file__).resolve().parents[4] / "shared/conformance/nist-pkits"
    for candidate in [Path(env)] if env else [here]:
        if (candidate / "pkits.json").is_file():
            return candidate
    return None


def test_pkits_inherited_case_as_der_only() -> None:
    """PKITS 4.1.5 with every certificate given as DER: the manifest's verdict and path."""
    suite = _pkits()
    if suite is None:
        pytest.skip("NIST PKITS not present (DSIG_PKITS_DIR)")
    case = next(
        c
        for c in json.loads((suite / "pkits.json").read_text())
        if c["name"] == "valid_dsa_parameter_inheritance_test5"
    )
    certs = suite / "certs"
    anchor = x509.load_der_x509_certificate((certs / "TrustAnchorRootCertificate.crt").read_bytes())
    crls = [*case["crls"], "TrustAnchorRootCRL.crl"]
    policy = pki.TrustPolicy(
        trust_roots=(anchor,),
        intermediates=tuple((certs / n).read_bytes() for n in case["other_certs"]),
        crls=tuple((suite / "crls" / n).read_bytes() for n in crls),
        revocation=pki.RevocationMode.HARD_FAIL,
        algorithms=pki.AlgorithmRule.from_names(["sha1", "dsa1024"]),
        key_usage=frozenset(),
        signing_eku=frozenset(),
    )
    at = dt.datetime(2022, 5, 1, tzinfo=dt.UTC)
    result = pki.evaluate_chain((certs / case["cert"]).read_bytes(), policy, at=at)
    assert "error" not in case
    assert (result.indication, codes(result)) == (V, []), result.findings
    assert len(result.chain) == case["path_len"] == 4
