"""Study manifests (issue 16): ``dsig manifest create|verify`` and the Python API, on a study
built from pydicom's samples (several series; native, JPEG, RLE, JPEG 2000, ECG waveform; one
instance already signed), with a real PKI, real CRLs and a real TSA on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pydicom
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

from dsig.cli import app
from dsig.encoding.reader import read_dicom
from dsig.encoding.walk import is_signable
from dsig.encoding.writer import Encoding, save, target_encoding
from dsig.manifest import (
    CreateOptions,
    Status,
    StudySelectionError,
    create_manifest,
    read_manifest,
    save_manifest,
    verify_manifest,
)
from dsig.operations.signer import SignOptions, add_signature
from dsig.operations.verifier import VerifyOptions
from dsig.signature.mac_stream import write_mac_stream
from dsig.signature.model import find_signatures
from tests.conftest import CorePki
from tests.helpers.pki_factory import NOW
from tests.helpers.pki_servers import make_crl
from tests.helpers.rawdicom import EXPLICIT_LE, basic_dataset, meta, part10
from tests.helpers.study import Study, build_study
from tests.helpers.tsa import TimestampPki
from tokens import open_key_provider

runner = CliRunner()
PEM = serialization.Encoding.PEM


def dsig(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@dataclasses.dataclass(frozen=True)
class Signed:
    study: Study
    manifest: Path
    signed_instance: Path
    signer_key: Path
    signer_cert: Path


def _sign_in_place(path: Path, core_pki: CorePki) -> None:
    key = open_key_provider(str(core_pki.rsa_key), cert=core_pki.rsa_cert)
    try:
        ds = read_dicom(path, defer=False)
        add_signature(ds, key, SignOptions())
        save(ds, path, target_encoding(ds, "same", None))
    finally:
        key.close()


def _make(
    tmp: Path, core_pki: CorePki, *, key: Path | None = None, cert: Path | None = None
) -> Signed:
    study = build_study(tmp / "study")
    signed_instance = study.files[0]  # CT, native: signed before the manifest is made
    _sign_in_place(signed_instance, core_pki)
    manifest = tmp / "manifest.dcm"
    key, cert = key or core_pki.rsa_key, cert or core_pki.rsa_cert
    r = dsig(
        "manifest",
        "create",
        study.directory,
        "-o",
        manifest,
        "--key",
        key,
        "--cert",
        cert,
        "--no-password",
    )
    assert r.exit_code == 0, r.output
    return Signed(study, manifest, signed_instance, key, cert)


@pytest.fixture(scope="module")
def made(core_pki: CorePki, tmp_path_factory: pytest.TempPathFactory) -> Signed:
    return _make(tmp_path_factory.mktemp("manifest"), core_pki)


def copy_study(made: Signed, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(made.study.directory, target)
    return target


def trust_args(core_pki: CorePki) -> list[object]:
    """The test PKI as trust store, with current (empty) CRLs of the root and the
    intermediate: revocation is checked, and nothing is revoked."""
    root_crl = core_pki.directory / "manifest-root.crl"
    inter_crl = core_pki.directory / "manifest-intermediate.crl"
    if not inter_crl.exists():
        root_crl.write_bytes(make_crl(core_pki.pki.root).public_bytes(PEM))
        inter_crl.write_bytes(make_crl(core_pki.pki.intermediate).public_bytes(PEM))
    return ["--trust-store", core_pki.trust_bundle, "--crl", root_crl, "--crl", inter_crl]


def mverify(
    made: Signed, core_pki: CorePki, study: Path, *extra: object, trust: list[object] | None = None
) -> tuple[int, dict[str, Any]]:
    args = trust if trust is not None else trust_args(core_pki)
    r = dsig("manifest", "verify", made.manifest, study, *args, "--json", *extra)
    return r.exit_code, json.loads(r.stdout)


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {
        Path(i["path"]).name if i["path"] else i["sop_instance_uid"]: i["status"]
        for i in report["instances"]
    }


def test_created_manifest_lists_every_instance_under_its_series(made: Signed) -> None:
    ds = read_dicom(made.manifest)
    manifest = read_manifest(ds)
    assert manifest.study_uid == made.study.study_uid
    assert len(manifest.references) == len(made.study.files) == 7
    assert manifest.series_count == len(set(made.study.series.values())) == 5
    for path in made.study.files:
        inst = pydicom.dcmread(path, stop_before_pixels=True)
        ref = next(r for r in manifest.references if r.sop_instance_uid == inst.SOPInstanceUID)
        assert ref.series_uid == inst.SeriesInstanceUID
        assert ref.sop_class_uid == inst.SOPClassUID
        assert ref.mac_algorithm == "SHA256"
    # the KOS: title, patient/study attributes copied, signed with purpose 14
    kos = pydicom.dcmread(made.manifest)
    assert kos.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.59"
    title = kos.ConceptNameCodeSequence[0]
    assert (title.CodeValue, title.CodingSchemeDesignator) == ("113035", "DCM")
    assert title.CodeMeaning == "Signed Complete Acquisition Content"
    assert kos.PatientName == "Manifest^Test" and kos.PatientID == "MANIFEST01"
    assert kos.StudyInstanceUID == made.study.study_uid
    sig = kos[0xFFFAFFFA][0]
    assert sig.DigitalSignaturePurposeCodeSequence[0].CodeValue == "14"
    value_types = {item.ValueType for item in kos.ContentSequence}
    assert value_types == {"IMAGE", "WAVEFORM"}


def test_each_reference_mac_matches_an_independent_computation(made: Signed) -> None:
    """The MAC stream the signer uses (dsig.signature.mac_stream.write_mac_stream, public API) over every
    signable element, hashed here with hashlib: equal to the manifest's MAC for each file."""
    manifest = read_manifest(read_dicom(made.manifest))
    by_uid = {r.sop_instance_uid: r for r in manifest.references}
    for path in made.study.files:
        ds = read_dicom(path)
        tags = sorted(int(t) for t in ds.keys() if is_signable(ds, int(t)))
        h = hashlib.sha256()
        write_mac_stream(ds, tags, Dataset(), [h.update])
        ref = by_uid[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)]
        assert list(ref.signed_tags) == tags
        assert 0x7FE00010 in tags or 0x54000100 in tags  # pixel or waveform data covered
        assert ref.mac == h.digest(), path


