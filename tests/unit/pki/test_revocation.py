"""Revocation: CRL files, a live CRL DP / OCSP responder on 127.0.0.1, modes, no network."""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import AuthorityInformationAccessOID

import pki
from tests.helpers import pki_factory as factory
from tests.helpers.pki_factory import NOW, issue
from tests.helpers.pki_servers import PkiServer, make_crl, make_ocsp_response
from tests.unit.pki.conftest import OnlinePki, codes, der, policy

V = pki.TrustIndication.VALID
INV = pki.TrustIndication.INVALID
IND = pki.TrustIndication.INDETERMINATE
REVOKED_AT = NOW - dt.timedelta(days=2)


@pytest.fixture(scope="module")
def crls(test_pki: factory.TestPki) -> tuple[bytes, bytes]:
    """(intermediate CRL revoking leaf 'revoked' at REVOKED_AT, empty root CRL)."""
    revoked = test_pki.leaf("revoked")
    inter_crl = make_crl(
        test_pki.intermediate,
        [(revoked.cert.serial_number, REVOKED_AT, x509.ReasonFlags.key_compromise)],
    )
    return der(inter_crl), der(make_crl(test_pki.root))


# --- CRL files (offline) ---------------------------------------------------------------


def test_revoked_by_crl_file(test_pki: factory.TestPki, crls: tuple[bytes, bytes]) -> None:
    pol = policy(test_pki, crls=crls)
    assert pol.revocation_mode is pki.RevocationMode.HARD_FAIL  # default with a source
    result = pki.evaluate_chain(test_pki.leaf("revoked").cert, pol, at=NOW)
    assert (result.indication, codes(result)) == (INV, ["CERT_REVOKED"])
    message = result.findings[0].message
    assert REVOKED_AT.date().isoformat() in message
    assert "keyCompromise" in message


def test_crl_file_good_cert(test_pki: factory.TestPki, crls: tuple[bytes, bytes]) -> None:
    result = pki.evaluate_chain(test_pki.leaf("signer").cert, policy(test_pki, crls=crls), at=NOW)
    assert result.indication is V


def test_revoked_after_moment_is_valid(
    test_pki: factory.TestPki, crls: tuple[bytes, bytes]
) -> None:
    at = REVOKED_AT - dt.timedelta(days=1)
    for mode in (pki.RevocationMode.HARD_FAIL, pki.RevocationMode.REQUIRE):
        pol = policy(test_pki, crls=crls, revocation=mode)
        result = pki.evaluate_chain(test_pki.leaf("revoked").cert, pol, at=at)
        assert result.indication is V, mode
        assert codes(result) == ["REVOKED_AFTER_MOMENT"]
        assert result.findings[0].note
    certified = pki.evaluate_chain(
        test_pki.leaf("revoked").cert, policy(test_pki, crls=crls), at=at, certified_time=True
    )
    assert "certified time" in certified.findings[0].message
    assert certified.details["moment_source"] == "certified-timestamp"


def test_require_mode(test_pki: factory.TestPki, crls: tuple[bytes, bytes]) -> None:
    leaf = test_pki.leaf("signer").cert
    req = pki.RevocationMode.REQUIRE
    ok = pki.evaluate_chain(leaf, policy(test_pki, crls=crls, revocation=req), at=NOW)
    assert ok.indication is V
    # only the intermediate's CRL: the intermediate itself has no revocation info
    partial = policy(test_pki, crls=crls[:1], revocation=req)
    result = pki.evaluate_chain(leaf, partial, at=NOW)
    assert (result.indication, codes(result)) == (IND, ["REVOCATION_UNAVAILABLE"])
    nothing = pki.evaluate_chain(leaf, policy(test_pki, revocation=req), at=NOW)
    assert (nothing.indication, codes(nothing)) == (IND, ["REVOCATION_UNAVAILABLE"])


def test_revocation_off_ignores_crl(test_pki: factory.TestPki, crls: tuple[bytes, bytes]) -> None:
    pol = policy(test_pki, crls=crls, revocation=pki.RevocationMode.OFF)
    assert pki.evaluate_chain(test_pki.leaf("revoked").cert, pol, at=NOW).indication is V


