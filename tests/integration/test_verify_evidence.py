"""``dsig verify --evidence DIR``: an evidence record's proven time of existence validates a
signer revoked since (real TSA on 127.0.0.1, records made by ``dsig evidence create``)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from cryptography import x509

from tests.helpers.pki_servers import make_crl
from tests.helpers.tsa import TimestampPki
from tests.integration.test_trust_model import PEM, dsig_cli, sign_file


def test_evidence_proves_a_signature_older_than_its_revocation(tmp_path: Path) -> None:
    tp = TimestampPki(tmp_path / "pki")
    now = tp.now
    signer, _key, _cert = tp.signer("evidence signer")
    study = tmp_path / "study"
    study.mkdir()
    signed = sign_file(signer, study / "signed.dcm", at=now - dt.timedelta(days=11))
    crl = tmp_path / "inter.crl"
    revoked_at = now - dt.timedelta(days=5)
    entry = (signer.cert.serial_number, revoked_at, x509.ReasonFlags.superseded)
    crl.write_bytes(make_crl(tp.intermediate, [entry]).public_bytes(PEM))
    trust = ("--trust-store", tp.root_pem, "--untrusted", tp.inter_pem, "--crl", crl)

    # the record is made while the signer was good: the TSA certifies ten days ago
    with tp.server(clock=lambda: now - dt.timedelta(days=10)) as tsa:
        made = dsig_cli("evidence", "create", study, "--out-dir", tmp_path / "ev",
                        "--tsa", tsa.url, "--tsa-trust-store", tp.root_pem)  # fmt: skip
    assert made.exit_code == 0, made.output

    without = dsig_cli("verify", signed, "--json", *trust)
    assert without.exit_code == 1, without.output  # revoked, judged now

    r = dsig_cli("verify", signed, "--json", *trust, "--evidence", tmp_path / "ev")
    assert r.exit_code == 0, r.output
    file = json.loads(r.stdout)["files"][0]
    evidence = file["evidence"]
    assert evidence["status"] == "PROVEN"
    assert dt.datetime.fromisoformat(evidence["proven_time"]) < revoked_at
    assert evidence["record"].endswith(".ers")
    trust_json = file["signatures"][0]["trust"]
    assert trust_json["indication"] == "VALID"
    assert trust_json["moment_source"] == "certified-timestamp"
    assert "REVOKED_AFTER_MOMENT" in [f["code"] for f in trust_json["findings"]]
    human = dsig_cli("verify", signed, *trust, "--evidence", tmp_path / "ev")
    assert human.exit_code == 0 and "evidence: PROVEN, the file existed at" in human.stdout

    # another file with the same SOP Instance UID (signed again: other bytes) is not the
    # file the record covers: broken, exit 1
    other = tmp_path / "other.dcm"
    sign_file(signer, other, at=now - dt.timedelta(days=11))
    r = dsig_cli("verify", other, "--json", *trust, "--evidence", tmp_path / "ev")
    file = json.loads(r.stdout)["files"][0]
    assert r.exit_code == 1 and file["evidence"]["status"] == "BROKEN", file["evidence"]
    assert "EVIDENCE_BROKEN" in [f["code"] for f in file["findings"]]
    # no record for the file: said, and judged as without --evidence
    (tmp_path / "empty").mkdir()
    r = dsig_cli("verify", signed, "--json", *trust, "--evidence", tmp_path / "empty")
    file = json.loads(r.stdout)["files"][0]
    assert r.exit_code == 1 and file["evidence"]["status"] == "MISSING"
    assert "EVIDENCE_MISSING" in [f["code"] for f in file["findings"]]
    # usage: --evidence with --integrity-only
    r = dsig_cli("verify", signed, "--integrity-only", "--evidence", tmp_path / "ev")
    assert r.exit_code == 2


def test_evidence_proves_a_signature_made_before_its_certificate_expired(tmp_path: Path) -> None:
    tp = TimestampPki(tmp_path / "pki")
    now = tp.now
    expired_at = now - dt.timedelta(days=2)
    signer, _key, _cert = tp.signer("expired signer", not_before=now - dt.timedelta(days=60),
                                    not_after=expired_at)  # fmt: skip
    study = tmp_path / "study"
    study.mkdir()
    signed = sign_file(signer, study / "signed.dcm", at=now - dt.timedelta(days=11))
    trust = ("--trust-store", tp.root_pem, "--untrusted", tp.inter_pem)
    with tp.server(clock=lambda: now - dt.timedelta(days=10)) as tsa:
        made = dsig_cli("evidence", "create", study, "--out-dir", tmp_path / "ev",
                        "--tsa", tsa.url, "--tsa-trust-store", tp.root_pem)  # fmt: skip
    assert made.exit_code == 0, made.output
    without = dsig_cli("verify", signed, "--json", *trust)
    assert without.exit_code == 1, without.output  # expired, judged now
    codes = [f["code"] for f in json.loads(without.stdout)["files"][0]["signatures"][0]["trust"]
             ["findings"]]  # fmt: skip
    assert "CERT_EXPIRED" in codes
    r = dsig_cli("verify", signed, "--json", *trust, "--evidence", tmp_path / "ev")
    assert r.exit_code == 0, r.output
    file = json.loads(r.stdout)["files"][0]
    assert dt.datetime.fromisoformat(file["evidence"]["proven_time"]) < expired_at
    trust_json = file["signatures"][0]["trust"]
    assert trust_json["indication"] == "VALID"
    assert trust_json["moment_source"] == "certified-timestamp"
