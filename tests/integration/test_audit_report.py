"""``dsig verify --report``/``--csv``: the audit a compliance officer signs, rendered in headless
Chromium (printed to PDF and read back with pdftotext; a screenshot is kept in
``tests/artifacts/``), and the CSV rows."""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from typer.testing import CliRunner

import dsig
from dsig.cli import app
from dsig.encoding.reader import read_dicom
from dsig.reports.csv_report import COLUMNS, SIGNATURE_COLUMNS
from dsig.reports.html_report import REDACTED, redact_argv, render
from pki.certs import fingerprint, load_certificates
from tests.conftest import CorePki
from tests.helpers.bigfile import write_small_image

runner = CliRunner()
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
HOSTILE_ID = "<script>alert(1)</script>\x1b[2J"
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or shutil.which("pdftotext") is None,
    reason="chromium and pdftotext are installed by scripts/setup.sh",
)


@pytest.fixture(scope="module")
def archive(core_pki: CorePki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 signed files (one tampered, one over the deferral size), 1 unsigned with markup in its
    Patient ID, 1 not DICOM, 1 unreadable, 1 with markup and a newline in its name."""
    src = tmp_path_factory.mktemp("src")
    for i in range(2):
        write_small_image(src / f"img{i}.dcm", seed=i)
    write_small_image(src / "big.dcm", seed=7, rows=400, cols=400)  # 320 KB of pixels: deferred
    out = tmp_path_factory.mktemp("archive")
    r = runner.invoke(app, ["sign", str(src), "--out-dir", str(out), "--recursive",
                            "--key", str(core_pki.rsa_key), "--cert", str(core_pki.rsa_cert),
                            "--no-password"])  # fmt: skip
    assert r.exit_code == 0, r.output
    tampered = out / "img1.dcm"
    data = bytearray(tampered.read_bytes())
    data[-10] ^= 0xFF  # inside Pixel Data
    tampered.write_bytes(bytes(data))
    unsigned = write_small_image(out / "unsigned.dcm", seed=99)
    ds = dcmread(unsigned)
    ds.PatientID = HOSTILE_ID
    ds.save_as(unsigned)
    (out / "notes.txt").write_text("not DICOM")
    (out / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage")  # an ERROR
    (out / "<b>bold<b>\nVALID.dcm").write_bytes((out / "img0.dcm").read_bytes())
    return out


def verify(archive: Path, core_pki: CorePki, *extra: object) -> Any:
    args = ["verify", str(archive), "-r", "-j", "2", "--trust-store", str(core_pki.root),
            "--untrusted", str(core_pki.intermediate), *map(str, extra)]  # fmt: skip
    return runner.invoke(app, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def audit(archive: Path, core_pki: CorePki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run writing --report, --csv and --json."""
    out = tmp_path_factory.mktemp("audit")
    with pytest.MonkeyPatch.context() as mp:  # the command line the report states
        mp.setattr(sys, "argv", ["dsig", "verify", str(archive), "-r", "--report", "audit.html"])
        r = verify(archive, core_pki, "--report", out / "audit.html", "--csv", out / "audit.csv",
                   "--json")  # fmt: skip
    assert r.exit_code == 1, r.output  # the tampered file
    (out / "audit.json").write_text(r.stdout)
    return out


def dicom_files(archive: Path) -> list[Path]:
    return sorted(p for p in archive.iterdir() if p.suffix == ".dcm" and p.name != "broken.dcm")


def test_json_states_identifiers_and_file_hash_from_the_verification_pass(
    archive: Path, audit: Path
) -> None:
    files = {f["path"]: f for f in json.loads((audit / "audit.json").read_text())["files"]}
    for path in dicom_files(archive):
        entry = files[str(path)]
        ds = dcmread(path)
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["sop_instance_uid"] == ds.SOPInstanceUID
        assert entry["study_instance_uid"] == ds.StudyInstanceUID
        assert entry["patient_id"] == ds.PatientID
        assert "uncovered" in entry and "signatures" in entry  # existing fields kept


def test_file_hash_covers_deferred_values(archive: Path) -> None:
    big = archive / "big.dcm"
    ds = read_dicom(big, file_sha256=True)
    assert ds.dsig_file_sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
    assert not hasattr(read_dicom(big), "dsig_file_sha256")  # off unless asked


def test_csv_one_row_per_signature_and_per_unsigned_or_skipped_file(
    archive: Path, audit: Path
) -> None:
    text = (audit / "audit.csv").read_text(encoding="utf-8")
    table = list(csv.reader(io.StringIO(text, newline="")))
    assert tuple(table[0]) == COLUMNS
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in table[1:]]
    by_name = {Path(r["path"]).name: r for r in rows}
    assert len(rows) == 7  # 4 signed files x 1 signature, 1 unsigned, 1 unreadable, 1 skipped
    bad = by_name["img1.dcm"]
    assert bad["file_indication"] == "INVALID" and "MAC_MISMATCH" in bad["signature_findings"]
    good = by_name["img0.dcm"]
    assert good["signature_indication"] == "VALID" and good["signer"] == "CN=dsig rsa,O=dsig test"
    assert good["signature_index"] == "1" and good["signature_uid"].startswith("1.")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d",
                        good["signature_datetime"])  # fmt: skip
    assert good["chain"].count(" | ") == 2  # leaf | intermediate | root
    assert good["sha256"] == hashlib.sha256((archive / "img0.dcm").read_bytes()).hexdigest()
    for name, indication in (("unsigned.dcm", "UNSIGNED"), ("notes.txt", "SKIPPED"),
                             ("broken.dcm", "ERROR")):  # fmt: skip
        row = by_name[name]
        assert row["file_indication"] == indication
        assert all(row[c] == "" for c in SIGNATURE_COLUMNS), row
    assert by_name["broken.dcm"]["file_error"] and not by_name["broken.dcm"]["sha256"]
    assert by_name["unsigned.dcm"]["patient_id"] == "<script>alert(1)</script>\\x1b[2J"
    hostile = next(r for r in rows if r["path"].endswith("VALID.dcm"))
    assert "\\nVALID.dcm" in hostile["path"]  # one value, one line