def test_stored_ocsp_response(test_pki: factory.TestPki) -> None:
    # The validator only consults OCSP (even stored responses) for certificates naming a
    # responder in their AIA.
    aia = x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier("http://127.0.0.1:9/ocsp"),
            )
        ]
    )
    revoked = issue(
        "dsig ocsp revoked", issuer=test_pki.intermediate, extensions=[(aia, False)]
    ).cert
    response = make_ocsp_response(
        test_pki.intermediate,
        revoked.serial_number,
        revoked=(REVOKED_AT, x509.ReasonFlags.key_compromise),
    )
    root_crl = der(make_crl(test_pki.root))
    pol = policy(
        test_pki,
        ocsp_responses=(response.public_bytes(serialization.Encoding.DER),),
        crls=(root_crl,),
        revocation=pki.RevocationMode.REQUIRE,
    )
    result = pki.evaluate_chain(revoked, pol, at=NOW)
    assert (result.indication, codes(result)) == (INV, ["CERT_REVOKED"])


def test_supplied_revinfo_dated_in_the_future_is_refused(
    test_pki: factory.TestPki, crls: tuple[bytes, bytes]
) -> None:
    """A --crl/--ocsp dated after now + FUTURE_SKEW is ignored with a note, as a fetched one
    is refused: a status resting on it alone is unavailable, never good."""
    from pki.revocation import FUTURE_SKEW

    later = NOW + FUTURE_SKEW + dt.timedelta(hours=1)
    leaf = test_pki.leaf("signer").cert
    req = pki.RevocationMode.REQUIRE
    future_crl = der(make_crl(test_pki.intermediate, this_update=later))
    assert (
        pki.evaluate_chain(leaf, policy(test_pki, crls=crls, revocation=req), at=NOW).indication
        is V
    )
    pol = policy(test_pki, crls=(future_crl, crls[1]), revocation=req)
    result = pki.evaluate_chain(leaf, pol, at=NOW)
    assert result.indication is IND
    assert "REVINFO_FUTURE_DATED" in codes(result) and "REVOCATION_UNAVAILABLE" in codes(result)
    note = next(f for f in result.findings if f.code == "REVINFO_FUTURE_DATED")
    assert note.note and "dated in the future" in note.message and later.isoformat() in note.message
    # within the skew (a responder's clock slightly ahead) it still counts
    near = der(make_crl(test_pki.intermediate, this_update=NOW + FUTURE_SKEW / 2))
    near_result = pki.evaluate_chain(
        leaf, policy(test_pki, crls=(near, crls[1]), revocation=req), at=NOW
    )
    assert near_result.indication is V
    # an OCSP response produced in the future: ignored, the revoked-by-OCSP leaf is not decided
    revoked = test_pki.leaf("revoked").cert
    response = make_ocsp_response(
        test_pki.intermediate, revoked.serial_number,
        revoked=(REVOKED_AT, x509.ReasonFlags.key_compromise), this_update=later,
    )  # fmt: skip
    ocsp_der = response.public_bytes(serialization.Encoding.DER)
    pol = policy(test_pki, ocsp_responses=(ocsp_der,), crls=(crls[1],), revocation=req)
    result = pki.evaluate_chain(revoked, pol, at=NOW)
    assert result.indication is IND and "REVINFO_FUTURE_DATED" in codes(result)


# --- live CRL distribution point and OCSP responder -------------------------------------


def online_policy(o: OnlinePki, **kwargs: object) -> pki.TrustPolicy:
    kwargs.setdefault("intermediates", (o.intermediate.cert,))
    kwargs.setdefault("online", True)
    kwargs.setdefault("timeout", 3.0)
    return pki.TrustPolicy(trust_roots=(o.root.cert,), **kwargs)  # type: ignore[arg-type]


def test_online_ocsp_good_and_revoked(online_pki: OnlinePki) -> None:
    pol = online_policy(online_pki)
    assert pol.revocation_mode is pki.RevocationMode.HARD_FAIL
    online_pki.server.hits.clear()
    good = pki.evaluate_chain(online_pki.leaf.cert, pol, at=NOW)
    assert good.indication is V, good.findings
    assert online_pki.server.hits.count("POST /ocsp") >= 2  # leaf and intermediate
    revoked = pki.evaluate_chain(online_pki.revoked_leaf.cert, pol, at=NOW)
    assert (revoked.indication, codes(revoked)) == (INV, ["CERT_REVOKED"])
    assert REVOKED_AT.date().isoformat() in revoked.findings[0].message
    assert "key_compromise" in revoked.findings[0].message