def test_signed_instance_is_also_referenced_by_its_signature(made: Signed) -> None:
    manifest = read_manifest(read_dicom(made.manifest))
    ds = read_dicom(made.signed_instance)
    sig = find_signatures(ds)[0]
    refs = [r for r in manifest.references if r.signatures]
    assert len(refs) == 1
    assert refs[0].sop_instance_uid == str(ds.SOPInstanceUID)
    assert refs[0].signatures[0].uid == sig.uid
    assert refs[0].signatures[0].signature == bytes(sig.item[0x04000120].value)


def test_verify_complete_study_is_valid(made: Signed, core_pki: CorePki) -> None:
    code, report = mverify(made, core_pki, made.study.directory)
    assert code == 0, report
    assert report["indication"] == "VALID"
    assert report["manifest"]["indication"] == "VALID"
    assert report["manifest"]["references"] == 7
    assert report["summary"]["ok"] == 7
    assert set(statuses(report).values()) == {"ok"}
    signed = next(i for i in report["instances"] if i["path"] == str(made.signed_instance))
    assert "signature" in signed["reason"]
    serial_code, serial = mverify(made, core_pki, made.study.directory, "--jobs", "1")
    assert (serial_code, serial["instances"]) == (code, report["instances"])  # same, one process
    r = dsig("manifest", "verify", made.manifest, made.study.directory, *trust_args(core_pki))
    assert r.exit_code == 0
    assert "manifest VALID" in r.stdout and "VALID: 7 ok" in r.stdout


