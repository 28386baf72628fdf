"""Verification results are frozen values all the way down: a caller (a report, a worker, a
plugin) cannot change a verdict after the verifier made it, and sequences are tuples."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from asn1crypto import cms, tsp
from typer.testing import CliRunner

from dsig import (
    FileResult,
    Finding,
    PurposeReport,
    SignatureResult,
    Tally,
    TimestampReport,
    TokenDetails,
    VerifyOptions,
    sign_file,
    verify_file,
)
from dsig.archive.audit import Plan, plan
from dsig.cli import app
from dsig.evidence import (
    CreateSummary,
    EvidenceReport,
    EvidenceResult,
    EvidenceStatus,
    RenewSummary,
    StampResult,
    StampSettings,
    StatusRow,
    create_evidence,
    renew_evidence,
    status_evidence,
)
from dsig.net import AuditRecord, ForwardEvent, SendResult
from dsig.net.pool import Verdict
from dsig.net.scu import SendSummary
from dsig.operations.batch import outcome_of
from dsig.results import FileIdentity
from dsig.timestamp.rfc3161 import TokenCheck, check_token
from pki import RevocationCheck, TrustFinding, TrustPolicy, TrustResult, load_certificates
from tests.conftest import CorePki, sample
from tests.helpers.tsa import TimestampPki
from tokens import open_key_provider


@pytest.fixture(scope="module")
def verified(core_pki: CorePki, tmp_path_factory: pytest.TempPathFactory) -> FileResult:
    out = tmp_path_factory.mktemp("frozen") / "signed.dcm"
    with open_key_provider(str(core_pki.rsa_key), cert=str(core_pki.rsa_cert)) as key:
        sign_file(sample("CT_small.dcm"), out, key)
    policy = TrustPolicy(trust_roots=tuple(load_certificates(core_pki.root)))
    return verify_file(out, trust=policy)


def _frozen_objects(result: FileResult) -> list[object]:
    sig = result.signatures[0]
    return [
        result,
        sig,
        result.identity,
        sig.trust,
        Finding("MAC_MISMATCH", "x"),
        TrustFinding("TRUST_NOT_CHECKED", "x"),
        *sig.trust.revocation,
    ]


def test_every_result_type_refuses_assignment(verified: FileResult) -> None:
    objects = _frozen_objects(verified)
    types = {type(o) for o in objects}
    assert {FileResult, SignatureResult, FileIdentity, TrustResult, Finding, TrustFinding} <= types
    for obj in objects:
        name = dataclasses.fields(obj)[0].name  # type: ignore[arg-type]
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, name, getattr(obj, name))


def test_a_batch_outcome_is_frozen_too(verified: FileResult) -> None:
    outcome = outcome_of(verified, None)
    assert outcome.result is not None and outcome.result["path"] == verified.path
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.skipped = "changed"  # type: ignore[misc]


def test_results_are_slotted(verified: FileResult) -> None:
    for obj in (verified, verified.signatures[0]):
        assert not hasattr(obj, "__dict__")
        with pytest.raises(AttributeError):  # no attribute beyond the slots, even bypassing
            object.__setattr__(obj, "extra", 1)


def test_sequence_fields_are_tuples(verified: FileResult) -> None:
    sig = verified.signatures[0]
    assert sig.integrity.value == "VALID" and sig.signed_tags and sig.profiles
    for value in (verified.signatures, verified.findings, verified.uncovered):
        assert isinstance(value, tuple)
    for value in (sig.profiles, sig.signed_tags, sig.unsigned_tags, sig.findings):
        assert isinstance(value, tuple)
    assert all(isinstance(c, RevocationCheck) for c in sig.trust.revocation)


def test_json_keeps_lists_and_results_survive_a_worker(verified: FileResult) -> None:
    data = verified.to_json()
    assert isinstance(data["signatures"], list) and isinstance(data["uncovered"], list)
    assert isinstance(data["signatures"][0]["signed_tags"], list)
    assert pickle.loads(pickle.dumps(verified)) == verified  # batch workers send results back


def test_a_result_is_changed_only_by_copying(verified: FileResult) -> None:
    moved = dataclasses.replace(verified, path="elsewhere.dcm")
    assert moved.path == "elsewhere.dcm" and verified.path != "elsewhere.dcm"
    assert moved.signatures is verified.signatures


# --- typed reports inside the results, and the other public result types ---------------------


@pytest.fixture(scope="module")
def stamped(tmp_path_factory: pytest.TempPathFactory) -> Stamped:
    """A file signed with purpose 1 and a certified timestamp from a real TSA on 127.0.0.1,
    its evidence record (library calls: their summaries are results too), and its verdict."""
    tmp = tmp_path_factory.mktemp("frozen-ts")
    tpki = TimestampPki(tmp / "pki")
    out, records = tmp / "signed.dcm", tmp / "evidence"
    tsa_trust = TrustPolicy(trust_roots=(tpki.root.cert,))
    with tpki.server() as tsa:
        signed = CliRunner().invoke(
            app,
            ["sign", str(sample("CT_small.dcm")), str(out), "--key", str(tpki.rsa_key),
             "--cert", str(tpki.rsa_cert), "--no-password", "--purpose", "1", "--tsa", tsa.url],
            catch_exceptions=False,
        )  # fmt: skip
        assert signed.exit_code == 0, signed.output
        settings = StampSettings([tsa.url], trust=tsa_trust)
        created = create_evidence([out], records, settings)
        renewed = renew_evidence(records, settings, min_age=dt.timedelta(0))
    policy = TrustPolicy(trust_roots=(tpki.root.cert,), intermediates=(tpki.intermediate.cert,))
    result = verify_file(out, trust=policy, options=VerifyOptions(evidence=records))
    missing = verify_file(out, trust=policy, options=VerifyOptions(evidence=tmp))
    return Stamped(tpki, out, result, missing, created, renewed, status_evidence(records))


@dataclasses.dataclass(frozen=True)
class Stamped:
    tpki: TimestampPki
    path: Path
    result: FileResult
    missing: FileResult
    created: CreateSummary
    renewed: RenewSummary
    status: list[StatusRow]


def _token(path: Path) -> tsp.TSTInfo:
    """The TSTInfo of the file's Certified Timestamp, decoded here with asn1crypto alone."""
    item = pydicom.dcmread(path).DigitalSignaturesSequence[0]
    info = cms.ContentInfo.load(bytes(item[0x04000310].value).rstrip(b"\0"))
    tst: tsp.TSTInfo = info["content"]["encap_content_info"]["content"].parsed
    return tst