def test_online_ocsp_revoked_after_moment(online_pki: OnlinePki) -> None:
    at = REVOKED_AT - dt.timedelta(days=1)
    result = pki.evaluate_chain(
        online_pki.revoked_leaf.cert, online_policy(online_pki), at=at, certified_time=True
    )
    assert result.indication is V, result.findings
    assert codes(result) == ["REVOKED_AFTER_MOMENT"]
    assert result.findings[0].note
    assert "OCSP" in result.findings[0].message
    assert "certified time" in result.findings[0].message
    # and at/after the revocation it is revoked
    late = pki.evaluate_chain(online_pki.revoked_leaf.cert, online_policy(online_pki), at=NOW)
    assert codes(late) == ["CERT_REVOKED"]


def test_stored_ocsp_revoked_after_moment_needs_authentic_response(
    test_pki: factory.TestPki,
) -> None:
    # A "revoked later" OCSP response signed by someone else must not unlock the retry.
    aia = x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier("http://127.0.0.1:9/ocsp"),
            )
        ]
    )
    leaf = issue("dsig forged-ocsp", issuer=test_pki.intermediate, extensions=[(aia, False)])
    genuine = make_ocsp_response(
        test_pki.intermediate,
        leaf.cert.serial_number,
        revoked=(NOW + dt.timedelta(days=1), x509.ReasonFlags.superseded),
    ).public_bytes(serialization.Encoding.DER)
    forged = genuine[:-1] + bytes([genuine[-1] ^ 1])  # the signature ends the response
    pol = policy(
        test_pki,
        ocsp_responses=(forged,),
        revocation=pki.RevocationMode.HARD_FAIL,
    )
    result = pki.evaluate_chain(leaf.cert, pol, at=NOW)
    assert (result.indication, codes(result)) == (IND, ["REVOCATION_UNAVAILABLE"])
    # the genuine stored response: valid at NOW, with a note about the later revocation
    honest = pki.evaluate_chain(
        leaf.cert, dataclasses.replace(pol, ocsp_responses=(genuine,)), at=NOW
    )
    assert (honest.indication, codes(honest)) == (V, ["REVOKED_AFTER_MOMENT"])


def test_online_crl_distribution_point(online_pki: OnlinePki) -> None:
    auth = online_pki.server.authorities["inter"]
    victim = issue(
        "dsig crl victim",
        issuer=online_pki.intermediate,
        extensions=online_pki.server.revinfo_extensions("inter", ocsp=False),
    )
    auth.revoke(victim.cert, REVOKED_AT, x509.ReasonFlags.superseded)
    pol = online_policy(online_pki)
    online_pki.server.hits.clear()
    assert pki.evaluate_chain(online_pki.crl_leaf.cert, pol, at=NOW).indication is V
    assert "GET /crl/inter.crl" in online_pki.server.hits
    result = pki.evaluate_chain(victim.cert, pol, at=NOW)
    assert (result.indication, codes(result)) == (INV, ["CERT_REVOKED"])


def test_online_fetches_missing_intermediate(online_pki: OnlinePki) -> None:
    pol = online_policy(online_pki, intermediates=())
    online_pki.server.hits.clear()
    result = pki.evaluate_chain(online_pki.aia_leaf.cert, pol, at=NOW)
    assert result.indication is V, result.findings
    assert "GET /certs/inter.der" in online_pki.server.hits
    offline = dataclasses.replace(pol, online=False)
    assert codes(pki.evaluate_chain(online_pki.aia_leaf.cert, offline, at=NOW)) == [
        "NO_TRUSTED_PATH"
    ]


@pytest.fixture
def failing(online_pki: OnlinePki) -> Iterator[PkiServer]:
    online_pki.server.failing = True
    yield online_pki.server
    online_pki.server.failing = False