def test_policy_file(made: Signed, core_pki: CorePki, tmp_path: Path) -> None:
    """The site's TOML policy file works for manifests as for dsig verify."""
    store, root_crl, inter_crl = (str(a) for a in trust_args(core_pki)[1::2])
    site = tmp_path / "site.toml"
    site.write_text(f"anchors = [{store!r}]\ncrls = [{root_crl!r}, {inter_crl!r}]\n")
    code, _ = mverify(made, core_pki, made.study.directory)
    r = dsig("manifest", "verify", made.manifest, made.study.directory, "--policy-file", site)
    assert r.exit_code == code == 0, r.stdout
    strict = tmp_path / "strict.toml"  # the test PKI's leaf has no such certificate policy
    strict.write_text(f"anchors = [{store!r}]\npolicies = [\"1.2.3.4.5\"]\n"
                      "require_explicit_policy = true\n")  # fmt: skip
    r = dsig("manifest", "verify", made.manifest, made.study.directory, "--policy-file", strict)
    assert r.exit_code == 1 and "CERT_POLICY" in r.stdout, r.stdout


def test_modified_instance(made: Signed, core_pki: CorePki, tmp_path: Path) -> None:
    study = copy_study(made, tmp_path)
    victim = study / "mr" / "003.dcm"
    data = victim.read_bytes()
    assert b"Manifest^Test" in data
    victim.write_bytes(data.replace(b"Manifest^Test", b"Manifest^Tost", 1))
    code, report = mverify(made, core_pki, study)
    assert code == 1
    assert statuses(report)["003.dcm"] == "modified"
    assert sum(1 for s in statuses(report).values() if s == "ok") == 6
    bad = next(i for i in report["instances"] if i["status"] == "modified")
    assert "MAC differs" in bad["reason"] and bad["sop_instance_uid"]


def test_added_element_is_a_modification(made: Signed, core_pki: CorePki, tmp_path: Path) -> None:
    study = copy_study(made, tmp_path)
    victim = study / "jpeg" / "005.dcm"
    ds = read_dicom(victim, defer=False)
    assert 0x00330010 not in ds
    ds.add_new(0x00330010, "LO", "DSIG ADDED")  # a private creator, added after the manifest
    save(ds, victim, target_encoding(ds, "same", None))
    code, report = mverify(made, core_pki, study)
    assert code == 1
    bad = next(i for i in report["instances"] if i["status"] == "modified")
    assert "added" in bad["reason"] and "(0033,0010)" in bad["reason"]


def test_missing_instance(made: Signed, core_pki: CorePki, tmp_path: Path) -> None:
    study = copy_study(made, tmp_path)
    (study / "ecg" / "007.dcm").unlink()
    code, report = mverify(made, core_pki, study)
    assert code == 1
    missing = [i for i in report["instances"] if i["status"] == "missing"]
    assert len(missing) == 1 and missing[0]["path"] is None
    ecg = pydicom.dcmread(made.study.files[6], stop_before_pixels=True)
    assert missing[0]["sop_instance_uid"] == ecg.SOPInstanceUID


def test_extra_instance_and_allow_extra(made: Signed, core_pki: CorePki, tmp_path: Path) -> None:
    study = copy_study(made, tmp_path)
    ds = pydicom.dcmread(study / "ct" / "002.dcm")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(study / "ct" / "999.dcm")
    code, report = mverify(made, core_pki, study)
    assert code == 1 and statuses(report)["999.dcm"] == "extra"
    code, report = mverify(made, core_pki, study, "--allow-extra")
    assert code == 0 and statuses(report)["999.dcm"] == "extra"
    assert report["summary"]["extra"] == 1 and report["allow_extra"] is True


def test_other_studies_and_non_dicom_files_are_skipped(
    made: Signed, core_pki: CorePki, tmp_path: Path
) -> None:
    study = copy_study(made, tmp_path)
    other = pydicom.dcmread(study / "ct" / "002.dcm")
    other.StudyInstanceUID = generate_uid()
    other.SOPInstanceUID = other.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    other.save_as(study / "other.dcm")
    (study / "notes.txt").write_text("not DICOM")
    shutil.copy(made.manifest, study / "manifest.dcm")  # the manifest stored with its study
    r = dsig("manifest", "verify", study / "manifest.dcm", study, *trust_args(core_pki), "--json")
    assert r.exit_code == 0, r.stdout
    reasons = {Path(s["path"]).name: s["reason"] for s in json.loads(r.stdout)["skipped"]}
    assert "another study" in reasons["other.dcm"]
    assert "not a DICOM file" in reasons["notes.txt"]


