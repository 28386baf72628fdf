"""One certificate-file loader: key files, tokens and trust stores read PEM/DER/PKCS#7 files
through :func:`tokens.certificates.load_certificate_file`, each with its own error class."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import pki
from pki.errors import CertificateLoadError
from tests.conftest import CorePki
from tokens import KeyLoadError, open_key_provider
from tokens.certificates import load_certificate_file

ROOT = Path(__file__).resolve().parents[2]
#: What parses certificate *files* (PEM bundles, PKCS#7); single DER certificates taken from a
#: DICOM element, a CMS structure or a token object are decoded where they are found.
BUNDLE_PARSERS = {"load_pem_x509_certificate", "load_pem_x509_certificates"} | {
    "load_pem_pkcs7_certificates", "load_der_pkcs7_certificates"
}  # fmt: skip


def test_only_tokens_certificates_parses_certificate_files() -> None:
    found = []
    for package in ("dsig", "pki", "tokens"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Attribute) and node.attr in BUNDLE_PARSERS:
                    found.append(str(path.relative_to(ROOT)))
    assert found and set(found) == {"tokens/certificates.py"}


def test_both_front_ends_read_the_same_formats(core_pki: CorePki, tmp_path: Path) -> None:
    chain = core_pki.rsa_cert.read_bytes() + core_pki.intermediate.read_bytes()
    bundle = tmp_path / "chain.pem"
    bundle.write_bytes(chain)
    der = tmp_path / "leaf.der"
    der.write_bytes(load_certificate_file(bundle)[0].public_bytes(serialization.Encoding.DER))
    for path in (bundle, der):
        assert load_certificate_file(path)[0] == pki.load_certificates(path)[0]
    with open_key_provider(str(core_pki.rsa_key), cert=str(bundle)) as key:
        assert key.certificate == load_certificate_file(bundle)[0]
        assert list(key.chain) == load_certificate_file(bundle)[1:]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a certificate"),
        (b"junk", "not a certificate file"),
        (b"-----BEGIN X-----\nAAAA\n-----END X-----\n", "no certificate found"),
    ],
)
def test_each_caller_gets_its_own_error(
    core_pki: CorePki, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    with pytest.raises(CertificateLoadError, match=message) as trust_error:
        pki.load_certificates(path)
    with pytest.raises(KeyLoadError, match=message) as key_error:
        open_key_provider(str(core_pki.rsa_key), cert=str(path)).close()
    assert str(path) in str(trust_error.value) and str(path) in str(key_error.value)
    assert "\n" not in str(trust_error.value) + str(key_error.value)