def test_timestamp_report_gives_the_former_dict(stamped: Stamped) -> None:
    sig = stamped.result.signatures[0]
    ts = sig.timestamp
    assert isinstance(ts, TimestampReport) and isinstance(ts.token, TokenDetails)
    assert ts.valid and ts.tsa_trust is not None and ts.findings == ()
    tst, tsa = _token(stamped.path), stamped.tpki.tsa.cert.subject.rfc4514_string()
    accuracy = tst["accuracy"]
    # The dict the verifier stored before (same keys, same order), built from the token.
    former = {
        "indication": "VALID",
        "time": tst["gen_time"].native.astimezone(dt.UTC).isoformat(),
        "tsa": tsa,
        "hash_algorithm": "sha256",
        "findings": [],
        "policy": tst["policy"].dotted,
        "serial": int(tst["serial_number"].native),
        "accuracy_seconds": float(accuracy["seconds"].native or 0)
        + (accuracy["millis"].native or 0) / 1000
        + (accuracy["micros"].native or 0) / 1e6,
        "tsa_name": tsa,
        "tsa_trust": ts.tsa_trust.to_json(),
    }
    assert list(ts.to_json().items()) == list(former.items())
    assert sig.to_json()["timestamp"] == former
    assert ts.time == dt.datetime.fromisoformat(str(former["time"]))  # a datetime, not text


def test_purpose_report_gives_the_former_dict(stamped: Stamped) -> None:
    sig = stamped.result.signatures[0]
    code = pydicom.dcmread(stamped.path).DigitalSignaturesSequence[0][0x04000401][0]
    former = {"code": "1", "scheme": code.CodingSchemeDesignator, "meaning": code.CodeMeaning}
    assert isinstance(sig.purpose, PurposeReport) and sig.purpose.number == 1
    assert list(sig.purpose.to_json().items()) == list(former.items())
    assert sig.to_json()["purpose"] == former and former["meaning"] == "Author's Signature"


