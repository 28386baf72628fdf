"""dsig's Orthanc plugin in a real Orthanc on 127.0.0.1 (issue 19).

One Orthanc (Debian's, with its Python and DICOMweb plugins) runs the plugin from
``dsig orthanc plugin-path`` for the module; storescu and ``dsig send`` send over C-STORE, the
REST API and DICOMweb STOW-RS upload over HTTP, and the REST API tells what was stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from dsig.cli.verify import verify_options_from_args
from dsig.orthanc.service import ServiceConfig, VerifierService
from tests.helpers import net
from tests.helpers.orthanc import (
    Objects,
    Orthanc,
    ask_verifier,
    dsig_command,
    make_objects,
    multipart_related,
    orthanc_available,
    running_orthanc,
)

pytestmark = pytest.mark.skipif(not orthanc_available(), reason="Orthanc is not installed")


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> Objects:
    return make_objects(tmp_path_factory.mktemp("orthanc-objects"))


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory, objects: Objects) -> Iterator[Orthanc]:
    directory = tmp_path_factory.mktemp("orthanc")
    trust = objects.trust
    proc = net.run_dsig("orthanc", "plugin-path")
    assert proc.returncode == 0, proc.stderr
    settings = {
        "Plugins": [
            "/usr/share/orthanc/plugins/libOrthancPython.so",
            "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
        ],
        "PythonScript": proc.stdout.strip(),
        "UserMetadata": {"DsigVerdict": 4242},
        "Dsig": {
            "Command": dsig_command(directory),
            "Arguments": ["--trust-store", str(trust), "--require", "signature"],
            "Quarantine": str(directory / "quarantine"),
            "AuditLog": str(directory / "dsig-audit.jsonl"),
        },
    }
    with running_orthanc(directory, settings) as server:
        yield server


def _uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def _stored_uids(orthanc: Orthanc) -> set[str]:
    uids = set()
    for instance in orthanc.get("/instances"):
        uids.add(orthanc.get(f"/instances/{instance}/tags?simplify")["SOPInstanceUID"])
    return uids


def test_storescu_valid_stored_bad_refused_at_cstore(orthanc: Orthanc, objects: Objects) -> None:
    exe = net.dcmtk_storescu()
    if exe is None:
        pytest.skip("DCMTK storescu is not installed")
    ok = net.storescu(exe, orthanc.dicom_port, [objects.signed[0]], called_ae="ORTHANC")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = net.storescu(exe, orthanc.dicom_port, [objects.tampered], "-d", called_ae="ORTHANC")
    # 0xC2xx is "Error: Cannot understand" for storescu; its debug log shows the code itself
    # integrity invalid
    assert "0xc210: error: cannot understand" in (bad.stdout + bad.stderr).lower(), bad.stdout
    untrusted = net.storescu(exe, orthanc.dicom_port, [objects.stranger], "-d",
                             called_ae="ORTHANC")  # fmt: skip
    # untrusted signer
    assert "0xc211: error: cannot understand" in (untrusted.stdout + untrusted.stderr).lower()
    stored = _stored_uids(orthanc)
    assert _uid(objects.signed[0]) in stored
    assert _uid(objects.tampered) not in stored
    assert _uid(objects.stranger) not in stored
    quarantine = Path(orthanc.directory / "quarantine")
    assert len(list(quarantine.glob("*.dcm"))) >= 2


def test_dsig_send_and_rest_upload(orthanc: Orthanc, objects: Objects) -> None:
    sent = net.run_dsig("send", "127.0.0.1", str(orthanc.dicom_port), objects.signed[1],
                        objects.unsigned, objects.tampered, "--called-ae", "ORTHANC")  # fmt: skip
    assert sent.returncode == 1, sent.stdout + sent.stderr  # unsigned and tampered refused
    assert "(0xC212)" in sent.stdout, sent.stdout  # --require signature not met
    assert "(0xC210)" in sent.stdout, sent.stdout  # integrity invalid
    status, _ = orthanc.post("/instances", objects.signed[2].read_bytes(), "application/dicom")
    assert status == 200
    status, _ = orthanc.post("/instances", objects.tampered.read_bytes(), "application/dicom")
    stored = _stored_uids(orthanc)
    assert {_uid(objects.signed[1]), _uid(objects.signed[2])} <= stored
    assert _uid(objects.unsigned) not in stored
    assert _uid(objects.tampered) not in stored


def test_stow_rs_into_orthanc_is_filtered(orthanc: Orthanc, objects: Objects) -> None:
    body, content_type = multipart_related(
        [objects.signed[3].read_bytes(), objects.stranger.read_bytes()]
    )
    status, _ = orthanc.post("/dicom-web/studies", body, content_type)
    assert status in (200, 202, 409)
    stored = _stored_uids(orthanc)
    assert _uid(objects.signed[3]) in stored
    assert _uid(objects.stranger) not in stored


def test_status_report_metadata_and_audit(orthanc: Orthanc, objects: Objects) -> None:
    uid = _uid(objects.signed[0])
    if uid not in _stored_uids(orthanc):
        orthanc.post("/instances", objects.signed[0].read_bytes(), "application/dicom")
    status = orthanc.get("/dsig/status")
    assert status["verifier"] == "running"
    assert status["counts"]["accepted"] >= 1
    found = orthanc.post("/tools/lookup", uid.encode(), "text/plain")[1]
    instance_id = next(r["ID"] for r in json.loads(found) if r["Type"] == "Instance")
    report = orthanc.get(f"/dsig/instances/{instance_id}")
    assert report["passed"] is True and report["indication"] == "VALID"
    assert report["orthanc_id"] == instance_id
    assert report["report"]["signatures"][0]["indication"] == "VALID"
    refused = orthanc.get(f"/dsig/instances/{_uid(objects.tampered)}")
    assert refused["passed"] is False and refused["status"] == 0xC210
    assert orthanc.status_of("/dsig/instances/1.2.3.4.5") == 404
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if orthanc.status_of(f"/instances/{instance_id}/metadata/DsigVerdict") == 200:
            break
        time.sleep(0.2)
    with_metadata = orthanc.get(f"/instances/{instance_id}/metadata?expand")
    assert with_metadata.get("DsigVerdict") == "VALID"
    lines = (orthanc.directory / "dsig-audit.jsonl").read_text().splitlines()
    actions = {json.loads(line)["action"] for line in lines}
    assert actions == {"accepted", "refused"}
    check = net.run_dsig("serve", "audit-check", orthanc.directory / "dsig-audit.jsonl")
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_polyglot_is_named_as_orthanc_reads_it(
    orthanc: Orthanc, objects: Objects, tmp_path: Path
) -> None:
    """Issue 13: a data set that reads as signed object A in the implicit VR its meta names
    (as Orthanc reads it) and as B in explicit VR (as pydicom would re-read it). The verdict
    names A with Orthanc's own ID; the same bytes under a meta naming B are refused."""
    from tests.helpers.rawdicom import IMPLICIT_LE, basic_dataset, meta, part10, vr_switch_polyglot

    a, b = str(generate_uid()), str(generate_uid())
    plain = tmp_path / "plain.dcm"
    plain.write_bytes(part10(meta(IMPLICIT_LE, a), basic_dataset(a, implicit=True)))
    signed = net.sign(plain, tmp_path / "signed.dcm", objects.key, objects.cert)
    hidden = basic_dataset(b, patient="Hidden^Patient")
    body = vr_switch_polyglot(net.dataset_bytes(signed), hidden)
    audit = orthanc.directory / "dsig-audit.jsonl"
    before = len(audit.read_text().splitlines()) if audit.exists() else 0
    orthanc.post("/instances", part10(meta(IMPLICIT_LE, b), body), "application/dicom")
    assert not {a, b} & _stored_uids(orthanc)
    status, _ = orthanc.post("/instances", part10(meta(IMPLICIT_LE, a), body), "application/dicom")
    assert status == 200
    found = orthanc.post("/tools/lookup", a.encode(), "text/plain")[1]
    instance_id = next(r["ID"] for r in json.loads(found) if r["Type"] == "Instance")
    tags = orthanc.get(f"/instances/{instance_id}/tags?simplify")
    assert (tags["SOPInstanceUID"], tags["PatientName"]) == (a, "Doe^Jane")
    report = orthanc.get(f"/dsig/instances/{instance_id}")
    assert report["passed"] and report["indication"] == "VALID", report
    assert (report["orthanc_id"], report["sop_instance_uid"]) == (instance_id, a), report
    lines = [json.loads(x) for x in audit.read_text().splitlines()[before:]]
    assert [(x["action"], x["sop_instance_uid"], x["orthanc_id"]) for x in lines] == [
        ("refused", a, instance_id), ("accepted", a, instance_id),
    ], lines  # fmt: skip
    assert "REQUEST_UID_MISMATCH" in lines[0]["findings"]
    assert "Expected implicit VR" not in orthanc.log()  # no second parse, no pydicom warning


