"""NIST PKITS path-validation cases through :func:`pki.evaluate_chain`, driven by the manifest.

Each case runs with the PKITS anchor, the case's certificates as untrusted intermediates and
its CRLs plus the anchor's CRL, at a fixed moment inside the anchor's validity. SHA-1 and
1024-bit RSA/DSA are allowed explicitly (the suite dates from 2010); the signer key-usage
rule is switched off because PKITS tests path validation, not signing use.
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

import pki


def _find_suite() -> Path:
    """NIST PKITS from ``$DSIG_PKITS_DIR``, else ``shared/`` beside the checkout."""
    env = os.environ.get("DSIG_PKITS_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[3] / "shared/conformance/nist-pkits")
    for candidate in candidates:
        if (candidate / "pkits.json").is_file():
            return candidate
    return candidates[-1]


SUITE = _find_suite()
AT = dt.datetime(2022, 5, 1, tzinfo=dt.UTC)

_POLICY_INPUTS = (
    "needs the PKIX initial policy inputs of the case (initial policy set, explicit policy, "
    "mapping/any-policy inhibition), which TrustPolicy does not expose (out of scope)"
)
#: Cases whose outcome differs from the manifest, with the reason. Keyed by case name.
EXPECTED_TO_DIFFER: dict[str, str] = {
    "valid_dsa_parameter_inheritance_test5": (
        "cryptography cannot parse a DSA public key that inherits its parameters from the "
        "issuer, and the public API takes cryptography certificates"
    ),
    **{
        name: _POLICY_INPUTS
        for name in (
            "all_certs_same_policy_test1_with_constraint_mismatch",
            "all_certificates_no_policies_test2_force_explicit",
            "different_policies_test3_force_explicit",
            "different_policies_test3_force_explicit_with_user_set",
            "overlapping_policies_test6_with_testpol2",
            "overlapping_policies_test6_with_testpol2_explicit",
            "any_policy_test14_with_testpol2",
            "valid_policy_mapping_test2_with_testpol2",
            "valid_policy_mapping_test2_inhibit_mapping",
            "valid_policy_mapping_test2_inhibit_mapping_testpol1",
            "valid_policy_mapping_test3_with_testpol1",
            "valid_policy_mapping_test5_with_testpol6",
            "valid_policy_mapping_test6_with_testpol6",
            "inhibit_any_policy_test3_initial_inhibit",
        )
    },
}

# The manifest's pyhanko error class -> (our indication, our finding code or None = any).
_EXPECTED_FAILURE: dict[str, tuple[pki.TrustIndication, str | None]] = {
    "RevokedError": (pki.TrustIndication.INVALID, "CERT_REVOKED"),
    "InsufficientRevinfoError": (pki.TrustIndication.INDETERMINATE, "REVOCATION_UNAVAILABLE"),
    "StaleRevinfoError": (pki.TrustIndication.INDETERMINATE, "REVOCATION_UNAVAILABLE"),
    "PathValidationError": (pki.TrustIndication.INVALID, None),
}


def _cases() -> list[Any]:
    if not (SUITE / "pkits.json").exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{SUITE} not present"))]
    cases = json.loads((SUITE / "pkits.json").read_text())
    params = []
    for case in cases:
        marks = []
        if case["name"] in EXPECTED_TO_DIFFER:
            marks.append(pytest.mark.xfail(reason=EXPECTED_TO_DIFFER[case["name"]], strict=True))
        params.append(pytest.param(case, id=f"{case['id']}-{case['name']}", marks=marks))
    return params


def _cert(name: str) -> x509.Certificate:
    with warnings.catch_warnings():
        # A few PKITS certificates carry a negative serial number on purpose.
        warnings.simplefilter("ignore")
        return x509.load_der_x509_certificate((SUITE / "certs" / name).read_bytes())


_ALGORITHMS = pki.AlgorithmRule.from_names(["sha1", "rsa1024", "dsa1024"])


@pytest.mark.parametrize("case", _cases())
def test_pkits(case: dict[str, Any]) -> None:
    leaf = _cert(case["cert"])
    crls = [*case.get("crls", []), "TrustAnchorRootCRL.crl"]
    policy = pki.TrustPolicy(
        trust_roots=(_cert("TrustAnchorRootCertificate.crt"),),
        intermediates=tuple(_cert(n) for n in case.get("other_certs", [])),
        crls=tuple((SUITE / "crls" / n).read_bytes() for n in crls),
        # absent: revocation info required for every certificate; false: check what is given
        revocation=(
            pki.RevocationMode.REQUIRE if "revocation" not in case else pki.RevocationMode.HARD_FAIL
        ),
        algorithms=_ALGORITHMS,
        key_usage=frozenset(),
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