def test_walk_finds_instances_written_without_preamble(
    made: Signed, core_pki: CorePki, tmp_path: Path
) -> None:
    study = copy_study(made, tmp_path)
    victim = study / "mr" / "003.dcm"
    data = victim.read_bytes()
    meta_length = int.from_bytes(data[140:144], "little")  # (0002,0000) UL after DICM
    victim.write_bytes(data[144 + meta_length :])  # the data set alone, explicit VR LE
    (study / "garbage.bin").write_bytes(bytes(range(256)) * 3)
    code, report = mverify(made, core_pki, study)
    assert code == 0, report
    assert statuses(report)["003.dcm"] == "ok" and report["summary"]["ok"] == 7
    assert [Path(s["path"]).name for s in report["skipped"]] == ["garbage.bin"]


@pytest.mark.parametrize(
    ("xfer", "lengths"),
    [(ImplicitVRLittleEndian, None), (ExplicitVRBigEndian, "undefined"), (None, "explicit")],
)
def test_legal_reencoding_stays_ok(
    made: Signed, core_pki: CorePki, tmp_path: Path, xfer: str | None, lengths: str | None
) -> None:
    study = copy_study(made, tmp_path)
    victim = study / "mr" / "003.dcm"  # MR_small: native, with sequences
    ds = read_dicom(victim, defer=False)
    before = str(ds.file_meta.TransferSyntaxUID)
    save(ds, victim, Encoding(xfer or before, lengths))
    assert str(pydicom.dcmread(victim).file_meta.TransferSyntaxUID) == (xfer or before)
    code, report = mverify(made, core_pki, study)
    assert code == 0, report["instances"]
    assert statuses(report)["003.dcm"] == "ok"


def test_removed_referenced_signature_is_a_modification(
    made: Signed, core_pki: CorePki, tmp_path: Path
) -> None:
    study = copy_study(made, tmp_path)
    victim = study / made.signed_instance.relative_to(made.study.directory)
    r = dsig("remove", victim, "--all", "--in-place")
    assert r.exit_code == 0, r.output
    code, report = mverify(made, core_pki, study)
    assert code == 1
    assert statuses(report)[victim.name] == "modified"
    bad = next(i for i in report["instances"] if i["status"] == "modified")
    assert "is gone" in bad["reason"]


