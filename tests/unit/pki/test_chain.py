"""Path, validity, key usage and algorithm checks through evaluate_chain."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import subprocess
import sys

import pytest

import pki
from tests.helpers import pki_factory as factory
from tests.helpers.pki_factory import NOW, TIMESTAMPING, issue
from tests.unit.pki.conftest import codes, policy, resign_sha1

V, INV, IND = (
    pki.TrustIndication.VALID,
    pki.TrustIndication.INVALID,
    pki.TrustIndication.INDETERMINATE,
)


def test_chain_ok(test_pki: factory.TestPki) -> None:
    leaf = test_pki.leaf("signer")
    result = pki.evaluate_chain(leaf.cert, policy(test_pki), at=NOW)
    assert result.indication is V
    assert result.findings == ()
    assert result.chain == (leaf.cert, test_pki.intermediate.cert, test_pki.root.cert)
    assert result.validated_at == NOW
    out = result.to_json()
    assert out["indication"] == "VALID"
    assert out["revocation_mode"] == "hard-fail"  # the default: checked unless declined
    revocation = out["revocation"]
    assert isinstance(revocation, list)
    assert [r["status"] for r in revocation] == ["not-published", "not-published"]


def test_ec_leaf_ok(test_pki: factory.TestPki) -> None:
    leaf = test_pki.leaf("ec", key_kind="ec-p256")
    assert pki.evaluate_chain(leaf.cert, policy(test_pki), at=NOW).indication is V


def test_no_anchor(test_pki: factory.TestPki) -> None:
    other_root = issue("dsig Other Root", ca=True)
    pol = pki.TrustPolicy(
        trust_roots=(other_root.cert,), intermediates=(test_pki.intermediate.cert,)
    )
    result = pki.evaluate_chain(test_pki.leaf("signer").cert, pol, at=NOW)
    assert result.indication is INV
    assert codes(result) == ["NO_TRUSTED_PATH"]


def test_intermediate_missing_then_supplied(test_pki: factory.TestPki) -> None:
    leaf = test_pki.leaf("signer").cert
    bare = policy(test_pki, intermediates=())
    missing = pki.evaluate_chain(leaf, bare, at=NOW)
    assert (missing.indication, codes(missing)) == (INV, ["NO_TRUSTED_PATH"])
    # untrusted intermediates in the policy, or extra certificates from the signature
    assert pki.evaluate_chain(leaf, policy(test_pki), at=NOW).indication is V
    via_extra = pki.evaluate_chain(leaf, bare, at=NOW, extra_certs=[test_pki.intermediate.cert])
    assert via_extra.indication is V


def test_self_signed_leaf_untrusted(test_pki: factory.TestPki) -> None:
    rogue = issue("dsig rogue")
    result = pki.evaluate_chain(rogue.cert, policy(test_pki), at=NOW)
    assert codes(result) == ["NO_TRUSTED_PATH"]
    assert result.indication is INV


@pytest.mark.parametrize(
    ("offset_days", "code"), [(800, "CERT_EXPIRED"), (-40, "CERT_NOT_YET_VALID")]
)
def test_validity_at_moment(test_pki: factory.TestPki, offset_days: int, code: str) -> None:
    leaf = test_pki.leaf("signer").cert  # valid NOW-30d .. NOW+730d
    at = NOW + dt.timedelta(days=offset_days)
    result = pki.evaluate_chain(leaf, policy(test_pki), at=at)
    assert result.indication is INV
    assert codes(result)[0] == code
    assert pki.evaluate_chain(leaf, policy(test_pki), at=NOW).indication is V


def test_expired_leaf_valid_at_earlier_moment() -> None:
    root = issue("dsig Long Root", ca=True, not_before=NOW - dt.timedelta(days=3000))
    old = issue(
        "dsig expired",
        issuer=root,
        not_before=NOW - dt.timedelta(days=400),
        not_after=NOW - dt.timedelta(days=100),
    )
    pol = pki.TrustPolicy(trust_roots=(root.cert,))
    assert codes(pki.evaluate_chain(old.cert, pol, at=NOW)) == ["CERT_EXPIRED"]
    earlier = NOW - dt.timedelta(days=200)
    assert pki.evaluate_chain(old.cert, pol, at=earlier).indication is V


def test_expired_intermediate(test_pki: factory.TestPki) -> None:
    inter = issue(
        "dsig Short Intermediate",
        issuer=test_pki.root,
        ca=True,
        not_after=NOW + dt.timedelta(days=10),
    )
    leaf = issue("dsig short signer", issuer=inter)
    result = pki.evaluate_chain(
        leaf.cert, policy(test_pki, intermediates=(inter.cert,)), at=NOW + dt.timedelta(days=20)
    )
    assert codes(result) == ["CERT_EXPIRED"]


def test_expired_anchor(test_pki: factory.TestPki) -> None:
    root = issue("dsig Old Root", ca=True, not_after=NOW + dt.timedelta(days=5))
    leaf = issue("dsig old-root signer", issuer=root, not_after=NOW + dt.timedelta(days=50))
    result = pki.evaluate_chain(
        leaf.cert, pki.TrustPolicy(trust_roots=(root.cert,)), at=NOW + dt.timedelta(days=10)
    )
    assert result.indication is INV
    assert "CERT_EXPIRED" in codes(result)


def test_wrong_key_usage(test_pki: factory.TestPki) -> None:
    leaf = test_pki.leaf("keyenc", key_usage={"key_encipherment"})
    result = pki.evaluate_chain(leaf.cert, policy(test_pki), at=NOW)
    assert (result.indication, codes(result)) == (INV, ["KEY_USAGE"])


def test_non_repudiation_alone_is_enough(test_pki: factory.TestPki) -> None:
    leaf = test_pki.leaf("nr", key_usage={"non_repudiation"})
    assert pki.evaluate_chain(leaf.cert, policy(test_pki), at=NOW).indication is V


def test_extended_key_usage_rule(test_pki: factory.TestPki) -> None:
    tsa = test_pki.leaf("tsa", eku=[TIMESTAMPING])
    signer = test_pki.leaf("signer")
    pol = policy(test_pki).for_timestamp_authority()
    assert pol.extended_key_usage == {TIMESTAMPING.dotted_string}
    assert pki.evaluate_chain(tsa.cert, pol, at=NOW).indication is V
    assert codes(pki.evaluate_chain(signer.cert, pol, at=NOW)) == ["EXTENDED_KEY_USAGE"]
    # As a document signer, a timeStamping-only certificate is refused.
    assert codes(pki.evaluate_chain(tsa.cert, policy(test_pki), at=NOW)) == ["EXTENDED_KEY_USAGE"]


def test_basic_constraints(test_pki: factory.TestPki) -> None:
    not_ca = test_pki.leaf("signer")  # CA=false, used as an issuer
    leaf = issue("dsig under a non-CA", issuer=not_ca)
    pol = policy(test_pki, intermediates=(test_pki.intermediate.cert, not_ca.cert))
    result = pki.evaluate_chain(leaf.cert, pol, at=NOW)
    assert result.indication is INV
    assert codes(result) == ["BASIC_CONSTRAINTS"] or codes(result) == ["NO_TRUSTED_PATH"]


def test_sha1_intermediate_is_weak(test_pki: factory.TestPki) -> None:
    inter = issue("dsig SHA1 Intermediate", issuer=test_pki.root, ca=True)
    inter.cert = resign_sha1(inter.cert, test_pki.root)
    leaf = issue("dsig sha1-path signer", issuer=inter)
    pol = policy(test_pki, intermediates=(inter.cert,))
    result = pki.evaluate_chain(leaf.cert, pol, at=NOW)
    assert (result.indication, codes(result)) == (INV, ["WEAK_ALGORITHM"])
    allowed = dataclasses.replace(pol, algorithms=pki.AlgorithmRule.from_names(["sha1"]))
    assert pki.evaluate_chain(leaf.cert, allowed, at=NOW).indication is V


def test_rsa1024_leaf_is_weak(test_pki: factory.TestPki) -> None:
    leaf = test_pki.leaf("rsa1024", key_kind="rsa1024")
    result = pki.evaluate_chain(leaf.cert, policy(test_pki), at=NOW)
    assert (result.indication, codes(result)) == (INV, ["WEAK_ALGORITHM"])
    assert "1024" in result.findings[0].message
    allowed = policy(test_pki, algorithms=pki.AlgorithmRule.from_names(["rsa1024"]))
    assert pki.evaluate_chain(leaf.cert, allowed, at=NOW).indication is V


def test_rsa1024_intermediate_is_weak(test_pki: factory.TestPki) -> None:
    inter = issue("dsig Small Intermediate", issuer=test_pki.root, ca=True, key_kind="rsa1024")
    leaf = issue("dsig small-issuer signer", issuer=inter)
    result = pki.evaluate_chain(leaf.cert, policy(test_pki, intermediates=(inter.cert,)), at=NOW)
    assert codes(result) == ["WEAK_ALGORITHM"]


def test_naive_moment_rejected(test_pki: factory.TestPki) -> None:
    with pytest.raises(pki.TrustConfigError, match="time zone"):
        pki.evaluate_chain(
            test_pki.leaf("signer").cert, policy(test_pki), at=dt.datetime(2026, 1, 1)
        )


def test_async_variant_and_loop_guard(test_pki: factory.TestPki) -> None:
    leaf = test_pki.leaf("signer").cert

    async def run() -> pki.TrustResult:
        with pytest.raises(pki.PkiError, match="aevaluate_chain"):
            pki.evaluate_chain(leaf, policy(test_pki), at=NOW)
        return await pki.aevaluate_chain(leaf, policy(test_pki), at=NOW)

    assert asyncio.run(run()).indication is V


def test_moment_normalised_to_utc(test_pki: factory.TestPki) -> None:
    cet = dt.timezone(dt.timedelta(hours=1))
    result = pki.evaluate_chain(
        test_pki.leaf("signer").cert, policy(test_pki), at=NOW.astimezone(cet)
    )
    assert result.validated_at == NOW
    assert result.validated_at.tzinfo is dt.UTC


def test_finding_codes_documented() -> None:
    assert all(code.isupper() and meaning for code, meaning in pki.FINDING_CODES.items())
    for required in (
        "NO_TRUSTED_PATH",
        "CERT_EXPIRED",
        "CERT_NOT_YET_VALID",
        "CERT_REVOKED",
        "REVOCATION_UNAVAILABLE",
        "KEY_USAGE",
        "BASIC_CONSTRAINTS",
        "WEAK_ALGORITHM",
    ):
        assert required in pki.FINDING_CODES


def test_import_pki_is_cheap() -> None:
    code = (
        "import sys, pki; bad = [m for m in sys.modules if m.split('.')[0] in "
        "('pyhanko_certvalidator', 'aiohttp')]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