@pytest.mark.usefixtures("failing")
def test_responder_down_hard_fail(online_pki: OnlinePki) -> None:
    result = pki.evaluate_chain(online_pki.leaf.cert, online_policy(online_pki), at=NOW)
    assert (result.indication, codes(result)) == (IND, ["REVOCATION_UNAVAILABLE"])


@pytest.mark.usefixtures("failing")
def test_responder_down_soft_fail(online_pki: OnlinePki) -> None:
    pol = online_policy(online_pki, revocation=pki.RevocationMode.SOFT_FAIL)
    result = pki.evaluate_chain(online_pki.leaf.cert, pol, at=NOW)
    assert result.indication is V
    assert codes(result)
    assert set(codes(result)) == {"REVOCATION_UNAVAILABLE"}
    assert all(f.note for f in result.findings)
    assert result.to_json()["findings"][0]["note"] is True  # type: ignore[index]


def test_responder_unreachable_hard_fail() -> None:
    # A server that is gone: connection refused on its former port.
    server = PkiServer()
    root = issue("dsig Gone Root", ca=True)
    leaf = issue("dsig gone signer", issuer=root, extensions=server.revinfo_extensions("root"))
    server.stop()
    pol = pki.TrustPolicy(trust_roots=(root.cert,), online=True, timeout=2.0)
    result = pki.evaluate_chain(leaf.cert, pol, at=NOW)
    assert (result.indication, codes(result)) == (IND, ["REVOCATION_UNAVAILABLE"])
    soft = dataclasses.replace(pol, revocation=pki.RevocationMode.SOFT_FAIL)
    assert pki.evaluate_chain(leaf.cert, soft, at=NOW).indication is V


def test_offline_never_touches_network(
    online_pki: OnlinePki, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_connect(*args: object, **kwargs: object) -> None:
        pytest.fail("a socket was opened while offline")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", no_connect)
    monkeypatch.setattr(socket, "create_connection", no_connect)
    pol = online_policy(online_pki, online=False, revocation=pki.RevocationMode.HARD_FAIL)
    # declared OCSP/CRL/caIssuers but offline: hard-fail cannot decide
    for leaf in (online_pki.leaf, online_pki.crl_leaf, online_pki.aia_leaf):
        result = pki.evaluate_chain(leaf.cert, pol, at=NOW)
        assert result.indication is IND
        assert codes(result) == ["REVOCATION_UNAVAILABLE"]
    soft = dataclasses.replace(pol, revocation=pki.RevocationMode.SOFT_FAIL)
    result = pki.evaluate_chain(online_pki.leaf.cert, soft, at=NOW)
    assert result.indication is V
    # leaf and intermediate declare OCSP: two notes, no silent pass
    assert codes(result) == ["REVOCATION_UNAVAILABLE", "REVOCATION_UNAVAILABLE"]
    assert all(f.note for f in result.findings)


@pytest.mark.parametrize("mode", [pki.RevocationMode.HARD_FAIL, pki.RevocationMode.REQUIRE])
def test_revoked_intermediate(test_pki: factory.TestPki, mode: pki.RevocationMode) -> None:
    inter = issue("dsig Revoked Intermediate", issuer=test_pki.root, ca=True)
    leaf = issue("dsig under revoked CA", issuer=inter)
    root_crl = make_crl(
        test_pki.root, [(inter.cert.serial_number, REVOKED_AT, x509.ReasonFlags.ca_compromise)]
    )
    pol = policy(
        test_pki,
        intermediates=(inter.cert,),
        crls=(der(root_crl), der(make_crl(inter))),
        revocation=mode,
    )
    result = pki.evaluate_chain(leaf.cert, pol, at=NOW)
    assert (result.indication, codes(result)) == (INV, ["CERT_REVOKED"])


def test_responder_timeout(online_pki: OnlinePki) -> None:
    online_pki.server.delay = 1.5
    try:
        pol = online_policy(online_pki, timeout=0.3)
        result = pki.evaluate_chain(online_pki.leaf.cert, pol, at=NOW)
    finally:
        online_pki.server.delay = 0.0
    assert (result.indication, codes(result)) == (IND, ["REVOCATION_UNAVAILABLE"])