def test_plugin_fails_closed_when_the_verifier_cannot_start(
    tmp_path: Path, objects: Objects
) -> None:
    settings = {
        "Plugins": ["/usr/share/orthanc/plugins/libOrthancPython.so"],
        "PythonScript": net.run_dsig("orthanc", "plugin-path").stdout.strip(),
        "Dsig": {
            "Command": dsig_command(tmp_path),
            "Arguments": ["--no-such-option"],
        },
    }
    with running_orthanc(tmp_path / "orthanc", settings) as server:
        server.post("/instances", objects.signed[0].read_bytes(), "application/dicom")
        assert server.get("/instances") == []
        state = server.get("/dsig/status")
        assert state["verifier"] == "stopped"
        assert "did not start (exit 2)" in state["error"]


def test_verifier_service_from_python(tmp_path: Path, objects: Objects) -> None:
    trust = objects.trust
    config = ServiceConfig(
        socket=tmp_path / "verifier.sock",
        verify=verify_options_from_args(["--trust-store", str(trust)]),
        accept=("VALID",),  # stricter than dsig verify, which passes UNSIGNED without --require
        quarantine=tmp_path / "quarantine",
        audit_log=tmp_path / "audit.jsonl",
        workers=1,
    )
    service = VerifierService(config)
    service.start()
    try:
        valid = ask_verifier(config.socket, objects.signed[0].read_bytes())
        tampered = ask_verifier(config.socket, objects.tampered.read_bytes())
        stranger = ask_verifier(config.socket, objects.stranger.read_bytes())
        unsigned = ask_verifier(config.socket, objects.unsigned.read_bytes())
    finally:
        service.stop()
    assert valid["passed"] and valid["indication"] == "VALID" and valid["status"] == 0
    assert not tampered["passed"] and tampered["status"] == 0xC210
    assert not stranger["passed"] and stranger["status"] == 0xC211
    assert not unsigned["passed"] and unsigned["status"] == 0xC212
    assert unsigned["indication"] == "UNSIGNED"
    assert len(list((tmp_path / "quarantine").glob("*.dcm"))) == 3
    assert len((tmp_path / "audit.jsonl").read_text().splitlines()) == 4
    assert not config.socket.exists()


def test_a_resent_instance_is_verified_and_audited_again(
    orthanc: Orthanc, objects: Objects
) -> None:
    """Verdicts are not reused across sends (trust may have changed), only from Orthanc's
    received-instance callback to the C-STORE filter of the same send: one verdict each."""
    exe = net.dcmtk_storescu()
    if exe is None:
        pytest.skip("DCMTK storescu is not installed")
    audit = orthanc.directory / "dsig-audit.jsonl"

    def refused_count() -> int:
        return int(orthanc.get("/dsig/status")["counts"].get("refused", 0))

    before_lines = len(audit.read_text().splitlines()) if audit.exists() else 0
    before = refused_count()
    for _ in range(2):
        bad = net.storescu(exe, orthanc.dicom_port, [objects.tampered], "-v", called_ae="ORTHANC")
        assert "CannotUnderstand" in bad.stdout + bad.stderr, bad.stdout + bad.stderr
    for _ in range(2):  # REST: discarded, not stored
        orthanc.post("/instances", objects.tampered.read_bytes(), "application/dicom")
    assert refused_count() == before + 4
    assert len(audit.read_text().splitlines()) == before_lines + 4
    assert _uid(objects.tampered) not in _stored_uids(orthanc)