def test_evidence_report_gives_the_former_dict(stamped: Stamped) -> None:
    report = stamped.result.evidence
    assert isinstance(report, EvidenceReport) and isinstance(report.result, EvidenceResult)
    assert report.status == "PROVEN" and report.result.status is EvidenceStatus.PROVEN
    record = stamped.created.records[next(iter(stamped.created.records))]
    former = {"record": str(record), **report.result.to_json()}
    assert list(report.to_json().items()) == list(former.items())
    assert stamped.result.to_json()["evidence"] == former
    assert [r["kind"] for r in former["renewals"]] == ["initial", "timestamp-renewal"]
    gone = stamped.missing.evidence
    assert gone is not None and gone.result is None and gone.status == "MISSING"
    assert gone.to_json() == {"status": "MISSING", "record": None, "message": gone.message}
    assert gone.message and "no evidence record" in gone.message


def _received() -> AuditRecord:
    """An audit record as the storage node hands it to ``on_record``: built while the object
    is received, by copying."""
    bare = AuditRecord("2026-12-04T20:00:00+00:00", "SCU", "DSIG", "127.0.0.1:4242", "1.2",
                       "1.2.3", "1.2.840.10008.1.2.1", 10, "NOT_VERIFIED", "failed", 0)  # fmt: skip
    record = dataclasses.replace(
        bare,
        indication="VALID",
        action="stored",
        findings=("UNSIGNABLE_CONTENT",),
        signatures=({"indication": "VALID"},),
    )
    assert bare.action == "failed" and bare.findings == ()
    line = record.to_json()
    assert line["findings"] == ["UNSIGNABLE_CONTENT"] and line["action"] == "stored"
    assert line["signatures"] == [{"indication": "VALID"}]
    return record


def _verdict() -> Verdict:
    """A storage node's verdict: frozen, and still a plain value across a worker's pipe."""
    ids = {"SOPInstanceUID": "1.2.3"}
    summary = ({"indication": "VALID"},)
    verdict = Verdict("VALID", True, 0, "", summary, ("MAC_MISMATCH",), {"path": "a"}, None, ids)
    ids["SOPInstanceUID"] = "changed"  # the verdict holds its own copy
    assert verdict.ids == {"SOPInstanceUID": "1.2.3"}
    assert pickle.loads(pickle.dumps(verdict)) == verdict
    with pytest.raises(TypeError):
        verdict.report["path"] = "b"  # type: ignore[index]
    return verdict


def _public_results(stamped: Stamped) -> list[object]:
    sig = stamped.result.signatures[0]
    evidence = stamped.result.evidence
    assert sig.timestamp is not None and sig.purpose is not None and evidence is not None
    assert evidence.result is not None
    listing = plan([str(stamped.path)], False)
    return [
        sig.timestamp,
        sig.timestamp.token,
        sig.purpose,
        evidence,
        evidence.result,
        *evidence.result.stamps,
        stamped.created,
        stamped.renewed,
        *stamped.status,
        check_token(b"not a token", b""),
        listing,
        listing.skipping(frozenset({str(stamped.path)})),
        SendResult(stamped.path, "stored", 0),
        _received(),
        _verdict(),
        SendSummary((SendResult(stamped.path, "stored", 0),)),
        ForwardEvent("forwarded", "STORE@127.0.0.1:11112", "1.2.3", 0),
    ]


def test_every_public_result_type_is_frozen_and_slotted(stamped: Stamped) -> None:
    objects = _public_results(stamped)
    want = {TimestampReport, TokenDetails, PurposeReport, EvidenceReport, EvidenceResult,
            StampResult, CreateSummary, RenewSummary, StatusRow, TokenCheck, Plan, SendResult,
            ForwardEvent, AuditRecord, Verdict, SendSummary}  # fmt: skip
    assert want <= {type(o) for o in objects}
    for obj in objects:
        assert dataclasses.is_dataclass(obj) and not hasattr(obj, "__dict__"), type(obj)
        for f in dataclasses.fields(obj):
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(obj, f.name, getattr(obj, f.name))


