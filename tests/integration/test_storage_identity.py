"""Issue 13: a storage node names, files and identifies an object by the data set it verified.

The polyglot here is the review's turned around: read as its meta header says (implicit VR),
the data set is a validly signed object A; read as explicit VR (what pydicom switches to, with
a warning, when the first element looks explicit) it is another object B. ``dsig serve`` and
the Orthanc verifier service must judge, name and file it as A, and print no pydicom warning.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest

from dsig.net.layout import safe_component
from dsig.orthanc.service import ServiceConfig, VerifierService, orthanc_instance_id
from tests.helpers import net
from tests.helpers.orthanc import ask_verifier
from tests.helpers.rawdicom import IMPLICIT_LE, basic_dataset, meta, part10, vr_switch_polyglot

SIGNED_UID, HIDDEN_UID = "1.2.826.0.1.3680043.9.7433.13.1", "1.2.826.0.1.3680043.9.7433.13.2"
#: What a second parser that honoured a VR switch would say (pydicom's warning, logged too).
PYDICOM_NOISE = ("Expected implicit VR", "UserWarning", "pydicom")


@dataclass
class Poly:
    pki: net.NetPki
    signed: Path  # the implicit VR object A, signed
    body: bytes  # the polyglot's data set bytes

    def file(self, directory: Path, request_uid: str) -> Path:
        """The polyglot as a Part-10 file whose meta names ``request_uid``."""
        path = directory / f"poly-{request_uid}.dcm"
        path.write_bytes(part10(meta(IMPLICIT_LE, request_uid), self.body))
        return path


@pytest.fixture(scope="module")
def poly(tmp_path_factory: pytest.TempPathFactory) -> Poly:
    d = tmp_path_factory.mktemp("identity")
    pki = net.make_pki(d / "pki")
    plain = d / "plain.dcm"
    plain.write_bytes(
        part10(meta(IMPLICIT_LE, SIGNED_UID), basic_dataset(SIGNED_UID, implicit=True))
    )
    signed = net.sign(plain, d / "signed.dcm", pki.key, pki.cert)
    signed_body = net.dataset_bytes(signed)
    assert signed_body[4:6] != b"SH"  # still implicit VR: the polyglot relies on it
    hidden = basic_dataset(HIDDEN_UID, patient="Hidden^Patient")
    body = vr_switch_polyglot(signed_body, hidden)
    result = Poly(pki, signed, body)
    # the premise: pydicom reads B from these bytes, DCMTK-like readers (and dsig) read A
    check = result.file(d, SIGNED_UID)
    with pytest.warns(UserWarning, match="Expected implicit VR"):
        other = pydicom.dcmread(check, stop_before_pixels=True)
    assert other.SOPInstanceUID == HIDDEN_UID
    from dsig.encoding.reader import read_dicom

    assert read_dicom(check).SOPInstanceUID == SIGNED_UID
    dcmdump = shutil.which("dcmdump")
    if dcmdump is not None:  # DCMTK reads as the meta says: A
        shown = subprocess.run([dcmdump, "+P", "SOPInstanceUID", str(check)], capture_output=True,
                               text=True, timeout=60, check=False)  # fmt: skip
        assert SIGNED_UID in shown.stdout and HIDDEN_UID not in shown.stdout, shown
    return result


def _quiet(log: str) -> None:
    for noise in (*PYDICOM_NOISE, "Traceback"):
        assert noise not in log, log


def test_serve_files_the_polyglot_under_the_verified_uid(poly: Poly, tmp_path: Path) -> None:
    server = net.start_server(tmp_path / "srv", "--trust-store", poly.pki.trust, "--require",
                              "signature", "--layout", "patient-study-series")  # fmt: skip
    try:
        # the request names A: stored as A, in A's folders (a second parse read B: refused)
        assert net.store_raw(server.port, poly.file(tmp_path, SIGNED_UID)) == 0x0000
        # the request names B: A's bytes must not be filed as B (a second parse agreed: B)
        assert net.store_raw(server.port, poly.file(tmp_path, HIDDEN_UID)) == 0x0000
        lines = server.wait_audit(2)
    finally:
        assert server.stop() == 0, server.log()
    assert [(x["action"], x["sop_instance_uid"]) for x in lines] == [
        ("stored", SIGNED_UID), ("quarantined", HIDDEN_UID),
    ], lines  # fmt: skip
    assert lines[0]["indication"] == "VALID", lines[0]
    assert "REQUEST_UID_MISMATCH" in lines[1]["findings"], lines[1]
    folder = server.store.joinpath(
        safe_component("ID42"), SIGNED_UID + ".1", SIGNED_UID + ".2"
    )  # basic_dataset's Patient ID, Study and Series of A, not of B
    assert Path(lines[0]["path"]) == folder / f"{SIGNED_UID}.dcm", lines[0]
    assert net.dataset_bytes(folder / f"{SIGNED_UID}.dcm") == poly.body
    everything = sorted(p.name for p in server.store.rglob("*.dcm") if ".dsig" not in str(p))
    assert HIDDEN_UID + ".dcm" not in everything, everything
    assert Path(lines[1]["path"]).parent == server.quarantine
    report = json.loads(Path(lines[1]["path"]).with_suffix(".json").read_text())
    mismatch = [f for f in report["findings"] if f["code"] == "REQUEST_UID_MISMATCH"]
    assert mismatch and SIGNED_UID in mismatch[0]["message"], report
    _quiet(server.log())


def _served(config: ServiceConfig, *requests: bytes) -> list[dict[str, Any]]:
    """The answers of an in-process verifier service started for these requests."""
    service = VerifierService(config)
    service.start()
    try:
        return [ask_verifier(config.socket, data) for data in requests]
    finally:
        service.stop()


def test_orthanc_verifier_identifies_the_verified_data_set(poly: Poly, tmp_path: Path) -> None:
    """``dsig orthanc verifier`` as the plugin runs it (its own process, stderr kept)."""
    sock, log_path = tmp_path / "verifier.sock", tmp_path / "verifier.log"
    cmd = net.dsig_cmd("orthanc", "verifier", "--socket", sock, "--workers", "1",
                       "--audit-log", tmp_path / "audit.jsonl", "--quarantine",
                       tmp_path / "quarantine", "--", "--trust-store", poly.pki.trust,
                       "--require", "signature")  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=log, cwd=net.REPO)
    try:
        deadline = time.monotonic() + 60
        while "ready" not in log_path.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.05)
        assert "ready" in log_path.read_text(), log_path.read_text()
        same = ask_verifier(sock, poly.file(tmp_path, SIGNED_UID).read_bytes())
        other = ask_verifier(sock, poly.file(tmp_path, HIDDEN_UID).read_bytes())
        plain = ask_verifier(sock, poly.signed.read_bytes())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
    a_id = orthanc_instance_id("ID42", SIGNED_UID + ".1", SIGNED_UID + ".2", SIGNED_UID)
    # what Orthanc itself (DCMTK, reading as the meta says) names the object A
    assert (same["passed"], same["indication"], same["sop_instance_uid"]) == (
        True, "VALID", SIGNED_UID,
    ), same  # fmt: skip
    assert same["orthanc_id"] == a_id == plain["orthanc_id"], (same, plain)
    assert not other["passed"] and other["status"] == 0xA900, other
    assert "REQUEST_UID_MISMATCH" in other["findings"]
    assert (other["sop_instance_uid"], other["orthanc_id"]) == (SIGNED_UID, a_id), other
    assert proc.returncode == 0, log_path.read_text()
    _quiet(log_path.read_text())


def test_orthanc_verifier_gives_no_identity_to_an_unreadable_object(tmp_path: Path) -> None:
    """Not read: refused, with no UID or Orthanc ID taken from another parse."""
    from dsig.cli.verify import verify_options_from_args

    config = ServiceConfig(socket=tmp_path / "v.sock", verify=verify_options_from_args([]),
                           workers=1, quarantine=tmp_path / "q")  # fmt: skip
    # explicit VR meta over an implicit VR data set: MALFORMED for dsig, read by pydicom
    liar = part10(meta("1.2.840.10008.1.2.1", SIGNED_UID), basic_dataset(SIGNED_UID, implicit=True))
    (answer,) = _served(config, liar)
    assert not answer["passed"] and answer["indication"] == "ERROR", answer
    assert answer["status"] == 0xC213, answer
    assert (answer["sop_instance_uid"], answer["orthanc_id"]) == ("", None), answer
    assert [p.name.split(".")[0] for p in (tmp_path / "q").glob("*.dcm")] == ["unnamed"]


def test_orthanc_verifier_quarantines_a_path_like_uid_inside_its_folder(tmp_path: Path) -> None:
    """The data set's SOP Instance UID names the quarantined file only when it is a UID."""
    from dsig.cli.verify import verify_options_from_args

    quarantine = tmp_path / "deep" / "q"
    config = ServiceConfig(socket=tmp_path / "v.sock", workers=1, quarantine=quarantine,
                           verify=verify_options_from_args(["--require", "signature"]))  # fmt: skip
    evil = "../../escaped"
    data = part10(meta("1.2.840.10008.1.2.1", evil), basic_dataset(evil))
    (answer,) = _served(config, data)
    assert not answer["passed"] and answer["sop_instance_uid"] == evil, answer
    assert [p for p in tmp_path.rglob("*escaped*")] == []
    assert [p.name.split(".")[0] for p in quarantine.glob("*.dcm")] == ["unnamed"]


def test_orthanc_verifier_refuses_an_object_without_sop_instance_uid(tmp_path: Path) -> None:
    """An empty SOP Instance UID in both the data set and the File Meta "agree", but such an
    object cannot be identified: REQUEST_UID_MISMATCH, even where an unsigned one passes."""
    from dsig.cli.verify import verify_options_from_args

    config = ServiceConfig(socket=tmp_path / "v.sock", workers=1,
                           verify=verify_options_from_args([]))  # fmt: skip
    nameless = part10(meta("1.2.840.10008.1.2.1", ""), basic_dataset(""))
    named = part10(meta("1.2.840.10008.1.2.1", SIGNED_UID), basic_dataset(SIGNED_UID))
    refused, passed = _served(config, nameless, named)
    assert not refused["passed"] and refused["status"] == 0xA900, refused
    assert "REQUEST_UID_MISMATCH" in refused["findings"] and refused["orthanc_id"] is None
    assert passed["passed"] and passed["indication"] == "UNSIGNED", passed
