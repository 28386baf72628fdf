"""Trust stores, intermediates and CRLs from every supported format; builder errors."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

import pki
from tests.helpers import pki_factory as factory
from tests.helpers.pki_factory import NOW
from tests.helpers.pki_servers import make_crl
from tests.unit.pki.conftest import codes

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER


def _subject_hash(cert: x509.Certificate) -> str:
    """OpenSSL's X509_NAME_hash (SHA-1 of the canonical subject), when openssl is absent."""
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-subject_hash"],
        input=cert.public_bytes(PEM),
        capture_output=True,
        check=True,
    )
    return out.stdout.decode().strip()


@pytest.fixture(scope="module")
def stores(test_pki: factory.TestPki, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The root (plus an unrelated cert) written in every format."""
    d = tmp_path_factory.mktemp("stores")
    root, extra = test_pki.root.cert, factory.issue("dsig Unrelated Root", ca=True).cert
    out = {
        "pem-bundle": d / "bundle.pem",
        "der": d / "root.der",
        "p7b-pem": d / "bundle.p7b",
        "p7b-der": d / "bundle.p7c",
        "dir": d / "dir",
        "hashed-dir": d / "hashed",
    }
    out["pem-bundle"].write_bytes(extra.public_bytes(PEM) + b"\n" + root.public_bytes(PEM))
    out["der"].write_bytes(root.public_bytes(DER))
    out["p7b-pem"].write_bytes(pkcs7.serialize_certificates([extra, root], PEM))
    out["p7b-der"].write_bytes(pkcs7.serialize_certificates([root, extra], DER))
    out["dir"].mkdir()
    (out["dir"] / "root.crt").write_bytes(root.public_bytes(DER))
    (out["dir"] / "other.pem").write_bytes(extra.public_bytes(PEM))
    (out["dir"] / "README.txt").write_text("not a certificate")
    hashed = out["hashed-dir"]
    hashed.mkdir()
    (hashed / "root.pem").write_bytes(root.public_bytes(PEM))
    if (
        shutil.which("openssl")
        and subprocess.run(
            ["openssl", "rehash", str(hashed)], capture_output=True, check=False
        ).returncode
        == 0
    ):
        (hashed / "root.pem").rename(hashed / ".root.pem")  # hidden: only the hash link remains
        link = next(hashed.glob("*.0"))
        link.unlink()
        (hashed / link.name).write_bytes(root.public_bytes(PEM))
    else:  # compute the name the way c_rehash does
        (hashed / f"{_subject_hash(root)}.0").write_bytes(root.public_bytes(PEM))
    return out


@pytest.mark.parametrize("fmt", ["pem-bundle", "der", "p7b-pem", "p7b-der", "dir", "hashed-dir"])
def test_trust_store_formats(
    fmt: str, stores: dict[str, Path], test_pki: factory.TestPki, tmp_path: Path
) -> None:
    inter = tmp_path / "inter.pem"
    inter.write_bytes(test_pki.intermediate.cert.public_bytes(PEM))
    evaluator = pki.build_evaluator(trust_stores=[stores[fmt]], untrusted=[inter])
    leaf = test_pki.leaf("signer").cert
    result = evaluator.evaluate(leaf, at=NOW)
    assert result.indication is pki.TrustIndication.VALID, result.findings
    assert test_pki.root.cert in pki.load_certificates(stores[fmt])


def test_hashed_dir_has_hash_names(stores: dict[str, Path]) -> None:
    names = [p.name for p in stores["hashed-dir"].iterdir() if not p.name.startswith(".")]
    assert len(names) == 1
    assert names[0].endswith(".0")
    assert len(names[0]) == 10


def test_untrusted_formats(
    stores: dict[str, Path], test_pki: factory.TestPki, tmp_path: Path
) -> None:
    p7 = tmp_path / "chain.p7b"
    p7.write_bytes(pkcs7.serialize_certificates([test_pki.intermediate.cert], DER))
    evaluator = pki.build_evaluator(trust_stores=[stores["der"]], untrusted=[p7])
    assert evaluator.evaluate(test_pki.leaf("signer").cert, at=NOW).indication is (
        pki.TrustIndication.VALID
    )


def test_crl_formats(test_pki: factory.TestPki, stores: dict[str, Path], tmp_path: Path) -> None:
    revoked = test_pki.leaf("revoked").cert
    crl = make_crl(
        test_pki.intermediate,
        [(revoked.serial_number, NOW - dt.timedelta(days=1), x509.ReasonFlags.superseded)],
    )
    inter = tmp_path / "inter.pem"
    inter.write_bytes(test_pki.intermediate.cert.public_bytes(PEM))
    (tmp_path / "crls").mkdir()
    (tmp_path / "crls" / "inter.crl").write_bytes(crl.public_bytes(DER))
    pem = tmp_path / "inter.crl.pem"
    pem.write_bytes(crl.public_bytes(PEM))
    for source in (pem, tmp_path / "crls", tmp_path / "crls" / "inter.crl"):
        evaluator = pki.build_evaluator(
            trust_stores=[stores["der"]], untrusted=[inter], crls=[source]
        )
        result = evaluator.evaluate(revoked, at=NOW)
        assert codes(result) == ["CERT_REVOKED"], source
        assert "superseded" in result.findings[0].message


def test_trusted_certificate_pem(test_pki: factory.TestPki, tmp_path: Path) -> None:
    path = tmp_path / "trusted.pem"
    subprocess.run(
        ["openssl", "x509", "-addtrust", "anyExtendedKeyUsage", "-trustout", "-out", str(path)],
        input=test_pki.root.cert.public_bytes(PEM),
        check=True,
        capture_output=True,
    )
    assert pki.load_certificates(path) == (test_pki.root.cert,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"trust_stores": []}, "no trust anchors"),
        ({"trust_stores": ["/nonexistent/roots.pem"]}, "does not exist"),
        ({"trust_stores": ["{garbage}"]}, "not a certificate"),
        ({"trust_stores": ["{empty_dir}"]}, "holds no certificate"),
        ({"trust_stores": ["{root}"], "crls": ["{garbage}"]}, "not a CRL"),
        ({"trust_stores": ["{root}"], "crls": ["/nonexistent.crl"]}, "does not exist"),
        ({"trust_stores": ["{root}"], "revocation": "sometimes"}, "invalid revocation mode"),
        ({"trust_stores": ["{root}"], "allow_weak": ["md2"]}, "unknown weak algorithm"),
        ({"trust_stores": ["{root}"], "timeout": 0}, "timeout"),
        ({"trust_stores": ["{root}"], "ocsp_responses": ["{garbage}"]}, "OCSP"),
    ],
)
def test_builder_errors(
    kwargs: dict[str, object], match: str, tmp_path: Path, test_pki: factory.TestPki
) -> None:
    (tmp_path / "garbage").write_bytes(b"\x30\x03\x02\x01\x00 not DER")
    (tmp_path / "empty").mkdir()
    (tmp_path / "root.pem").write_bytes(test_pki.root.cert.public_bytes(PEM))
    subst = {
        "{garbage}": tmp_path / "garbage",
        "{empty_dir}": tmp_path / "empty",
        "{root}": tmp_path / "root.pem",
    }
    resolved = {
        k: [subst.get(x, Path(x)) for x in v] if isinstance(v, list) and k != "allow_weak" else v
        for k, v in kwargs.items()
    }
    with pytest.raises(pki.TrustConfigError, match=match) as info:
        pki.build_evaluator(**resolved)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_revocation_mode_defaults_and_parse(test_pki: factory.TestPki) -> None:
    roots = (test_pki.root.cert,)
    # Checked unless declined: hard-fail with or without a source configured.
    assert pki.TrustPolicy(trust_roots=roots).revocation_mode is pki.RevocationMode.HARD_FAIL
    assert pki.TrustPolicy(trust_roots=roots, online=True).revocation_mode is (
        pki.RevocationMode.HARD_FAIL
    )
    crl = make_crl(test_pki.root).public_bytes(DER)
    assert pki.TrustPolicy(trust_roots=roots, crls=(crl,)).revocation_mode is (
        pki.RevocationMode.HARD_FAIL
    )
    assert pki.RevocationMode.parse("Soft-Fail") is pki.RevocationMode.SOFT_FAIL
    with pytest.raises(pki.TrustConfigError):
        pki.TrustPolicy(trust_roots=())


def test_algorithm_rule_names() -> None:
    rule = pki.AlgorithmRule.from_names(["SHA1", "rsa1024", "dsa-1024", "md5"])
    assert rule.weak_hashes == frozenset({"md2"})
    assert (rule.min_rsa_bits, rule.min_dsa_bits) == (1024, 1024)
    assert pki.AlgorithmRule().weak_hashes == frozenset({"md2", "md5", "sha1"})


def test_evaluator_caches(
    test_pki: factory.TestPki, stores: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluator = pki.build_evaluator(trust_stores=[stores["der"]])
    calls: list[object] = []
    real = pki.evaluate_chain

    def counting(*args: object, **kwargs: object) -> pki.TrustResult:
        calls.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("pki.evaluator.evaluate_chain", counting)
    leaf = test_pki.leaf("signer").cert
    first = evaluator.evaluate(leaf, at=NOW, extra_certs=[test_pki.intermediate.cert])
    again = evaluator.evaluate(leaf, at=NOW, extra_certs=[test_pki.intermediate.cert])
    assert first is again
    assert len(calls) == 1
    evaluator.evaluate(
        leaf, at=NOW + dt.timedelta(seconds=1), extra_certs=[test_pki.intermediate.cert]
    )
    assert len(calls) == 2


def test_fingerprint(test_pki: factory.TestPki) -> None:
    cert = test_pki.root.cert
    assert pki.fingerprint(cert) == cert.fingerprint(hashes.SHA256()).hex()


def test_policy_coerces_lists(test_pki: factory.TestPki) -> None:
    pol = pki.TrustPolicy(
        trust_roots=[test_pki.root.cert],  # type: ignore[arg-type]
        intermediates=[test_pki.intermediate.cert],  # type: ignore[arg-type]
    )
    assert isinstance(pol.trust_roots, tuple)
    assert pki.evaluate_chain(test_pki.leaf("signer").cert, pol, at=NOW).indication is (
        pki.TrustIndication.VALID
    )