def test_their_sequences_are_tuples_and_mappings_read_only(stamped: Stamped) -> None:
    objects = _public_results(stamped)
    for obj in objects:
        for f in dataclasses.fields(obj):  # type: ignore[arg-type]
            value = getattr(obj, f.name)
            assert not isinstance(value, list | dict | set), (type(obj).__name__, f.name)
    created, renewed = stamped.created, stamped.renewed
    assert len(renewed.renewed) == 1 and not renewed.failed and not renewed.skipped
    with pytest.raises(TypeError):
        created.records["x"] = stamped.path  # type: ignore[index]
    with pytest.raises(TypeError):
        renewed.failed["x"] = "changed"  # type: ignore[index]
    assert json.loads(json.dumps(renewed.to_json()))["renewed"] == list(renewed.renewed)
    assert check_token(b"not a token", b"").problems[0][0] == "TIMESTAMP_MALFORMED"


def test_a_running_tally_stays_an_accumulator(verified: FileResult) -> None:
    """Tally is mutable by design (documented): it counts outcomes as a run streams them."""
    tally = Tally()
    tally.add(outcome_of(verified, None))
    tally.add(outcome_of(verified, None))
    assert tally.files[verified.indication.value] == 2 and tally.signatures == 2


# --- no mutable drafts repeating a frozen type's fields --------------------------------------

_ROOT = Path(__file__).resolve().parents[2]


def _dataclasses_in(source: str, where: str) -> Iterator[tuple[str, bool, frozenset[str]]]:
    """(where:name, frozen, field names) of each dataclass a module defines, read statically."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        for deco in node.decorator_list:
            call = deco if isinstance(deco, ast.Call) else None
            name = ast.unparse(call.func if call else deco)
            if name not in ("dataclass", "dataclasses.dataclass"):
                continue
            frozen = any(
                k.arg == "frozen" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in (call.keywords if call else [])
            )
            names = frozenset(
                s.target.id
                for s in node.body
                if isinstance(s, ast.AnnAssign)
                and isinstance(s.target, ast.Name)
                and "ClassVar" not in ast.unparse(s.annotation)
            )
            yield f"{where}:{node.name}", frozen, names


def _drafts(modules: dict[str, str]) -> list[tuple[str, str]]:
    """(mutable class, frozen class) pairs where the mutable one repeats every field of the
    frozen one: a draft filled in and then frozen, the field list kept twice."""
    found = [c for where, source in modules.items() for c in _dataclasses_in(source, where)]
    frozen = [(name, names) for name, is_frozen, names in found if is_frozen and len(names) > 1]
    return [
        (name, other)
        for name, is_frozen, names in found
        if not is_frozen
        for other, other_names in frozen
        if other_names <= names
    ]


def test_no_mutable_draft_repeats_a_frozen_types_fields() -> None:
    """Results are built as the frozen type itself (``dataclasses.replace``), or from the
    values a loop genuinely accumulates, never through a mutable copy of its field list."""
    old_style = """
@dataclass(frozen=True, slots=True)
class RenewSummary:
    renewed: tuple[str, ...]
    failed: Mapping[str, str]
    kind: ClassVar[str] = "renew"

@dataclass
class _RenewDraft:
    renewed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
"""
    assert _drafts({"old.py": old_style}) == [("old.py:_RenewDraft", "old.py:RenewSummary")]
    modules = {
        str(path.relative_to(_ROOT)): path.read_text(encoding="utf-8")
        for package in ("dsig", "pki", "tokens")
        for path in sorted((_ROOT / package).rglob("*.py"))
    }
    assert len(modules) > 100
    assert _drafts(modules) == []
    assert not [n for w, s in modules.items() for n, _, _ in _dataclasses_in(s, w) if
                n.endswith("Draft")]  # fmt: skip


def test_a_renew_summary_holds_read_only_copies_of_its_mappings() -> None:
    skipped, failed = {"a.ers": "under the minimum age"}, {"b.ers": "TREE_MISMATCH: x"}
    summary = RenewSummary(("c.ers",), skipped, failed, 1, None)
    skipped.clear()
    failed["d.ers"] = "later"
    assert summary.skipped == {"a.ers": "under the minimum age"}
    assert summary.failed == {"b.ers": "TREE_MISMATCH: x"}
    with pytest.raises(TypeError):
        summary.failed["x"] = "changed"  # type: ignore[index]
    assert dataclasses.replace(summary, tsa_requests=2).failed == summary.failed
