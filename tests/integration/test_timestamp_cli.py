"""``dsig sign --tsa``, ``dsig timestamp query|insert|add`` and ``dsig verify`` with timestamps.

Real parts only: our RFC 3161 TSA on 127.0.0.1 (and ``openssl ts -reply`` behind it), real
CRLs, the CLI through typer's CliRunner (in-process, so the servers' threads answer it).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from dsig.cli import app
from dsig.encoding.reader import read_dicom
from dsig.encoding.writer import save, target_encoding
from dsig.operations.signer import SignOptions, add_signature
from dsig.signature.model import CERTIFIED_TIMESTAMP, find_signatures, raw_bytes
from tests.helpers.pki_servers import make_crl
from tests.helpers.tsa import TimestampPki, TsaServer, dead_url
from tokens import open_key_provider

CT = Path(str(get_testdata_file("CT_small.dcm", download=False)))
runner = CliRunner()


@pytest.fixture(scope="module")
def tpki(tmp_path_factory: pytest.TempPathFactory) -> TimestampPki:
    return TimestampPki(tmp_path_factory.mktemp("ts-cli-pki"))


@pytest.fixture(scope="module")
def tsa(tpki: TimestampPki) -> Iterator[TsaServer]:
    with tpki.server() as server:
        yield server


def dsig(*args: object) -> Any:
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result


def sign(tpki: TimestampPki, out: Path, *extra: object, src: Path = CT) -> Any:
    return dsig(
        "sign", src, out, "--key", tpki.rsa_key, "--cert", tpki.rsa_cert, "--no-password", *extra
    )


def verify_json(path: Path, *extra: object) -> tuple[int, dict[str, Any]]:
    result = dsig("verify", path, "--json", *extra)
    return result.exit_code, json.loads(result.stdout)


def trust(tpki: TimestampPki) -> list[object]:
    return ["--trust-store", tpki.root_pem, "--untrusted", tpki.inter_pem]


def first_sig(report: dict[str, Any]) -> dict[str, Any]:
    return report["files"][0]["signatures"][0]  # type: ignore[no-any-return]


def one_line_error(result: Any) -> str:
    err = result.stderr.strip()
    assert result.exit_code == 4, (result.exit_code, result.stdout, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return str(err)


# --- online ----------------------------------------------------------------------------------


def test_sign_with_tsa_then_verify(tpki: TimestampPki, tsa: TsaServer, tmp_path: Path) -> None:
    out = tmp_path / "signed.dcm"
    result = sign(tpki, out, "--tsa", tsa.url)
    assert result.exit_code == 0, result.output
    assert "timestamped" in result.stdout
    code, report = verify_json(out, *trust(tpki))
    sig = first_sig(report)
    assert code == 0, report
    ts = sig["timestamp"]
    assert ts["indication"] == "VALID" and ts["hash_algorithm"] == "sha256"
    assert ts["tsa"] == tpki.tsa.cert.subject.rfc4514_string() and ts["findings"] == []
    moment = dt.datetime.fromisoformat(ts["time"])
    assert abs(moment - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    # No --at: the signer is validated at the certified time.
    assert sig["trust"]["moment_source"] == "certified-timestamp"
    assert dt.datetime.fromisoformat(sig["trust"]["validated_at"]) == moment
    human = dsig("verify", out, *trust(tpki))
    assert "timestamp VALID" in human.stdout


def test_sign_falls_back_when_first_tsa_is_dead(
    tpki: TimestampPki, tsa: TsaServer, tmp_path: Path
) -> None:
    out = tmp_path / "signed.dcm"
    before = tsa.hits
    result = sign(
        tpki,
        out,
        "--tsa",
        dead_url(),
        "--tsa",
        tsa.url,
        "--tsa-timeout",
        "3",
        "--ts-hash",
        "sha512",
    )
    assert result.exit_code == 0, result.output
    assert f"by {tsa.url}" in result.stdout and tsa.hits == before + 1
    code, report = verify_json(out, *trust(tpki))
    assert code == 0 and first_sig(report)["timestamp"]["hash_algorithm"] == "sha512"


def test_sign_all_tsas_dead_writes_nothing(tpki: TimestampPki, tmp_path: Path) -> None:
    out = tmp_path / "signed.dcm"
    err = one_line_error(sign(tpki, out, "--tsa", dead_url(), "--tsa-retries", "0"))
    assert "no TSA gave a usable timestamp" in err and not out.exists()


@pytest.mark.parametrize("fault", ["wrong_imprint", "wrong_nonce"])
def test_bad_reply_rejected_before_insert(tpki: TimestampPki, tmp_path: Path, fault: str) -> None:
    out = tmp_path / "signed.dcm"
    with tpki.server(fault=fault) as bad:
        err = one_line_error(sign(tpki, out, "--tsa", bad.url))
    assert fault.split("_")[1] in err and not out.exists()


def test_tsa_without_eku_rejected(tpki: TimestampPki, tmp_path: Path) -> None:
    signed = tmp_path / "signed.dcm"
    assert sign(tpki, signed).exit_code == 0
    with tpki.server(tpki.tsa_no_eku) as bad:
        err = one_line_error(
            dsig("timestamp", "add", signed, tmp_path / "o.dcm", "--all", "--tsa", bad.url)
        )
    assert "extended key usage" in err or "EKU" in err


def test_add_with_basic_auth_and_openssl_backend(
    tpki: TimestampPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed = tmp_path / "signed.dcm"
    assert sign(tpki, signed).exit_code == 0
    secret = "tsa-Secret-42"
    monkeypatch.setenv("DSIG_TEST_TSA_PW", secret)
    with tpki.server(backend="openssl", auth=("bob", secret)) as srv:
        out = tmp_path / "stamped.dcm"
        ok = dsig(
            "timestamp",
            "add",
            signed,
            out,
            "--all",
            "--tsa",
            srv.url,
            "--tsa-user",
            "bob",
            "--tsa-password-env",
            "DSIG_TEST_TSA_PW",
        )
        assert ok.exit_code == 0, ok.output
        assert secret not in ok.output
        monkeypatch.setenv("DSIG_TEST_TSA_PW", "wrong")
        bad = dsig(
            "timestamp",
            "add",
            signed,
            tmp_path / "x.dcm",
            "--all",
            "--tsa",
            srv.url,
            "--tsa-user",
            "bob",
            "--tsa-password-env",
            "DSIG_TEST_TSA_PW",
        )
        assert "credentials" in one_line_error(bad) and "wrong" not in bad.stderr
    code, report = verify_json(out, *trust(tpki))
    assert code == 0 and first_sig(report)["timestamp"]["policy"] == "1.2.3.4.1"


def test_add_refuses_existing_unless_replace(
    tpki: TimestampPki, tsa: TsaServer, tmp_path: Path
) -> None:
    out = tmp_path / "signed.dcm"
    assert sign(tpki, out, "--tsa", tsa.url).exit_code == 0
    uid = first_sig(verify_json(out)[1])["uid"]
    err = one_line_error(
        dsig("timestamp", "add", out, tmp_path / "x.dcm", "--uid", uid, "--tsa", tsa.url)
    )
    assert "already has a timestamp" in err
    nothing = dsig("timestamp", "add", out, tmp_path / "y.dcm", "--all", "--tsa", tsa.url)
    assert nothing.exit_code == 0 and "nothing to do" in nothing.stdout
    again = dsig("timestamp", "add", out, "--in-place", "--uid", uid, "--replace", "--tsa", tsa.url)
    assert again.exit_code == 0, again.output


# --- offline (query file / reply file) -------------------------------------------------------


def _openssl_reply(srv: TsaServer, query: Path, reply: Path) -> None:
    reply.write_bytes(srv.respond(query.read_bytes()))


def test_offline_query_insert_verify(tpki: TimestampPki, tmp_path: Path) -> None:
    signed, q, u = tmp_path / "signed.dcm", tmp_path / "q.tsq", tmp_path / "uid.dcm"
    result = sign(
        tpki,
        signed,
        "--timestamp-query",
        q,
        "--timestamp-uid-file",
        u,
        "--ts-policy",
        "1.2.3.4.5",
        "--ts-hash",
        "sha384",
    )
    assert result.exit_code == 0, result.output
    assert CERTIFIED_TIMESTAMP not in find_signatures(read_dicom(signed))[0].item
    openssl = subprocess.run(
        ["openssl", "ts", "-query", "-in", str(q), "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "sha384" in openssl and "1.2.3.4.5" in openssl
    with TimestampPki.server(tpki, backend="openssl") as srv:
        r = tmp_path / "r.tsr"
        _openssl_reply(srv, q, r)
    out = tmp_path / "stamped.dcm"
    ins = dsig("timestamp", "insert", signed, out, "--reply", r, "--query", q, "--uid-file", u)
    assert ins.exit_code == 0, ins.output
    code, report = verify_json(out, *trust(tpki), "--require", "timestamp")
    ts = first_sig(report)["timestamp"]
    assert code == 0 and ts["indication"] == "VALID" and ts["policy"] == "1.2.3.4.5"


def test_query_command_and_mismatched_reply(
    tpki: TimestampPki, tsa: TsaServer, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.dcm", tmp_path / "b.dcm"
    assert sign(tpki, a).exit_code == 0 and sign(tpki, b).exit_code == 0
    qa, qb = tmp_path / "a.tsq", tmp_path / "b.tsq"
    assert dsig("timestamp", "query", a, "-o", qa, "--ts-no-nonce").exit_code == 0
    assert dsig("timestamp", "query", b, "-o", qb).exit_code == 0
    rb = tmp_path / "b.tsr"
    rb.write_bytes(tsa.respond(qb.read_bytes()))
    # The reply for b's signature must not go into a.
    err = one_line_error(dsig("timestamp", "insert", a, tmp_path / "x.dcm", "--reply", rb))
    assert "imprint" in err
    err = one_line_error(
        dsig("timestamp", "insert", b, tmp_path / "y.dcm", "--reply", rb, "--query", qa)
    )
    assert "differs from the query" in err
    ok = dsig("timestamp", "insert", b, tmp_path / "z.dcm", "--reply", rb, "--query", qb)
    assert ok.exit_code == 0, ok.output


def test_bad_options_are_usage_errors(tpki: TimestampPki, tmp_path: Path) -> None:
    assert sign(tpki, tmp_path / "o.dcm", "--ts-policy", "x.y").exit_code == 0  # unused
    err = one_line_error(
        sign(tpki, tmp_path / "p.dcm", "--timestamp-query", tmp_path / "q", "--ts-policy", "x.y")
    )
    assert "dotted OID" in err
    usage = sign(tpki, tmp_path / "r.dcm", "--timestamp-uid-file", tmp_path / "u")
    assert usage.exit_code == 2
    assert dsig("timestamp", "add", tmp_path / "o.dcm", tmp_path / "s.dcm", "--all").exit_code == 2


# --- verification ----------------------------------------------------------------------------


def _stamped(tpki: TimestampPki, tsa: TsaServer, tmp_path: Path) -> Path:
    out = tmp_path / "stamped.dcm"
    assert sign(tpki, out, "--tsa", tsa.url).exit_code == 0
    return out


def test_tampered_token_is_invalid(tpki: TimestampPki, tsa: TsaServer, tmp_path: Path) -> None:
    path = _stamped(tpki, tsa, tmp_path)
    ds = read_dicom(path)
    item = find_signatures(ds)[0].item
    token = bytearray(raw_bytes(item, CERTIFIED_TIMESTAMP) or b"")
    at = bytes(token).index(b"\x18\x0f")  # TSTInfo genTime (GeneralizedTime, 15 chars)
    token[at + 5] ^= 0x01  # a year digit: the certified time is forged
    item.add_new(CERTIFIED_TIMESTAMP, "OB", bytes(token))
    save(ds, path, target_encoding(ds, "same", None))
    code, report = verify_json(path, *trust(tpki))
    sig = first_sig(report)
    assert sig["timestamp"]["indication"] == "INVALID", sig["timestamp"]
    assert "TIMESTAMP_INVALID" in {f["code"] for f in sig["findings"]}
    assert sig["integrity"] == "VALID"  # the timestamp lies outside the MAC
    code, report = verify_json(path, *trust(tpki), "--require", "timestamp")
    assert code == 1


def test_require_timestamp(tpki: TimestampPki, tsa: TsaServer, tmp_path: Path) -> None:
    plain = tmp_path / "plain.dcm"
    assert sign(tpki, plain).exit_code == 0
    code, report = verify_json(plain, *trust(tpki), "--require", "timestamp")
    assert code == 1
    assert report["files"][0]["findings"][0]["code"] == "TIMESTAMP_REQUIRED"
    assert verify_json(plain, *trust(tpki))[0] == 0
    stamped = _stamped(tpki, tsa, tmp_path)
    assert verify_json(stamped, *trust(tpki), "--require", "timestamp")[0] == 0


def test_tsa_trust_store(tpki: TimestampPki, tmp_path: Path) -> None:
    with tpki.server(tpki.other_tsa) as other:
        path = tmp_path / "other.dcm"
        assert sign(tpki, path, "--tsa", other.url).exit_code == 0
    code, report = verify_json(path, *trust(tpki))
    ts = first_sig(report)["timestamp"]
    assert ts["indication"] == "INVALID" and ts["findings"][0]["code"] == "TIMESTAMP_TSA_UNTRUSTED"
    code, report = verify_json(path, *trust(tpki), "--tsa-trust-store", tpki.other_root_pem)
    assert code == 0 and first_sig(report)["timestamp"]["indication"] == "VALID"


def _sign_at(tpki: TimestampPki, key: Path, cert: Path, moment: dt.datetime, out: Path) -> None:
    """Library signing with a chosen Digital Signature DateTime (no CLI option for it)."""
    ds = read_dicom(CT)
    provider = open_key_provider(str(key), cert=cert, password=None)
    try:
        add_signature(ds, provider, SignOptions(at=moment))
    finally:
        provider.close()
    save(ds, out, target_encoding(ds, "same", None))


def _stamp_at(tpki: TimestampPki, src: Path, out: Path, moment: dt.datetime) -> None:
    with tpki.server(clock=lambda: moment) as past:
        result = dsig("timestamp", "add", src, out, "--all", "--tsa", past.url)
    assert result.exit_code == 0, result.output


def test_expired_signer_rescued_by_earlier_timestamp(tpki: TimestampPki, tmp_path: Path) -> None:
    now = tpki.now
    t = now - dt.timedelta(days=10)
    _, key, cert = tpki.signer(
        "expired", not_before=now - dt.timedelta(days=20), not_after=now - dt.timedelta(days=5)
    )
    signed, stamped = tmp_path / "signed.dcm", tmp_path / "stamped.dcm"
    _sign_at(tpki, key, cert, t, signed)
    _stamp_at(tpki, signed, stamped, t)
    code, report = verify_json(stamped, *trust(tpki))
    sig = first_sig(report)
    assert code == 0, sig
    assert sig["trust"]["indication"] == "VALID"
    assert dt.datetime.fromisoformat(sig["trust"]["validated_at"]) == t.replace(microsecond=0)
    code, report = verify_json(stamped, *trust(tpki), "--at", "timestamp")
    assert code == 0
    code, report = verify_json(stamped, *trust(tpki), "--at", "now")
    assert code == 1
    assert "CERT_EXPIRED" in {f["code"] for f in first_sig(report)["trust"]["findings"]}
    # Without a timestamp the same signature fails today.
    assert verify_json(signed, *trust(tpki))[0] == 1


def _crl(tpki: TimestampPki, cert: x509.Certificate, when: dt.datetime, path: Path) -> Path:
    crl = make_crl(
        tpki.intermediate,
        [(cert.serial_number, when, x509.ReasonFlags.key_compromise)],
        this_update=tpki.now - dt.timedelta(hours=1),
    )
    path.write_bytes(crl.public_bytes(serialization.Encoding.DER))
    return path


def test_revocation_before_and_after_the_timestamp(tpki: TimestampPki, tmp_path: Path) -> None:
    now = tpki.now
    t = now - dt.timedelta(days=3)
    leaf, key, cert = tpki.signer("revoked-signer")
    signed, stamped = tmp_path / "signed.dcm", tmp_path / "stamped.dcm"
    _sign_at(tpki, key, cert, t, signed)
    _stamp_at(tpki, signed, stamped, t)

    after = _crl(tpki, leaf.cert, now - dt.timedelta(days=1), tmp_path / "after.crl")
    code, report = verify_json(stamped, *trust(tpki), "--crl", after)
    sig = first_sig(report)
    assert code == 0, sig
    notes = [f for f in sig["trust"]["findings"] if f.get("note")]
    assert [f["code"] for f in notes] == ["REVOKED_AFTER_MOMENT"], sig["trust"]
    assert "certified time" in notes[0]["message"]
    # Validated now instead, the same revocation fails.
    assert verify_json(stamped, *trust(tpki), "--crl", after, "--at", "now")[0] == 1

    before = _crl(tpki, leaf.cert, now - dt.timedelta(days=5), tmp_path / "before.crl")
    code, report = verify_json(stamped, *trust(tpki), "--crl", before)
    sig = first_sig(report)
    assert code == 1
    assert "CERT_REVOKED" in {f["code"] for f in sig["trust"]["findings"]}


def test_at_timestamp_without_timestamp_notes_it(tpki: TimestampPki, tmp_path: Path) -> None:
    plain = tmp_path / "plain.dcm"
    assert sign(tpki, plain).exit_code == 0
    code, report = verify_json(plain, *trust(tpki), "--at", "timestamp")
    assert code == 0
    assert "TIMESTAMP_MOMENT_UNAVAILABLE" in {f["code"] for f in first_sig(report)["findings"]}


def test_token_without_tsa_certificate(tpki: TimestampPki, tsa: TsaServer, tmp_path: Path) -> None:
    signed, q = tmp_path / "signed.dcm", tmp_path / "q.tsq"
    assert sign(tpki, signed, "--timestamp-query", q, "--ts-no-cert-req").exit_code == 0
    r = tmp_path / "r.tsr"
    r.write_bytes(tsa.respond(q.read_bytes()))
    out = tmp_path / "stamped.dcm"
    ins = dsig("timestamp", "insert", signed, out, "--reply", r, "--query", q)
    assert ins.exit_code == 0 and "signature was not checked" in ins.stderr, ins.output
    tsa_pem = tmp_path / "tsa.pem"
    tsa_pem.write_bytes(tpki.tsa.cert.public_bytes(serialization.Encoding.PEM))
    checked = dsig(
        "timestamp",
        "insert",
        signed,
        tmp_path / "o2.dcm",
        "--reply",
        r,
        "--query",
        q,
        "--tsa-cert",
        tsa_pem,
    )
    assert checked.exit_code == 0 and "not checked" not in checked.stderr, checked.output
    code, report = verify_json(out, *trust(tpki))
    ts = first_sig(report)["timestamp"]
    assert ts["indication"] == "INDETERMINATE"
    assert [f["code"] for f in ts["findings"]] == ["TIMESTAMP_TSA_CERT_MISSING"]
    code, report = verify_json(out, *trust(tpki), "--untrusted", tsa_pem)
    assert code == 0 and first_sig(report)["timestamp"]["indication"] == "VALID"


def test_item_signature_timestamp(tpki: TimestampPki, tsa: TsaServer, tmp_path: Path) -> None:
    rtplan = Path(str(get_testdata_file("rtplan.dcm", download=False)))
    out = tmp_path / "item.dcm"
    result = sign(tpki, out, "--item", "BeamSequence[0]", "--tsa", tsa.url, src=rtplan)
    assert result.exit_code == 0, result.output
    code, report = verify_json(out, *trust(tpki), "--require", "timestamp")
    sig = first_sig(report)
    assert code == 0 and sig["location"] and sig["timestamp"]["indication"] == "VALID"
