"""Verdicts (issues 11 and 13): present timestamps count, trust findings stay in the trust
phase, ``--require signature`` means the main data set, weak timestamp algorithms.

Real parts only: our RFC 3161 TSA on 127.0.0.1 (tests/helpers/tsa.py), a real
``dsig serve`` subprocess, the CLI through typer's CliRunner.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from dsig.cli import app
from dsig.encoding.reader import read_dicom
from dsig.encoding.writer import save, target_encoding
from dsig.operations.signer import SignOptions, add_signature
from dsig.operations.verifier import VerifyOptions, verify_file
from dsig.results import Indication
from dsig.signature.model import CERTIFIED_TIMESTAMP, find_signatures, raw_bytes
from dsig.timestamp import insert_token, timestamped_bytes
from tests.helpers import net
from tests.helpers.tsa import TimestampPki, TsaServer, make_token
from tokens import open_key_provider

CT = Path(str(get_testdata_file("CT_small.dcm", download=False)))
SR = Path(str(get_testdata_file("reportsi.dcm", download=False)))
runner = CliRunner()


@pytest.fixture(scope="module")
def tpki(tmp_path_factory: pytest.TempPathFactory) -> TimestampPki:
    return TimestampPki(tmp_path_factory.mktemp("verdict-pki"))


@pytest.fixture(scope="module")
def tsa(tpki: TimestampPki) -> Iterator[TsaServer]:
    with tpki.server() as server:
        yield server


def dsig(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def sign(tpki: TimestampPki, src: Path, out: Path, *extra: object) -> None:
    r = dsig("sign", src, out, "--key", tpki.rsa_key, "--cert", tpki.rsa_cert, "--no-password",
             *extra)  # fmt: skip
    assert r.exit_code == 0, r.output


def trust(tpki: TimestampPki) -> list[object]:
    return ["--trust-store", tpki.root_pem, "--untrusted", tpki.inter_pem]


def verify_json(path: Path, *extra: object) -> tuple[int, dict[str, Any]]:
    r = dsig("verify", path, "--json", *extra)
    return r.exit_code, json.loads(r.stdout)


def only_sig(report: dict[str, Any]) -> dict[str, Any]:
    (sig,) = report["files"][0]["signatures"]
    return sig  # type: ignore[no-any-return]


def codes(findings: list[dict[str, Any]], severity: str | None = None) -> set[str]:
    return {str(f["code"]) for f in findings if severity is None or f["severity"] == severity}


def replace_token(path: Path, token: bytes) -> None:
    ds = read_dicom(path)
    insert_token(find_signatures(ds)[0].item, token)
    save(ds, path, target_encoding(ds, "same", None))


def token_of(path: Path) -> bytes:
    return raw_bytes(find_signatures(read_dicom(path))[0].item, CERTIFIED_TIMESTAMP) or b""


# --- timestamps count --------------------------------------------------------------------------


def _stamped(tpki: TimestampPki, tsa: TsaServer, out: Path, src: Path = CT) -> Path:
    sign(tpki, src, out, "--tsa", tsa.url)
    return out


def _modified(tpki: TimestampPki, tsa: TsaServer, tmp_path: Path) -> Path:
    path = _stamped(tpki, tsa, tmp_path / "modified.dcm")
    token = bytearray(token_of(path))
    at = bytes(token).index(b"\x18\x0f")  # TSTInfo genTime: forge a year digit
    token[at + 5] ^= 0x01
    replace_token(path, bytes(token))
    return path


def _transplanted(tpki: TimestampPki, tsa: TsaServer, tmp_path: Path) -> Path:
    donor = _stamped(tpki, tsa, tmp_path / "donor.dcm")
    path = tmp_path / "transplanted.dcm"
    sign(tpki, CT, path)  # another signature (other UID and time, so another value)
    replace_token(path, token_of(donor))
    return path


def _no_tsa_cert(tpki: TimestampPki, tsa: TsaServer, tmp_path: Path) -> Path:
    signed, query = tmp_path / "signed.dcm", tmp_path / "q.tsq"
    sign(tpki, CT, signed, "--timestamp-query", query, "--ts-no-cert-req")
    reply = tmp_path / "r.tsr"
    reply.write_bytes(tsa.respond(query.read_bytes()))
    out = tmp_path / "no-cert.dcm"
    r = dsig("timestamp", "insert", signed, out, "--reply", reply, "--query", query)
    assert r.exit_code == 0, r.output
    return out


@pytest.mark.parametrize(
    ("kind", "exit_code", "indication", "code", "cause"),
    [
        ("modified", 1, "INVALID", "TIMESTAMP_INVALID", "TIMESTAMP_SIGNATURE_INVALID"),
        ("transplanted", 1, "INVALID", "TIMESTAMP_INVALID", "TIMESTAMP_IMPRINT_MISMATCH"),
        ("no-tsa-cert", 3, "INDETERMINATE", "TIMESTAMP_INDETERMINATE",
         "TIMESTAMP_TSA_CERT_MISSING"),
    ],
)  # fmt: skip
def test_a_bad_timestamp_fails_the_signature(
    tpki: TimestampPki,
    tsa: TsaServer,
    tmp_path: Path,
    kind: str,
    exit_code: int,
    indication: str,
    code: str,
    cause: str,
) -> None:
    make = {"modified": _modified, "transplanted": _transplanted, "no-tsa-cert": _no_tsa_cert}
    path = make[kind](tpki, tsa, tmp_path)
    got, report = verify_json(path, *trust(tpki))
    sig = only_sig(report)
    assert (got, sig["indication"], report["files"][0]["indication"]) == (
        exit_code, indication, indication)  # fmt: skip
    assert sig["integrity"] == "VALID" and sig["trust"]["indication"] == "VALID"
    assert code in codes(sig["findings"], "error")
    assert cause in codes(sig["timestamp"]["findings"])
    # the same in human output
    human = dsig("verify", path, *trust(tpki))
    assert human.exit_code == exit_code and human.stdout.startswith(indication)
    assert f"{code}: " in human.stdout
    # declined by the option named for it: a warning, said so
    got, report = verify_json(path, *trust(tpki), "--timestamp-failures-warn")
    sig = only_sig(report)
    assert got == 0 and sig["indication"] == "VALID"
    warned = [f for f in sig["findings"] if f["code"] == code]
    assert warned and warned[0]["severity"] == "warning"
    assert warned[0]["message"].endswith("(counted as a warning, as asked)")
    # the library says the same
    result = verify_file(path, VerifyOptions(integrity_only=True))
    assert result.signatures[0].integrity is Indication.VALID
    assert result.indication is Indication(indication)


def test_untrusted_tsa_fails_the_signature(tpki: TimestampPki, tmp_path: Path) -> None:
    with tpki.server(tpki.other_tsa) as other:
        path = _stamped(tpki, other, tmp_path / "other.dcm")
    got, report = verify_json(path, *trust(tpki))
    sig = only_sig(report)
    assert got != 0 and sig["indication"] != "VALID"
    assert codes(sig["findings"], "error") & {"TIMESTAMP_INVALID", "TIMESTAMP_INDETERMINATE"}
    assert "TIMESTAMP_TSA_UNTRUSTED" in codes(sig["timestamp"]["findings"])
    assert verify_json(path, *trust(tpki), "--timestamp-failures-warn")[0] == 0
    assert verify_json(path, *trust(tpki), "--tsa-trust-store", tpki.other_root_pem)[0] == 0


def test_a_good_timestamp_still_verifies(
    tpki: TimestampPki, tsa: TsaServer, tmp_path: Path
) -> None:
    path = _stamped(tpki, tsa, tmp_path / "good.dcm")
    got, report = verify_json(path, *trust(tpki))
    assert got == 0 and only_sig(report)["timestamp"]["indication"] == "VALID"
    assert verify_json(path, "--integrity-only")[0] == 0


def test_serve_counts_timestamps(tpki: TimestampPki, tsa: TsaServer, tmp_path: Path) -> None:
    bad = _modified(tpki, tsa, tmp_path)
    bad_uid = str(pydicom.dcmread(bad).SOPInstanceUID)
    src = tmp_path / "other-uid.dcm"  # one server receives both: distinct SOP Instance UIDs
    plain = pydicom.dcmread(CT)
    plain.SOPInstanceUID = plain.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    plain.save_as(src)
    good = _stamped(tpki, tsa, tmp_path / "good.dcm", src=src)
    bundle = tmp_path / "trust.pem"
    bundle.write_bytes(tpki.root_pem.read_bytes() + tpki.inter_pem.read_bytes())
    for extra, bad_stored in (((), False), (("--timestamp-failures-warn",), True)):
        server = net.start_server(tmp_path / f"srv{len(extra)}", "--trust-store", bundle, *extra)
        try:
            for path in (bad, good):
                proc = net.run_dsig("send", "127.0.0.1", str(server.port), path,
                                    "--called-ae", "DSIGTEST")  # fmt: skip
                assert proc.returncode == 0, proc.stderr
            lines = {str(line["sop_instance_uid"]): line for line in server.wait_audit(2)}
        finally:
            assert server.stop() == 0, server.log()
        assert len(server.stored()) == (2 if bad_stored else 1), lines
        assert len(server.quarantined()) == (0 if bad_stored else 1)
        assert str(lines[bad_uid]["indication"]) == (
            "VALID" if bad_stored else "INVALID")  # fmt: skip


# --- weak algorithms in timestamp tokens -------------------------------------------------------


def test_weak_timestamp_algorithms_follow_the_signature_policy(
    tpki: TimestampPki, tmp_path: Path
) -> None:
    path = tmp_path / "weak.dcm"
    sign(tpki, CT, path)
    item = find_signatures(read_dicom(path))[0].item
    digest = hashlib.md5(timestamped_bytes(item)).digest()  # the weak case under test
    token = make_token(tpki.tsa, hash_algorithm="md5", digest=digest, signature_hash="sha1",
                       certs=[tpki.intermediate.cert])  # fmt: skip
    replace_token(path, token)
    got, report = verify_json(path, *trust(tpki))
    sig = only_sig(report)
    assert got == 0 and sig["timestamp"]["indication"] == "VALID"
    weak = [f for f in sig["findings"] if f["code"] == "WEAK_ALGORITHM"]
    assert len(weak) == 2 and {f["severity"] for f in weak} == {"warning"}
    assert any("md5" in f["message"] for f in weak) and any("sha1" in f["message"] for f in weak)
    got, report = verify_json(path, *trust(tpki), "--strict")
    sig = only_sig(report)
    assert got == 1 and sig["indication"] == "INVALID"
    assert sig["timestamp"]["indication"] == "INVALID"
    assert "TIMESTAMP_INVALID" in codes(sig["findings"], "error")
    assert codes(sig["timestamp"]["findings"], "error") == {"WEAK_ALGORITHM"}
    assert verify_json(path, *trust(tpki), "--strict", "--allow-weak", "md5")[0] == 1
    got, _ = verify_json(path, *trust(tpki), "--strict", "--allow-weak", "md5",
                         "--allow-weak", "sha1")  # fmt: skip
    assert got == 0


# --- phases stay apart ------------------------------------------------------------------------


def test_signing_outside_validity_is_a_trust_finding(tpki: TimestampPki, tmp_path: Path) -> None:
    path = tmp_path / "outside.dcm"
    ds = read_dicom(CT)
    key = open_key_provider(str(tpki.rsa_key), cert=tpki.rsa_cert, password=None)
    try:  # a claimed signing time years before the certificate was issued
        add_signature(ds, key, SignOptions(at=tpki.now - dt.timedelta(days=3650)))
    finally:
        key.close()
    save(ds, path, target_encoding(ds, "same", None))
    got, report = verify_json(path, *trust(tpki))
    sig = only_sig(report)
    assert got == 1 and sig["integrity"] == "VALID" and sig["indication"] == "INVALID"
    assert sig["trust"]["indication"] == "INVALID"
    assert "SIGNING_TIME_OUTSIDE_VALIDITY" in codes(sig["trust"]["findings"])
    assert "SIGNING_TIME_OUTSIDE_VALIDITY" not in codes(sig["findings"])
    human = dsig("verify", path, *trust(tpki))
    assert "integrity VALID, trust INVALID" in human.stdout
    got, report = verify_json(path, "--integrity-only")
    sig = only_sig(report)
    assert got == 0 and sig["integrity"] == "VALID" and sig["indication"] == "VALID"
    assert codes(sig["findings"], "warning") >= {"SIGNING_TIME_OUTSIDE_VALIDITY"}
    got, report = verify_json(path)  # no trust store: still a trust verdict, never VALID
    assert got == 1 and only_sig(report)["trust"]["indication"] == "INVALID"


@pytest.mark.parametrize(
    "option",
    [("--trust-store", "ROOT"), ("--crl", "ROOT"), ("--ocsp", "ROOT"), ("--untrusted", "ROOT"),
     ("--revocation", "soft-fail"), ("--online",), ("--at", "now"),
     ("--tsa-trust-store", "ROOT")],
)  # fmt: skip
def test_integrity_only_with_a_trust_option_is_a_usage_error(
    tpki: TimestampPki, tmp_path: Path, option: tuple[str, ...]
) -> None:
    path = tmp_path / "s.dcm"
    sign(tpki, CT, path)
    args = [str(tpki.root_pem) if a == "ROOT" else a for a in option]
    r = dsig("verify", path, "--integrity-only", *args)
    assert r.exit_code == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and option[0] in r.stderr, r.stderr


# --- --require signature: the main data set ---------------------------------------------------


def _item_signed_report(tpki: TimestampPki, tmp_path: Path) -> Path:
    out = tmp_path / "item-signed.dcm"
    sign(tpki, SR, out, "--item", "ContentSequence[0]")
    (ref,) = find_signatures(read_dicom(out))
    assert ref.path and len(ref.item) > 0  # signed inside the item only
    return out


def _assert_item_only(path: Path) -> None:
    got, report = verify_json(path, "--integrity-only", "--require", "signature")
    file = report["files"][0]
    assert got == 1 and file["indication"] == "INVALID"
    assert "SIGNATURE_REQUIRED" in codes(file["findings"], "error")
    assert only_sig(report)["integrity"] == "VALID"  # the item signature itself is intact
    got, report = verify_json(path, "--integrity-only", "--require", "item-signature")
    file = report["files"][0]
    assert got == 0 and file["indication"] == "VALID"
    assert codes(file["findings"]) == {"ITEM_SIGNATURES_ONLY"}
    assert codes(file["findings"], "warning") == {"ITEM_SIGNATURES_ONLY"}
    got, report = verify_json(path, "--integrity-only")  # no requirement: still a finding
    assert "ITEM_SIGNATURES_ONLY" in codes(report["files"][0]["findings"])
    human = dsig("verify", path, "--integrity-only", "--require", "signature")
    assert human.exit_code == 1 and "ITEM_SIGNATURES_ONLY" in human.stdout
    hint = "an item-signature requirement accepts those) (use --require item-signature)"
    assert hint in human.stdout  # the library's words, then the CLI's flag


def test_item_only_signature_with_a_changed_patient_name(
    tpki: TimestampPki, tmp_path: Path
) -> None:
    path = _item_signed_report(tpki, tmp_path)
    ds = read_dicom(path)
    ds.PatientName = "Someone^Else"
    save(ds, path, target_encoding(ds, "same", None))
    _assert_item_only(path)


def test_item_signature_transplanted_into_another_report(
    tpki: TimestampPki, tmp_path: Path
) -> None:
    signed = read_dicom(_item_signed_report(tpki, tmp_path))
    other = pydicom.dcmread(SR)
    other.PatientName, other.PatientID = "Other^Patient", "OTHER-1"
    other.SOPInstanceUID = other.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    other.ContentSequence[0] = copy.deepcopy(signed.ContentSequence[0])
    path = tmp_path / "transplant.dcm"
    other.save_as(path, enforce_file_format=True)
    _assert_item_only(path)


def test_main_signature_meets_both_requirements(tpki: TimestampPki, tmp_path: Path) -> None:
    path = tmp_path / "main.dcm"
    sign(tpki, SR, path)
    for requirement in ("signature", "item-signature"):
        got, report = verify_json(path, "--integrity-only", "--require", requirement)
        assert got == 0 and report["files"][0]["findings"] == []
    unsigned = verify_json(SR, "--integrity-only", "--require", "item-signature")
    assert unsigned[0] == 1


# --- control characters never reach the output raw ---------------------------------------------

FORGED_DT = "\nVALID         /archive/forged.dcm\x1b[2J"
FORGED = FORGED_DT + "\u202e"  # names may hold any Unicode: a bidi override too


def test_control_characters_are_escaped(tpki: TimestampPki, tmp_path: Path) -> None:
    from tests.helpers.pki_factory import issue

    mallory = issue("Mallory" + FORGED, issuer=tpki.intermediate, now=tpki.now)
    key, cert = mallory.write(tmp_path, "mallory")
    path = tmp_path / ("report" + FORGED.replace("/", "_") + ".dcm")
    r = dsig("sign", CT, path, "--key", key, "--cert", cert, "--no-password")
    assert r.exit_code == 0, r.output
    ds = read_dicom(path)  # a signing time that tries to forge a line of its own
    find_signatures(ds)[0].item.add_new(0x04000105, "DT", "20260101" + FORGED_DT)
    save(ds, path, target_encoding(ds, "same", None))
    html = tmp_path / "audit.html"
    outputs = {
        "verify": dsig("verify", path, tmp_path, "-r", "--integrity-only", "--report", html),
        "inspect": dsig("inspect", path),
        "error": dsig("verify", tmp_path / ("missing" + FORGED.replace("/", "_"))),
    }
    for name, result in outputs.items():
        text = result.stdout + result.stderr
        assert "\x1b" not in text and "\u202e" not in text, name
        lines = text.splitlines()
        assert not [line for line in lines if line.startswith("VALID")], (name, text)
        assert "\\nVALID         " in text and "\\x1b[2J\\u202e" in text, (name, text)
    assert "VALID         /archive/forged.dcm" not in outputs["verify"].stdout.replace(
        "\\nVALID", "")  # fmt: skip
    document = html.read_text()
    assert "\x1b" not in document and "\u202e" not in document
    assert "\\nVALID" in document and "\nVALID " not in document
    listing = json.loads(dsig("inspect", path, "--json").stdout)  # JSON keeps the value exact
    assert listing["signatures"][0]["datetime"] == "20260101" + FORGED_DT
