"""Verification results are frozen values all the way down: a caller (a report, a worker, a
plugin) cannot change a verdict after the verifier made it, and sequences are tuples."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from dsig import FileResult, Finding, SignatureResult, sign_file, verify_file
from dsig.operations.batch import outcome_of
from dsig.results import FileIdentity
from pki import RevocationCheck, TrustFinding, TrustPolicy, TrustResult, load_certificates
from tests.conftest import CorePki, sample
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
