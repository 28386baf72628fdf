"""dsig.timestamp and dsig.timestamp.tsa_client against a real TSA on 127.0.0.1 and ``openssl ts``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import tsp
from cryptography import x509
from pydicom.dataset import Dataset

import pki
from dsig.signature.model import CERTIFIED_TIMESTAMP, TIMESTAMP_TYPE
from dsig.timestamp import (
    TIMESTAMPING_OID,
    QueryOptions,
    TimestampError,
    TimestampQuery,
    build_query,
    check_reply,
    check_token,
    insert_token,
    signature_bytes,
    token_from_reply,
    verify_item_timestamp,
)
from dsig.timestamp.tsa_client import (
    TsaCredentials,
    TsaOptions,
    TsaUnavailableError,
    redact_url,
    request_timestamp,
)
from tests.helpers.tsa import (
    OpensslTsa,
    TimestampPki,
    answer_query,
    dead_url,
    make_response,
    make_token,
)

DATA = bytes(range(256))  # stands in for a 2048-bit RSA Signature value


@pytest.fixture(scope="module")
def tpki(tmp_path_factory: pytest.TempPathFactory) -> TimestampPki:
    return TimestampPki(tmp_path_factory.mktemp("ts-pki"))


@pytest.fixture(scope="module")
def openssl_tsa(tpki: TimestampPki) -> Iterator[OpensslTsa]:
    tsa = OpensslTsa(tpki.tsa, [tpki.intermediate.cert])
    yield tsa
    tsa.close()


def _token(tpki: TimestampPki, data: bytes = DATA, **kw: Any) -> bytes:
    return make_token(
        tpki.tsa,
        hash_algorithm="sha256",
        digest=hashlib.sha256(data).digest(),
        certs=[tpki.intermediate.cert],
        **kw,
    )


def _codes(check: object) -> list[str]:
    return [c for c, _m in check.problems]  # type: ignore[attr-defined]


# --- queries ---------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["sha256", "sha384", "sha512"])
def test_query_round_trip(alg: str) -> None:
    q = build_query(DATA, QueryOptions(alg, nonce=True, cert_req=False, policy="1.2.3.4.5"))
    back = TimestampQuery.parse(q.der)
    assert back == q
    assert back.digest == hashlib.new(alg, DATA).digest()
    assert back.nonce is not None and back.nonce.bit_length() == 63
    assert back.policy == "1.2.3.4.5" and back.cert_req is False


def test_query_without_nonce_and_policy() -> None:
    q = TimestampQuery.parse(build_query(DATA, QueryOptions(nonce=False)).der)
    assert q.nonce is None and q.policy is None and q.cert_req is True


def test_query_is_what_openssl_reads(tmp_path: Path) -> None:
    path = tmp_path / "q.tsq"
    path.write_bytes(build_query(DATA, QueryOptions("sha384", policy="1.2.3.4.5")).der)
    out = subprocess.run(
        ["openssl", "ts", "-query", "-in", str(path), "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Hash Algorithm: sha384" in out and "Policy OID: 1.2.3.4.5" in out
    assert "Certificate required: yes" in out


def test_parse_openssl_query(tmp_path: Path) -> None:
    data = tmp_path / "sig.bin"
    data.write_bytes(DATA)
    q = tmp_path / "q.tsq"
    subprocess.run(
        [
            "openssl",
            "ts",
            "-query",
            "-data",
            str(data),
            "-sha512",
            "-no_nonce",
            "-cert",
            "-out",
            str(q),
        ],
        capture_output=True,
        check=True,
    )
    parsed = TimestampQuery.parse(q.read_bytes())
    assert parsed.hash_algorithm == "sha512" and parsed.nonce is None and parsed.cert_req
    assert parsed.digest == hashlib.sha512(DATA).digest()


@pytest.mark.parametrize("bad", ["1.2.x", "notanoid", "1"])
def test_query_bad_policy(bad: str) -> None:
    with pytest.raises(TimestampError, match="dotted OID"):
        QueryOptions(policy=bad)


def test_query_bad_hash() -> None:
    with pytest.raises(TimestampError, match="sha256"):
        QueryOptions("md5")


def test_parse_garbage_query() -> None:
    with pytest.raises(TimestampError, match="not an RFC 3161 timestamp query"):
        TimestampQuery.parse(b"\x30\x03\x02\x01\x01")


# --- replies and tokens ----------------------------------------------------------------------


def test_python_tsa_reply_checks(tpki: TimestampPki) -> None:
    q = build_query(DATA, QueryOptions(policy="1.2.3.4.5"))
    token = token_from_reply(answer_query(q.der, tpki.tsa, certs=[tpki.intermediate.cert]))
    info = check_reply(token, DATA, query=q)
    assert info.nonce == q.nonce and info.policy == "1.2.3.4.5" and info.signer == tpki.tsa.cert


@pytest.mark.parametrize("token_only", [False, True])
def test_openssl_reply_checks(
    tpki: TimestampPki, openssl_tsa: OpensslTsa, token_only: bool
) -> None:
    q = build_query(DATA, QueryOptions("sha512"))
    body = openssl_tsa.reply(q.der, token_only=token_only)
    info = check_reply(token_from_reply(body), DATA, query=q)
    assert info.hash_algorithm == "sha512" and info.policy == "1.2.3.4.1"
    assert info.signer is not None and info.signer.subject == tpki.tsa.cert.subject


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("wrong_imprint", "imprint"),
        ("wrong_nonce", "nonce"),
        ("wrong_policy", "policy"),
        ("reject", "refused the request: rejected"),
    ],
)
def test_bad_replies_rejected(tpki: TimestampPki, fault: str, message: str) -> None:
    q = build_query(DATA, QueryOptions(policy="1.2.3.4.5"))
    reply = answer_query(q.der, tpki.tsa, fault=fault)
    with pytest.raises(TimestampError, match=message):
        check_reply(token_from_reply(reply), DATA, query=q)


def test_reply_without_requested_cert(tpki: TimestampPki) -> None:
    q = build_query(DATA)
    token = _token(tpki, nonce=q.nonce, include_certs=False)
    with pytest.raises(TimestampError, match="not in the token"):
        check_reply(token, DATA, query=q)
    # The verifier may know the TSA certificate (trust store) even if the token does not.
    assert check_token(token, DATA, extra_certs=[tpki.tsa.cert]).ok


def test_reply_not_a_reply() -> None:
    with pytest.raises(TimestampError, match="not an RFC 3161 timestamp reply"):
        token_from_reply(b"hello")
    with pytest.raises(TimestampError, match="no token"):
        token_from_reply(make_response(None, "granted"))


def test_token_ok_with_ess_v1(tpki: TimestampPki) -> None:
    assert check_token(_token(tpki, ess_v2=False), DATA).ok


def test_token_imprint_mismatch(tpki: TimestampPki) -> None:
    assert _codes(check_token(_token(tpki), DATA + b"x")) == ["TIMESTAMP_IMPRINT_MISMATCH"]


def test_token_tampered_tstinfo(tpki: TimestampPki) -> None:
    token = bytearray(_token(tpki))
    # Flip a byte of the serial number inside TSTInfo: message digest no longer matches.
    info = check_token(bytes(token), DATA).info
    assert info is not None
    at = bytes(token).index(bytes([0x02, 0x01, info.serial]) if info.serial < 128 else b"")
    token[at + 2] ^= 0x01
    assert "TIMESTAMP_SIGNATURE_INVALID" in _codes(check_token(bytes(token), DATA))


def test_token_tampered_signature(tpki: TimestampPki) -> None:
    token = bytearray(_token(tpki))
    token[-300] ^= 0xFF  # inside the RSA signature (the certificates precede the SignerInfo)
    codes = _codes(check_token(bytes(token), DATA))
    assert codes and set(codes) <= {"TIMESTAMP_SIGNATURE_INVALID", "TIMESTAMP_MALFORMED"}


def test_token_garbage() -> None:
    assert _codes(check_token(b"\x30\x80garbage", DATA)) == ["TIMESTAMP_MALFORMED"]


def test_tsa_without_eku(tpki: TimestampPki) -> None:
    token = make_token(
        tpki.tsa_no_eku, hash_algorithm="sha256", digest=hashlib.sha256(DATA).digest()
    )
    assert _codes(check_token(token, DATA)) == ["TIMESTAMP_TSA_KEY_USAGE"]


def test_gen_time_outside_tsa_validity(tpki: TimestampPki) -> None:
    token = _token(tpki, gen_time=tpki.tsa.cert.not_valid_before_utc - dt.timedelta(days=1))
    assert _codes(check_token(token, DATA)) == ["TIMESTAMP_TSA_VALIDITY"]


def test_signature_bytes_strip_pad(tpki: TimestampPki) -> None:
    rsa_sig = bytes(256)
    assert signature_bytes(tpki.rsa.cert, rsa_sig + b"\x00") == rsa_sig
    der = bytes([0x30, 0x45]) + bytes(0x45)
    assert signature_bytes(tpki.ec.cert, der + b"\x00") == der


def test_insert_token_sets_type() -> None:
    item = Dataset()
    insert_token(item, b"\x30\x03\x02\x01\x01")
    assert item[TIMESTAMP_TYPE].value == "CMS_TSP"
    assert item[CERTIFIED_TIMESTAMP].value == b"\x30\x03\x02\x01\x01"


# --- verification with the TSA chain --------------------------------------------------------


def _tsa_evaluator(root: x509.Certificate, inter: x509.Certificate | None) -> pki.PolicyEvaluator:
    policy = pki.TrustPolicy(
        trust_roots=(root,),
        intermediates=(inter,) if inter else (),
        extended_key_usage=frozenset({TIMESTAMPING_OID}),
        signing_eku=frozenset(),
    )
    return pki.PolicyEvaluator(policy)


def _item(tpki: TimestampPki, token: bytes) -> Dataset:
    from cryptography.hazmat.primitives.serialization import Encoding

    item = Dataset()
    item.add_new(0x04000115, "OB", tpki.rsa.cert.public_bytes(Encoding.DER))
    item.add_new(0x04000120, "OB", DATA)
    insert_token(item, token)
    return item


def test_verify_item_valid(tpki: TimestampPki) -> None:
    now = dt.datetime.now(dt.UTC)
    res = verify_item_timestamp(
        _item(tpki, _token(tpki)), trust=_tsa_evaluator(tpki.root.cert, None), at=now
    )
    assert res.indication == "VALID", res
    assert res.valid and res.tsa == tpki.tsa.cert.subject.rfc4514_string()
    body = res.to_json()
    assert body["hash_algorithm"] == "sha256" and body["tsa_trust"]["indication"] == "VALID"


def test_verify_item_untrusted_tsa(tpki: TimestampPki) -> None:
    res = verify_item_timestamp(
        _item(tpki, _token(tpki)),
        trust=_tsa_evaluator(tpki.other_root.cert, None),
        at=dt.datetime.now(dt.UTC),
    )
    assert res.indication == "INVALID"
    assert [f.code for f in res.findings] == ["TIMESTAMP_TSA_UNTRUSTED"]


def test_verify_item_without_trust(tpki: TimestampPki) -> None:
    item = _item(tpki, _token(tpki))
    now = dt.datetime.now(dt.UTC)
    assert verify_item_timestamp(item, trust=None, at=now).indication == "INDETERMINATE"
    assert verify_item_timestamp(item, trust=None, at=now, trust_required=False).valid


def test_verify_item_accepts_whole_response(tpki: TimestampPki) -> None:
    item = _item(tpki, make_response(_token(tpki)))
    assert verify_item_timestamp(
        item, trust=None, at=dt.datetime.now(dt.UTC), trust_required=False
    ).valid


# --- the HTTP client -------------------------------------------------------------------------


def test_client_fallback_after_dead_tsa(tpki: TimestampPki) -> None:
    with tpki.server() as good:
        stamp = request_timestamp(
            [dead_url(), good.url],
            DATA,
            options=TsaOptions(timeout=5, retries=1),
            sleep=lambda _s: None,
        )
    assert stamp.url == good.url and good.hits == 1
    assert stamp.info.digest == hashlib.sha256(DATA).digest()


def test_client_retries_5xx_then_falls_back(tpki: TimestampPki) -> None:
    with tpki.server(fault="http500") as bad, tpki.server() as good:
        stamp = request_timestamp(
            [bad.url, good.url], DATA, options=TsaOptions(retries=2), sleep=lambda _s: None
        )
    assert bad.hits == 3 and stamp.url == good.url


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("wrong_imprint", "imprint"),
        ("wrong_nonce", "nonce"),
        ("garbage", "not an RFC 3161"),
        ("html", "text/html"),
        ("reject", "rejected"),
    ],
)
def test_client_bad_reply_is_not_retried(tpki: TimestampPki, fault: str, message: str) -> None:
    with tpki.server(fault=fault) as bad:
        with pytest.raises(TsaUnavailableError, match=message):
            request_timestamp([bad.url], DATA, options=TsaOptions(retries=3), sleep=lambda _s: None)
        assert bad.hits == 1


def test_client_policy_checked(tpki: TimestampPki) -> None:
    with tpki.server(fault="wrong_policy") as bad:
        with pytest.raises(TsaUnavailableError, match="policy"):
            request_timestamp([bad.url], DATA, QueryOptions(policy="1.2.3.4.5"))


def test_client_basic_auth(tpki: TimestampPki) -> None:
    secret = "s3cret-Pa55"
    with tpki.server(auth=("alice", secret)) as srv:
        ok = request_timestamp(
            [srv.url], DATA, options=TsaOptions(credentials=TsaCredentials("alice", secret))
        )
        assert ok.url == srv.url
        with pytest.raises(TsaUnavailableError) as err:
            request_timestamp(
                [srv.url],
                DATA,
                options=TsaOptions(credentials=TsaCredentials("alice", "wrong-" + secret)),
            )
    assert "credentials" in str(err.value) and secret not in str(err.value)
    assert secret not in repr(TsaCredentials("alice", secret))


def test_client_all_dead() -> None:
    with pytest.raises(TsaUnavailableError, match="unreachable after 2 attempts"):
        request_timestamp(
            [dead_url(), dead_url()], DATA, options=TsaOptions(timeout=2), sleep=lambda _s: None
        )


def test_client_openssl_backend(tpki: TimestampPki) -> None:
    with tpki.server(backend="openssl") as srv:
        stamp = request_timestamp([srv.url], DATA, QueryOptions("sha384"))
    assert stamp.info.hash_algorithm == "sha384" and stamp.info.nonce == stamp.query.nonce


def test_client_rejects_other_schemes() -> None:
    with pytest.raises(TimestampError, match="http"):
        request_timestamp(["file:///etc/passwd"], DATA)


def test_redact() -> None:
    assert redact_url("http://u:pw@127.0.0.1:8/tsa") == "http://127.0.0.1:8/tsa"
    assert redact_url("http://127.0.0.1/tsa") == "http://127.0.0.1/tsa"


def test_credentials_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSIG_TEST_TSA_PW", "envpw")
    assert TsaCredentials.load(
        "u", password_env="DSIG_TEST_TSA_PW", password_file=None
    ) == TsaCredentials("u", "envpw")
    pw = tmp_path / "pw"
    pw.write_text("filepw\n")
    creds = TsaCredentials.load("u", password_env=None, password_file=pw)
    assert creds is not None and creds.password == "filepw"
    with pytest.raises(TimestampError, match="not set"):
        TsaCredentials.load("u", password_env="DSIG_TEST_UNSET_VAR", password_file=None)
    with pytest.raises(TimestampError, match="needs a TSA user") as e:
        TsaCredentials.load(None, password_env="X", password_file=None)
    assert e.value.option == "tsa_user"  # the CLI says --tsa-user


def test_reply_structure_is_rfc3161(tpki: TimestampPki) -> None:
    q = build_query(DATA)
    resp = tsp.TimeStampResp.load(answer_query(q.der, tpki.tsa))
    assert resp["status"]["status"].native == "granted"
    assert dataclasses.is_dataclass(check_reply(token_from_reply(resp.dump()), DATA, query=q))


def test_check_token_never_raises_on_corruption(tpki: TimestampPki) -> None:
    """Every single-byte corruption is reported as a problem (or harmless), never raised."""
    token = _token(tpki)
    outcomes = set()
    for i in range(0, len(token), 5):
        bad = bytearray(token)
        bad[i] ^= 0x5A
        check = check_token(bytes(bad), DATA)
        outcomes.add(check.ok)
        if check.ok:  # only bytes outside what is signed may change silently (certificates)
            info = check.info
            assert info is not None and info.digest == hashlib.sha256(DATA).digest()
    assert False in outcomes
    for cut in (1, 10, 100, len(token) // 2, len(token) - 1):
        assert not check_token(token[:cut], DATA).ok


def test_timestamp_before_claimed_signing_time_warns(tpki: TimestampPki) -> None:
    gen = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    item = _item(tpki, _token(tpki, gen_time=gen))
    res = verify_item_timestamp(
        item,
        trust=None,
        at=dt.datetime.now(dt.UTC),
        trust_required=False,
        signing_time=gen + dt.timedelta(hours=1),
    )
    assert res.valid
    assert [(f.code, f.severity) for f in res.findings] == [
        ("TIMESTAMP_BEFORE_SIGNING_TIME", "warning")
    ]


def test_client_credentials_in_url(tpki: TimestampPki) -> None:
    with tpki.server(auth=("carol", "p@ss")) as srv:
        url = srv.url.replace("http://", "http://carol:p%40ss@")
        assert request_timestamp([url], DATA).url == url
        bad = srv.url.replace("http://", "http://carol:nope-secret@")
        with pytest.raises(TsaUnavailableError) as err:
            request_timestamp([bad], DATA)
    assert "nope-secret" not in str(err.value) and "credentials" in str(err.value)