def test_tampered_manifest_is_invalid(made: Signed, core_pki: CorePki, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.dcm"
    data = bytearray(made.manifest.read_bytes())
    ref = read_manifest(read_dicom(made.manifest)).references[3]
    assert ref.mac is not None
    at = data.find(ref.mac)
    assert at > 0
    data[at] ^= 0xFF  # a reference MAC changed: the manifest's signature no longer matches
    tampered.write_bytes(bytes(data))
    r = dsig("manifest", "verify", tampered, made.study.directory, *trust_args(core_pki), "--json")
    assert r.exit_code == 1
    report = json.loads(r.stdout)
    assert report["manifest"]["indication"] == "INVALID"
    codes = [f["code"] for f in report["manifest"]["verification"]["signatures"][0]["findings"]]
    assert "MAC_MISMATCH" in codes
    assert report["summary"]["modified"] == 1  # and the instance no longer matches the MAC


def test_manifest_signer_revoked(core_pki: CorePki, tmp_path: Path) -> None:
    leaf = core_pki.pki.leaf("manifest-signer-revoked")
    key, cert = leaf.write(tmp_path, "revoked")
    made = _make(tmp_path, core_pki, key=key, cert=cert)
    issued = NOW - dt.timedelta(minutes=30)
    crl = make_crl(
        core_pki.pki.intermediate,
        [(leaf.cert.serial_number, NOW - dt.timedelta(hours=1), x509.ReasonFlags.key_compromise)],
        this_update=issued,
    )
    crl_path = tmp_path / "inter.crl"
    crl_path.write_bytes(crl.public_bytes(PEM))
    root_crl = tmp_path / "root.crl"
    root_crl.write_bytes(make_crl(core_pki.pki.root, this_update=issued).public_bytes(PEM))
    trust = ["--trust-store", core_pki.trust_bundle, "--crl", crl_path, "--crl", root_crl]
    code, report = mverify(made, core_pki, made.study.directory, trust=trust)
    assert code == 1
    assert report["manifest"]["indication"] == "INVALID"
    trust = report["manifest"]["verification"]["signatures"][0]["trust"]
    assert "CERT_REVOKED" in [f["code"] for f in trust["findings"]]
    assert report["summary"]["ok"] == 7  # the instances themselves are intact


def test_untrusted_manifest_is_indeterminate_and_integrity_only_says_so(made: Signed) -> None:
    r = dsig("manifest", "verify", made.manifest, made.study.directory)
    assert r.exit_code == 3
    assert "manifest INDETERMINATE" in r.stdout and "TRUST_NOT_CHECKED" in r.stdout
    r = dsig("manifest", "verify", made.manifest, made.study.directory, "--integrity-only")
    assert r.exit_code == 0
    assert "NOT checked (--integrity-only)" in r.stdout


def test_dsig_verify_says_it_is_a_study_manifest(made: Signed, core_pki: CorePki) -> None:
    r = dsig("verify", made.manifest, *trust_args(core_pki), "--json")
    assert r.exit_code == 0
    findings = json.loads(r.stdout)["files"][0]["findings"]
    note = next(f for f in findings if f["code"] == "STUDY_MANIFEST")
    assert note["severity"] == "info"
    assert "7 instance reference(s) in 5 series" in note["message"]
    r = dsig("verify", made.manifest, *trust_args(core_pki))
    assert "STUDY_MANIFEST: a study manifest" in r.stdout


def test_several_studies_need_study(core_pki: CorePki, tmp_path: Path) -> None:
    a = build_study(tmp_path / "in" / "a", layout=(("s", "CT_small.dcm"),))
    b = build_study(tmp_path / "in" / "b", layout=(("s", "MR_small.dcm"),))
    out = tmp_path / "m.dcm"
    base = [
        "manifest",
        "create",
        tmp_path / "in",
        "-o",
        out,
        "--key",
        core_pki.rsa_key,
        "--cert",
        core_pki.rsa_cert,
        "--no-password",
    ]
    r = dsig(*base)
    assert r.exit_code == 2
    assert a.study_uid in r.stderr and b.study_uid in r.stderr and "--study" in r.stderr
    assert not out.exists()
    r = dsig(*base, "--study", b.study_uid)
    assert r.exit_code == 0, r.output
    assert read_manifest(read_dicom(out)).study_uid == b.study_uid
    r = dsig(*base, "--study", b.study_uid)
    assert r.exit_code == 2 and "--force" in r.stderr
    assert dsig(*base, "--study", b.study_uid, "--force").exit_code == 0
    r = dsig(*base, "--study", "1.2.3.4", "--force")
    assert r.exit_code == 2 and "no instance of study 1.2.3.4" in r.stderr


def test_bad_inputs_are_one_line_errors(made: Signed, core_pki: CorePki, tmp_path: Path) -> None:
    r = dsig("manifest", "verify", made.study.files[1], made.study.directory, "--integrity-only")
    assert r.exit_code == 4 and "not a study manifest" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    broken = tmp_path / "study"
    broken.mkdir()
    (broken / "x.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    r = dsig(
        "manifest",
        "create",
        broken,
        "-o",
        tmp_path / "m.dcm",
        "--key",
        core_pki.rsa_key,
        "--cert",
        core_pki.rsa_cert,
        "--no-password",
    )
    assert r.exit_code == 4 and "x.dcm" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.dcm").exists()


def test_manifest_timestamped(core_pki: CorePki, tmp_path: Path) -> None:
    tpki = TimestampPki(tmp_path / "tpki")
    study = build_study(tmp_path / "study", layout=(("s", "CT_small.dcm"), ("s", "MR_small.dcm")))
    out = tmp_path / "m.dcm"
    with tpki.server() as tsa:
        r = dsig(
            "manifest",
            "create",
            study.directory,
            "-o",
            out,
            "--key",
            tpki.rsa_key,
            "--cert",
            tpki.rsa_cert,
            "--no-password",
            "--tsa",
            tsa.url,
        )
        assert r.exit_code == 0, r.output
        assert tsa.hits == 1
    trust = tmp_path / "trust.pem"
    trust.write_bytes(tpki.root_pem.read_bytes() + tpki.inter_pem.read_bytes())
    crls: list[object] = []
    for ca in (tpki.root, tpki.intermediate):  # current CRLs: revocation checked, none revoked
        crl = tmp_path / f"{ca.cert.serial_number}.crl"
        crl.write_bytes(make_crl(ca).public_bytes(PEM))
        crls += ["--crl", crl]
    r = dsig("manifest", "verify", out, study.directory, "--trust-store", trust, *crls, "--json")
    assert r.exit_code == 0, r.stdout
    sig = json.loads(r.stdout)["manifest"]["verification"]["signatures"][0]
    assert sig["timestamp"]["indication"] == "VALID"


def test_python_api_results_are_frozen(core_pki: CorePki, tmp_path: Path) -> None:
    study = build_study(tmp_path / "study", layout=(("a", "CT_small.dcm"), ("b", "JPEG2000.dcm")))
    key = open_key_provider(str(core_pki.ec_key), cert=core_pki.ec_cert)
    try:
        created = create_manifest([study.directory], key, CreateOptions())
        with pytest.raises(StudySelectionError):
            create_manifest([study.directory], key, CreateOptions(study_uid="1.2.3"))
    finally:
        key.close()
    out = tmp_path / "m.dcm"
    save_manifest(created, out)
    result = verify_manifest(out, [study.directory], VerifyOptions(integrity_only=True))
    assert result.exit_code == 0
    assert [i.status for i in result.instances] == [Status.OK, Status.OK]
    assert created.manifest.references == read_manifest(read_dicom(out)).references
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.instances[0].status = Status.MODIFIED  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.allow_extra = True  # type: ignore[misc]
    (study.files[1]).unlink()
    result = verify_manifest(out, [study.directory], VerifyOptions(integrity_only=True))
    assert result.exit_code == 1 and result.count(Status.MISSING) == 1


def test_large_instance_in_bounded_memory(core_pki: CorePki, tmp_path: Path) -> None:
    """A 200 MiB multi-frame instance: create and verify stay under 100 MiB resident (the
    Pixel Data is hashed from the file in chunks), and a flipped pixel byte is found."""
    from tests.helpers.bigfile import write_big_file
    from tests.integration.test_bounded_memory import peak

    study = tmp_path / "study"
    study.mkdir()
    big = write_big_file(study / "big.dcm", frames=400)  # 400 x 512 x 512 x 2 = 200 MiB
    assert big.stat().st_size > 200 * 2**20
    out = tmp_path / "m.dcm"
    rc, create_mib = peak(
        "manifest",
        "create",
        study,
        "-o",
        out,
        "--key",
        core_pki.rsa_key,
        "--cert",
        core_pki.rsa_cert,
        "--no-password",
    )
    assert rc == 0
    rc, verify_mib = peak("manifest", "verify", out, study, "--integrity-only")
    assert rc == 0
    assert create_mib < 100, f"manifest create peaked at {create_mib} MiB"
    assert verify_mib < 100, f"manifest verify peaked at {verify_mib} MiB"
    with big.open("r+b") as fp:
        fp.seek(150 * 2**20)
        byte = fp.read(1)
        fp.seek(150 * 2**20)
        fp.write(bytes([byte[0] ^ 1]))
    rc, _ = peak("manifest", "verify", out, study, "--integrity-only")
    assert rc == 1


def test_create_warns_of_broken_signatures_and_other_patients(
    core_pki: CorePki, tmp_path: Path
) -> None:
    study = build_study(tmp_path / "study", layout=(("a", "CT_small.dcm"), ("a", "MR_small.dcm")))
    broken = study.files[0]
    _sign_in_place(broken, core_pki)
    data = broken.read_bytes()
    broken.write_bytes(data.replace(b"Manifest^Test", b"Manifest^Tost", 1))  # after signing
    other = pydicom.dcmread(study.files[1])
    other.PatientID = "SOMEONE-ELSE"
    other.save_as(study.files[1])
    out = tmp_path / "m.dcm"
    r = dsig("manifest", "create", study.directory, "-o", out, "--key", core_pki.rsa_key,
             "--cert", core_pki.rsa_cert, "--no-password", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["references"] == 2 and report["signature_references"] == 0
    warnings = report["warnings"]
    assert any("do not verify" in w and broken.name in w for w in warnings), warnings
    assert any("SOMEONE-ELSE" in w for w in warnings), warnings


def test_study_option_lists_the_other_studies_as_skipped(core_pki: CorePki, tmp_path: Path) -> None:
    a = build_study(tmp_path / "in" / "a", layout=(("s", "CT_small.dcm"),))
    build_study(tmp_path / "in" / "b", layout=(("s", "MR_small.dcm"),))
    r = dsig("manifest", "create", tmp_path / "in", "-o", tmp_path / "m.dcm", "--key",
             core_pki.rsa_key, "--cert", core_pki.rsa_cert, "--no-password", "--study",
             a.study_uid, "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    skipped = json.loads(r.stdout)["skipped"]
    assert len(skipped) == 1 and "another study" in skipped[0]["reason"]


def test_weak_reference_mac_is_refused_at_creation_and_under_strict(
    core_pki: CorePki, tmp_path: Path
) -> None:
    study = build_study(tmp_path / "study", layout=(("a", "CT_small.dcm"),))
    out = tmp_path / "m.dcm"
    base = ["manifest", "create", study.directory, "-o", out, "--key", core_pki.rsa_key,
            "--cert", core_pki.rsa_cert, "--no-password", "--mac", "sha1"]  # fmt: skip
    r = dsig(*base)
    assert r.exit_code == 4 and "--allow-weak sha1" in r.stderr and not out.exists()
    assert dsig(*base, "--allow-weak", "sha1").exit_code == 0
    verify = ["manifest", "verify", out, study.directory, "--integrity-only", "--json"]
    r = dsig(*verify)
    assert r.exit_code == 0
    assert "weak MAC algorithm SHA1" in json.loads(r.stdout)["manifest"]["warnings"][0]
    r = dsig(*verify, "--strict")
    assert r.exit_code == 1
    assert (
        "refused under strict checking unless sha1 is allowed as weak"
        in json.loads(r.stdout)["manifest"]["problems"][-1]
    )
    assert dsig(*verify, "--strict", "--allow-weak", "sha1").exit_code == 0


def test_signature_not_covering_the_evidence_is_invalid(core_pki: CorePki, tmp_path: Path) -> None:
    """Signature wrapping: a valid signature over other elements does not vouch for the list."""
    from dsig.operations.remove import remove_all

    study = build_study(tmp_path / "study", layout=(("a", "CT_small.dcm"),))
    key = open_key_provider(str(core_pki.rsa_key), cert=core_pki.rsa_cert)
    try:
        created = create_manifest([study.directory], key)
        remove_all(created.dataset)
        add_signature(created.dataset, key, SignOptions(tags=[0x00080016, 0x00080018]))
    finally:
        key.close()
    out = tmp_path / "m.dcm"
    save_manifest(created, out)
    result = verify_manifest(out, [study.directory], VerifyOptions(integrity_only=True))
    assert result.signature.indication.value == "VALID"  # the signature itself is fine
    assert result.exit_code == 1
    assert result.manifest_indication.value == "INVALID"
    assert "(0040,A375)" in result.problems[0]


def test_read_options_reach_the_instances(core_pki: CorePki, tmp_path: Path) -> None:
    """--read / --read-xfer (dcmsign's -f / -td) apply to the study's instances, at creation
    and at verification: a study whose meta headers lie is unreadable without -td."""
    study = tmp_path / "liars"
    study.mkdir()
    for n in (1, 2):  # the meta names explicit VR, the data sets are implicit VR
        uid = f"1.2.826.0.1.3680043.9.7433.30.{n}"
        ds = basic_dataset(uid, implicit=True)
        (study / f"{n}.dcm").write_bytes(part10(meta(EXPLICIT_LE, uid), ds))
    # one study: basic_dataset gives each instance its own study UID, so give them one
    for f in study.iterdir():
        data = f.read_bytes().replace(b"30.2.1\x00", b"30.1.1\x00")
        f.write_bytes(data)
    out = tmp_path / "m.dcm"
    key_args = ["--key", core_pki.rsa_key, "--cert", core_pki.rsa_cert, "--no-password"]
    refused = dsig("manifest", "create", study, "-o", out, *key_args)
    assert refused.exit_code == 4 and "no valid VR" in refused.output and not out.exists()
    made = dsig("manifest", "create", study, "-o", out, *key_args, "--read-xfer", "detect")
    assert made.exit_code == 0, made.output
    assert len(read_manifest(read_dicom(out)).references) == 2
    trust = trust_args(core_pki)
    r = dsig("manifest", "verify", out, study, *trust, "--json", "--read-xfer", "detect")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["summary"]["ok"] == 2
    r = dsig("manifest", "verify", out, study, *trust, "--json")
    assert r.exit_code != 0 and json.loads(r.stdout)["summary"]["ok"] == 0
    forced = dsig("manifest", "verify", out, study, *trust, "--read-xfer", "implicit")
    assert forced.exit_code == 2 and "(use --read dataset)" in forced.output


def test_read_file_refuses_a_bare_instance_as_verify_does(
    core_pki: CorePki, tmp_path: Path
) -> None:
    """--read file (dcmsign's +fo) on a study holding a bare data set (no Part 10 meta):
    manifest verify says it as dsig verify does, in one line, with verify's exit code."""
    study = tmp_path / "study"
    study.mkdir()
    uids = [f"1.2.826.0.1.3680043.9.7433.31.{n}" for n in (1, 2)]
    for n, uid in enumerate(uids, 1):
        data = part10(meta(EXPLICIT_LE, uid), basic_dataset(uid))
        (study / f"{n}.dcm").write_bytes(data.replace(b"31.2.1\x00", b"31.1.1\x00"))
    out = tmp_path / "m.dcm"
    key_args = ["--key", core_pki.rsa_key, "--cert", core_pki.rsa_cert, "--no-password"]
    assert dsig("manifest", "create", study, "-o", out, *key_args).exit_code == 0
    bare = study / "2.dcm"
    whole = bare.read_bytes()
    bare.write_bytes(whole[132 + 12 + int.from_bytes(whole[140:144], "little") :])
    trust = trust_args(core_pki)
    # dsig verify: ERROR, exit 4, named directly or found by a walk (not skipped)
    v = dsig("verify", "--read", "file", "--integrity-only", "-r", "--json", study)
    walked = {Path(f["path"]).name: f for f in json.loads(v.stdout)["files"]}
    assert v.exit_code == 4 and walked["2.dcm"]["indication"] == "ERROR", v.output
    reason = "read mode file: no file meta header (not a DICOM file)"
    assert walked["2.dcm"]["error"].endswith(reason)
    r = dsig("manifest", "verify", out, study, *trust, "--read", "file", "--json")
    report = json.loads(r.stdout)
    assert r.exit_code == 4 and report["indication"] == "ERROR", r.output
    assert report["skipped"] == []
    (unreadable,) = [i for i in report["instances"] if i["status"] == "unreadable"]
    assert unreadable["path"] == str(bare) and unreadable["reason"] == reason
    (missing,) = [i for i in report["instances"] if i["status"] == "missing"]
    assert missing["sop_instance_uid"] == uids[1] and "unreadable" in missing["reason"]
    human = dsig("manifest", "verify", out, study, *trust, "--read", "file")
    assert human.exit_code == 4, human.output
    lines = [line for line in human.output.splitlines() if str(bare) in line]
    assert lines == [f"unreadable    ? {bare}: {reason}"], human.output  # the path once
    assert human.output.splitlines()[-1] == "ERROR: 1 ok, 1 missing, 1 unreadable"
    # read the default way, the bare data set is the instance: complete again
    assert dsig("manifest", "verify", out, study, *trust).exit_code == 0
    # a changed instance besides still fails: INVALID (exit 1) outranks the error
    first = study / "1.dcm"
    first.write_bytes(first.read_bytes().replace(b"Doe^Jane", b"Doe^John"))
    assert dsig("manifest", "verify", out, study, *trust, "--read", "file").exit_code == 1