def test_csv_refuses_an_existing_file_without_force(
    archive: Path, core_pki: CorePki, tmp_path: Path
) -> None:
    existing = tmp_path / "audit.csv"
    existing.write_text("keep me")
    r = verify(archive, core_pki, "--csv", existing)
    assert r.exit_code == 2 and "--csv" in r.output and "--force" in r.output
    assert existing.read_text() == "keep me"
    r = verify(archive, core_pki, "--csv", existing, "--force")
    assert r.exit_code == 1 and existing.read_text().startswith("path,file_indication,")
    assert not list(tmp_path.glob(".*dsig-tmp"))  # written atomically, no temp file left
    r = verify(archive, core_pki, "--csv", tmp_path / "same", "--report", tmp_path / "same")
    assert r.exit_code == 2


def test_html_escapes_file_values(audit: Path) -> None:
    doc = (audit / "audit.html").read_text()
    assert "<script>alert" not in doc and "&lt;script&gt;alert(1)&lt;/script&gt;" in doc
    assert "<b>bold" not in doc and "\x1b" not in doc and "\u202e" not in doc
    assert "\nVALID" not in doc
    assert "http" not in doc.replace("http-equiv", "")  # self-contained
    assert doc.count("<script>") == 1  # only the report's own


def test_command_line_secrets_are_redacted() -> None:
    argv = ["verify", "x.dcm", "--pin", "1234", "--tsa-password=hunter2",
            "s3://key:secret@bucket/p", "--pinned-value", "7"]  # fmt: skip
    assert redact_argv(argv) == ["verify", "x.dcm", "--pin", REDACTED, f"--tsa-password={REDACTED}",
                                 f"s3://{REDACTED}@bucket/p", "--pinned-value", REDACTED]  # fmt: skip
    doc = render({}, [], [], command=" ".join(redact_argv(argv)))
    assert "1234" not in doc and "hunter2" not in doc and "secret" not in doc


def chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           f"--user-data-dir={cwd / 'profile'}", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=True)


