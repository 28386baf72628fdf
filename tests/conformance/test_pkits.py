"""NIST PKITS path-validation cases through :func:`pki.evaluate_chain`, driven by the manifest.

Each case runs with the PKITS anchor, the case's certificates as untrusted intermediates and
its CRLs plus the anchor's CRL, at a fixed moment inside the anchor's validity. SHA-1 and
1024-bit RSA/DSA are allowed explicitly (the suite dates from 2010); the signer key-usage
rules (key usage, EKU, no CA signer) are switched off because PKITS tests path validation,
not signing use. Each case's PKIX initial inputs (policy set, explicit policy, mapping and
anyPolicy inhibition) come from its ``params``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from typer.testing import CliRunner

import pki
from dsig.cli import app


def _find_suite() -> Path:
    """NIST PKITS from ``$DSIG_PKITS_DIR``, else ``shared/conformance/nist-pkits`` beside any
    ancestor of this file (a clone anywhere under /work finds /work/shared)."""
    env = os.environ.get("DSIG_PKITS_DIR")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [parent / "shared/conformance/nist-pkits" for parent in here.parents]
    for candidate in candidates:
        if (candidate / "pkits.json").is_file():
            return candidate
    return candidates[-1]


SUITE = _find_suite()
AT = dt.datetime(2022, 5, 1, tzinfo=dt.UTC)

#: Cases whose outcome differs from the manifest, with the reason, per test: keyed by case name.
EXPECTED_TO_DIFFER: dict[str, str] = {}
CLI_EXPECTED_TO_DIFFER: dict[str, str] = {
    "valid_dsa_parameter_inheritance_test5": (
        "the EE and DSAParametersInheritedCACert omit their DSA parameters (inherited from the "
        "issuer, RFC 3279 2.3.2): `dsig cert check` loads its files with cryptography "
        "(pki.load_certificates), which refuses them; pki.evaluate_chain takes them as DER"
    ),
}

# The manifest's pyhanko error class -> (our indication, our finding code or None = any).
_EXPECTED_FAILURE: dict[str, tuple[pki.TrustIndication, str | None]] = {
    "RevokedError": (pki.TrustIndication.INVALID, "CERT_REVOKED"),
    "InsufficientRevinfoError": (pki.TrustIndication.INDETERMINATE, "REVOCATION_UNAVAILABLE"),
    "StaleRevinfoError": (pki.TrustIndication.INDETERMINATE, "REVOCATION_UNAVAILABLE"),
    "PathValidationError": (pki.TrustIndication.INVALID, None),
}


def _cases(differ: dict[str, str]) -> list[Any]:
    if not (SUITE / "pkits.json").exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{SUITE} not present"))]
    cases = json.loads((SUITE / "pkits.json").read_text())
    params = []
    for case in cases:
        marks = []
        if case["name"] in differ:
            marks.append(pytest.mark.xfail(reason=differ[case["name"]], strict=True))
        params.append(pytest.param(case, id=f"{case['id']}-{case['name']}", marks=marks))
    return params


def _cert(name: str) -> x509.Certificate:
    with warnings.catch_warnings():
        # A few PKITS certificates carry a negative serial number on purpose.
        warnings.simplefilter("ignore")
        return x509.load_der_x509_certificate((SUITE / "certs" / name).read_bytes())


def _input(name: str) -> pki.CertificateInput:
    """The certificate for cryptography, or its DER when cryptography refuses it (inherited
    DSA parameters): pki takes both."""
    try:
        return _cert(name)
    except ValueError:
        return (SUITE / "certs" / name).read_bytes()


_ALGORITHMS = pki.AlgorithmRule.from_names(["sha1", "rsa1024", "dsa1024"])


def _pkix_inputs(case: dict[str, Any]) -> dict[str, Any]:
    """The case's RFC 5280 initial inputs as :class:`pki.TrustPolicy` fields."""
    params = case.get("params", {})
    return {
        "policies": frozenset(params.get("user_initial_policy_set", ())),
        "require_explicit_policy": params.get("initial_explicit_policy", False),
        "inhibit_policy_mapping": params.get("initial_policy_mapping_inhibit", False),
        "inhibit_any_policy": params.get("initial_any_policy_inhibit", False),
    }