@needs_chromium
def test_report_prints_everything_in_chromium(
    archive: Path, audit: Path, core_pki: CorePki
) -> None:
    html_path = audit / "audit.html"
    pdf = audit / "audit.pdf"
    chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf}", html_path.as_uri(), cwd=audit)
    text, layout = (
        subprocess.run(["pdftotext", "-enc", "UTF-8", *mode, str(pdf), "-"], capture_output=True,
                       text=True, check=True).stdout
        for mode in (["-raw"], ["-layout"])
    )  # fmt: skip
    flat = re.sub(r"\s+", "", text)  # narrow columns wrap long values
    root = load_certificates(core_pki.root)[0]
    assert f"dsig {dsig.__version__}" in text
    assert "Policy in effect" in text and "Revocation mode" in text
    assert root.subject.rfc4514_string().replace(" ", "") in flat
    assert fingerprint(root) in flat
    assert "dsigverify" in flat and "--reportaudit.html" in flat  # the command line
    assert re.search(r"started \d{4}-\d\d-\d\dT", text) and "ended" in text
    assert re.search(r"MAC_MISMATCH +1 +1 +the recomputed MAC", layout)  # occurrences, files
    assert re.search(r"ERROR +1 +1 +the file could not be read", layout)
    for path in dicom_files(archive):  # every file, valid ones too, is on paper
        ds = dcmread(path)
        assert ds.SOPInstanceUID in flat and ds.StudyInstanceUID in flat, path
        assert hashlib.sha256(path.read_bytes()).hexdigest() in flat, path
    for name in ("img0.dcm", "big.dcm", "unsigned.dcm", "notes.txt", "broken.dcm"):
        assert name in flat, name
    assert "CN=dsigrsa,O=dsigtest" in flat
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(pdf, ARTIFACTS / "audit-report.pdf")
    png = ARTIFACTS / "audit-report.png"
    chromium("--window-size=1400,1800", "--hide-scrollbars", f"--screenshot={png}",
             html_path.as_uri(), cwd=audit)  # fmt: skip
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_chromium
def test_report_script_filters_in_chromium(audit: Path) -> None:
    """The inline script runs under the report's Content-Security-Policy and filters rows."""
    url = (audit / "audit.html").as_uri() + "#filter=MAC_MISMATCH"
    dom = chromium("--dump-dom", url, cwd=audit).stdout
    assert "1 of 6 file(s) shown" in dom  # the script ran: 6 DICOM files, 1 matches
    assert dom.count('class="hidden"') == 5


@needs_chromium
def test_report_script_sorts_in_chromium(audit: Path) -> None:
    """A click on the File head sorts the rows by path (a test copy adds the click, so it
    drops the policy that would refuse the extra script)."""
    doc = (audit / "audit.html").read_text()
    doc = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", doc)
    probe = ("<script>var th=document.querySelectorAll('#files th')[1];th.click();th.click();"
             "th.click();document.body.setAttribute('data-order',Array.prototype.map.call("
             "document.getElementById('files').tBodies[0].rows,function(r){"
             "return r.cells[1].textContent;}).join('|'));</script>")  # fmt: skip
    page = audit / "sort-probe.html"
    page.write_text(doc.replace("</body>", probe + "</body>"))
    dom = chromium("--dump-dom", page.as_uri(), cwd=audit).stdout
    order = html.unescape(re.search(r'data-order="([^"]*)"', dom).group(1)).split("|")  # type: ignore[union-attr]
    assert len(order) == 6 and order == sorted(order)  # three clicks: ascending


def test_report_and_csv_state_a_signature_purpose_and_its_timestamp(tmp_path: Path) -> None:
    """A signature with a purpose (CID 7007) and a certified timestamp from a TSA: both are in
    the report and the CSV as code and meaning, indication, time and TSA (not "(none)")."""
    from tests.helpers.tsa import TimestampPki

    tpki = TimestampPki(tmp_path / "pki")
    src = write_small_image(tmp_path / "img.dcm", seed=3)
    signed = tmp_path / "signed.dcm"
    with tpki.server() as tsa:
        r = runner.invoke(app, ["sign", str(src), str(signed), "--key", str(tpki.rsa_key),
                                "--cert", str(tpki.rsa_cert), "--no-password", "--purpose", "1",
                                "--tsa", tsa.url])  # fmt: skip
    assert r.exit_code == 0, r.output
    report, table = tmp_path / "audit.html", tmp_path / "audit.csv"
    r = runner.invoke(app, ["verify", str(signed), "--trust-store", str(tpki.root_pem),
                            "--untrusted", str(tpki.inter_pem), "--report", str(report),
                            "--csv", str(table)])  # fmt: skip
    assert r.exit_code == 0, r.output
    row = next(csv.DictReader(io.StringIO(table.read_text(encoding="utf-8"), newline="")))
    assert row["purpose"].startswith("1 ") and "Author" in row["purpose"], row["purpose"]
    assert row["timestamp"].startswith("VALID") and "dsig TSA" in row["timestamp"], row
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", row["timestamp"])
    doc = html.unescape((report).read_text())
    assert f"purpose {row['purpose']};" in doc and f"timestamp {row['timestamp']}" in doc