@pytest.mark.parametrize("case", _cases(EXPECTED_TO_DIFFER))
def test_pkits(case: dict[str, Any]) -> None:
    leaf = _input(case["cert"])
    crls = [*case.get("crls", []), "TrustAnchorRootCRL.crl"]
    policy = pki.TrustPolicy(
        trust_roots=(_cert("TrustAnchorRootCertificate.crt"),),
        intermediates=tuple(_input(n) for n in case.get("other_certs", [])),
        crls=tuple((SUITE / "crls" / n).read_bytes() for n in crls),
        # absent: revocation info required for every certificate; false: check what is given
        revocation=(
            pki.RevocationMode.REQUIRE if "revocation" not in case else pki.RevocationMode.HARD_FAIL
        ),
        algorithms=_ALGORITHMS,
        key_usage=frozenset(),
        signing_eku=frozenset(),
        allow_ca_signer=True,  # some PKITS end entities are CA certificates
        **_pkix_inputs(case),
    )
    result = pki.evaluate_chain(leaf, policy, at=AT)
    codes = [f.code for f in result.findings if not f.note]
    error = case.get("error")
    if error is None:
        assert result.indication is pki.TrustIndication.VALID, result.findings
        assert len(result.chain) == case["path_len"]
        return
    indication, code = _EXPECTED_FAILURE[error["class"]]
    assert result.indication is indication, (error, result.findings)
    if code is not None:
        assert codes[:1] == [code], result.findings


@pytest.fixture(scope="module")
def pkits_policy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suite's common settings as a policy file: its anchor, weak algorithms of 2010,
    signer-use rules off (PKITS tests path validation, not signing)."""
    path = tmp_path_factory.mktemp("pkits") / "pkits.toml"
    anchor = SUITE / "certs" / "TrustAnchorRootCertificate.crt"
    path.write_text(
        f"anchors = [{json.dumps(str(anchor))}]\n"
        'allow_weak = ["sha1", "rsa1024", "dsa1024"]\n'
        "key_usage = []\nsigning_eku = []\nallow_ca_signer = true\n"
    )
    return path


def _cli_args(case: dict[str, Any], policy_file: Path) -> list[str]:
    args = ["cert", "check", str(SUITE / "certs" / case["cert"]), "--policy-file", str(policy_file)]
    args += ["--at", AT.isoformat(), "--json"]
    args += ["--revocation", "require" if "revocation" not in case else "hard-fail"]
    for name in case.get("other_certs", []):
        args += ["--untrusted", str(SUITE / "certs" / name)]
    for name in [*case.get("crls", []), "TrustAnchorRootCRL.crl"]:
        args += ["--crl", str(SUITE / "crls" / name)]
    params = case.get("params", {})
    for oid in params.get("user_initial_policy_set", ()):
        args += ["--policy", oid]
    for key, flag in (
        ("initial_explicit_policy", "--require-explicit-policy"),
        ("initial_policy_mapping_inhibit", "--inhibit-policy-mapping"),
        ("initial_any_policy_inhibit", "--inhibit-any-policy"),
    ):
        if params.get(key):
            args.append(flag)
    return args


@pytest.mark.parametrize("case", _cases(CLI_EXPECTED_TO_DIFFER))
def test_pkits_through_cert_check(case: dict[str, Any], pkits_policy_file: Path) -> None:
    """The same cases through ``dsig cert check`` (policy file, CLI PKIX flags, exit codes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # negative serial numbers, on purpose
        run = CliRunner().invoke(app, _cli_args(case, pkits_policy_file))
    assert run.exit_code in (0, 1, 3), run.output
    report = json.loads(run.stdout)
    assert report["policy"]["source"] == str(pkits_policy_file)
    error = case.get("error")
    if error is None:
        assert (run.exit_code, report["indication"]) == (0, "VALID"), report
        assert len(report["trust"]["chain"]) == case["path_len"]
        return
    indication, code = _EXPECTED_FAILURE[error["class"]]
    expected_exit = 1 if indication is pki.TrustIndication.INVALID else 3
    assert (run.exit_code, report["indication"]) == (expected_exit, indication.value), report
    decisions = [f["code"] for f in report["trust"]["findings"] if not f.get("note")]
    if code is not None:
        assert decisions[:1] == [code], report
