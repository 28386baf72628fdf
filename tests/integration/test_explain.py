"""``dsig explain`` and :mod:`dsig.explain` (issue 20): the explanation agrees with
``dsig verify`` and says which step decided, on real signed files (pydicom's JPEG, JPEG 2000,
RLE and ECG samples), real PKIs, a CRL/OCSP server and a TSA token; the HTML page is printed
by headless Chromium and read back with pdftotext."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner

import dsig
from dsig.cli import app
from dsig.explain import ExplainOptions, StepStatus, explain_file
from dsig.signature.model import find_signature, find_signatures
from dsig.timestamp import insert_token, timestamped_bytes
from tests.conftest import sample
from tests.helpers.pki_factory import NOW, Issued, build_pki, issue
from tests.helpers.pki_factory import TestPki as PkiTree
from tests.helpers.pki_servers import PkiServer
from tests.helpers.terminal import Terminal
from tests.helpers.tsa import make_token
from tokens import open_key_provider

runner = CliRunner()
PEM = serialization.Encoding.PEM


def cli(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def sign(
    leaf: Issued,
    source: str,
    out: Path,
    *,
    tags: list[int] | None = None,
    tsa: Issued | None = None,
) -> Path:
    key, cert = leaf.write(out.parent, out.stem)
    ds = dsig.read_dicom(sample(source))
    provider = open_key_provider(str(key), cert=cert)
    try:
        info = dsig.add_signature(ds, provider, dsig.SignOptions(tags=tags))
    finally:
        provider.close()
    if tsa is not None:
        item = find_signature(ds, info.uid).item
        digest = hashlib.sha256(timestamped_bytes(item)).digest()
        insert_token(item, make_token(tsa, hash_algorithm="sha256", digest=digest))
    dsig.save(ds, out, dsig.target_encoding(ds, "same", None))
    return out


@dataclass
class Pki:
    pki: PkiTree
    store: Path
    untrusted: Path

    @property
    def trust(self) -> tuple[object, ...]:
        return ("--trust-store", self.store, "--untrusted", self.untrusted)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("explain-pki")
    p = build_pki()
    store, inter = d / "root.pem", d / "inter.pem"
    store.write_bytes(p.root.cert.public_bytes(PEM))
    inter.write_bytes(p.intermediate.cert.public_bytes(PEM))
    return Pki(p, store, inter)


def explained(path: Path, *args: object) -> tuple[int, str]:
    """Explain ``path``, assert it agrees with dsig verify, return (exit code, text)."""
    r = cli("explain", path, *args)
    v = cli("verify", path, "--json", *args)
    report = json.loads(v.stdout)
    assert r.exit_code == v.exit_code, r.output
    assert r.stdout.startswith(report["files"][0]["indication"] + "  "), r.stdout
    return r.exit_code, r.stdout


def test_valid_jpeg_names_fragments_digests_and_each_trust_step(pki: Pki, tmp_path: Path) -> None:
    signed = sign(pki.pki.leaf("radiologist"), "JPEG-lossy.dcm", tmp_path / "jpeg.dcm")
    code, text = explained(signed, *pki.trust)
    assert code == 0
    assert "JPEG Extended (Process 2 and 4)" in text
    assert "PixelData (7FE0,0010) OB: 1 fragment hashed as stored, empty offset table" in text
    assert "PatientName (0010,0010) PN: header (tag, PN, value length 22) + value" in text
    assert "DigitalSignatureUID (0400,0100) UI [signature item]" in text
    digest_line = next(line for line in text.splitlines() if "digest: passed" in line)
    recomputed = digest_line.split("recomputed ")[1].split(";")[0]
    assert f"carried {recomputed}" in digest_line and "they match" in digest_line
    for step in ("certificate path: passed", "certificate validity: passed",
                 "key usage: passed: signer: key usage digitalSignature, nonRepudiation",
                 "revocation: passed", "valid at the moment used",
                 "now: no certified timestamp proves an earlier moment"):  # fmt: skip
        assert step in text, step
    assert "dsig Test Root CA" in text
    assert text.rstrip().splitlines()[-1].startswith("verdict VALID, decided by: all steps")


def test_tampered_file_names_the_changed_element(pki: Pki, tmp_path: Path) -> None:
    original = sign(pki.pki.leaf("radiologist"), "JPEG-lossy.dcm", tmp_path / "orig.dcm")
    ds = dsig.read_dicom(original)
    ds.PatientName = "Tampered^Name"
    tampered = tmp_path / "tampered.dcm"
    dsig.save(ds, tampered, dsig.target_encoding(ds, "same", None))
    code, text = explained(tampered, *pki.trust)
    assert code == 1
    assert "digest: failed" in text and "they differ" in text
    assert "decided by: signature check" in text and "MAC_MISMATCH" in text
    assert "changed element(s): cannot be named (a MAC covers all its elements at once" in text
    r = cli("explain", tampered, *pki.trust, "--reference", original)
    assert r.exit_code == 1
    assert "changed element(s): PatientName (per-element stream digests differ" in r.stdout
    ex = explain_file(tampered, ExplainOptions(reference=original))
    assert ex.signatures[0].changed == ("PatientName",)
    del ds.PatientName
    missing = tmp_path / "missing.dcm"
    dsig.save(ds, missing, dsig.target_encoding(ds, "same", None))
    assert explain_file(missing).signatures[0].changed == ("PatientName",)


def test_untrusted_signer_is_decided_by_the_path(pki: Pki, tmp_path: Path) -> None:
    stranger = issue("stranger", issuer=build_pki().intermediate)
    signed = sign(stranger, "JPEG-lossy.dcm", tmp_path / "stranger.dcm")
    code, text = explained(signed, *pki.trust)
    assert code in (1, 3)
    assert "certificate path: failed: no path from the signer to a configured trust anchor" in text
    assert "decided by: certificate path" in text and "NO_TRUSTED_PATH" in text
    assert "signature check: passed" in text  # phase 1 was fine
    code, text = explained(signed)
    assert code == 3 and "decided by: trust: not checked: no trust anchors given" in text


def test_revoked_signer_names_the_revocation_source(tmp_path: Path) -> None:
    with PkiServer() as server:
        root = issue("explain root", ca=True)
        server.add_authority("root", root)
        inter = issue("explain inter", issuer=root, ca=True)
        authority = server.add_authority("inter", inter)
        leaf = issue("revoked signer", issuer=inter,
                     extensions=server.revinfo_extensions("inter", ocsp=False))  # fmt: skip
        authority.revoke(leaf.cert, NOW - dt.timedelta(days=1))
        store = tmp_path / "store.pem"
        store.write_bytes(root.cert.public_bytes(PEM))
        untrusted = tmp_path / "inter.pem"
        untrusted.write_bytes(inter.cert.public_bytes(PEM))
        signed = sign(leaf, "JPEG-lossy.dcm", tmp_path / "revoked.dcm")
        code, text = explained(signed, "--trust-store", store, "--untrusted", untrusted, "--online")
    assert code == 1
    assert "revocation: failed" in text and "CERT_REVOKED" in text
    assert "CN=revoked signer,O=dsig test: revoked (crl fetched), revoked at" in text
    assert "decided by: revocation" in text


def test_timestamped_signature_is_judged_at_the_certified_time(pki: Pki, tmp_path: Path) -> None:
    tsa = issue("explain TSA", issuer=pki.pki.intermediate, eku=[ExtendedKeyUsageOID.TIME_STAMPING])
    signed = sign(pki.pki.leaf("radiologist"), "JPEG-lossy.dcm", tmp_path / "ts.dcm", tsa=tsa)
    code, text = explained(signed, *pki.trust)
    assert code == 0, text
    assert "timestamp: passed: VALID: certified time" in text and "explain TSA" in text
    assert "the certified time of the signature's valid timestamp" in text


def test_ecg_names_its_waveform_particulars(pki: Pki, tmp_path: Path) -> None:
    signed = sign(pki.pki.leaf("cardiologist"), "waveform_ecg.dcm", tmp_path / "ecg.dcm")
    code, text = explained(signed, *pki.trust)
    assert code == 0
    assert "12-lead ECG Waveform Storage" in text
    assert "Waveform Sequence item 1: 12 channel(s), 10000 samples at 1000 Hz, 16-bit SS" in text
    assert "WaveformSequence (5400,0100) SQ: sequence of 2 items" in text


@pytest.mark.parametrize(
    ("source", "family"),
    [("MR_small_jp2klossless.dcm", "JPEG 2000"), ("MR_small_RLE.dcm", "RLE")],
)
def test_jpeg2000_and_rle_particulars(pki: Pki, tmp_path: Path, source: str, family: str) -> None:
    signed = sign(pki.pki.leaf("radiologist"), source, tmp_path / "img.dcm")
    ex = explain_file(signed)
    assert ex.particulars[0].startswith(f"Pixel Data: {family} (")
    pixel = next(e for e in ex.signatures[0].covered if e.name == "PixelData")
    assert "1 fragment hashed as stored" in pixel.how
    assert ex.verdict == "INDETERMINATE" and ex.signatures[0].decided_by == "trust"
    signature_check = next(s for s in ex.signatures[0].steps if s.name == "signature check")
    assert signature_check.status is StepStatus.PASSED


@pytest.fixture
def chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None or shutil.which("pdftotext") is None:
        pytest.fail("chromium and pdftotext are needed (scripts/setup.sh installs them)")
    return exe


def test_html_page_prints_with_the_same_content(pki: Pki, tmp_path: Path, chromium: str) -> None:
    tags = [0x00100010, 0x00100020, 0x7FE00010]  # PatientName, PatientID, PixelData only
    signed = sign(pki.pki.leaf("radiologist"), "JPEG-lossy.dcm", tmp_path / "part.dcm", tags=tags)
    page = tmp_path / "explain.html"
    r = cli("explain", signed, *pki.trust, "--html", page)
    assert r.exit_code == 0, r.output
    html = page.read_text()
    assert "http" not in html.replace("http-equiv", "") and "<script" not in html
    again = cli("explain", signed, "--html", page)
    assert again.exit_code == 2 and "--force" in again.stderr
    assert cli("explain", signed, "--html", page, "--force").exit_code == 3
    cli("explain", signed, *pki.trust, "--html", page, "--force")
    pdf = tmp_path / "explain.pdf"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
         f"--print-to-pdf={pdf}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert "dsig explain: VALID" in text
    assert "Element tree" in text
    assert "PatientName" in text and "NOT covered" in text and "covered" in text
    assert "verdict VALID, decided by: all steps" in " ".join(text.split())


def test_terminal_gets_a_coloured_tree_pipes_get_plain_text(pki: Pki, tmp_path: Path) -> None:
    signed = sign(pki.pki.leaf("radiologist"), "JPEG-lossy.dcm", tmp_path / "tty.dcm")
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160"}
    env.pop("NO_COLOR", None)
    term = Terminal([sys.executable, "-m", "dsig", "explain", str(signed), "--integrity-only"],
                    env=env)  # fmt: skip
    try:
        assert term.wait(timeout=60) == 0, term.output
    finally:
        term.close()
    assert "\x1b[" in term.output and "└── " in term.output, term.output[:500]
    assert "signature check: passed" in term.output
    piped = cli("explain", signed, "--integrity-only")
    assert piped.exit_code == 0 and "\x1b[" not in piped.stdout and "└" not in piped.stdout


def test_an_intact_second_signature_localises_the_change(pki: Pki, tmp_path: Path) -> None:
    key, cert = pki.pki.leaf("radiologist").write(tmp_path, "two")
    ds = dsig.read_dicom(sample("CT_small.dcm"))
    provider = open_key_provider(str(key), cert=cert)
    try:  # PatientName, PatientID, Rows; then PatientID, Rows only
        dsig.add_signature(
            ds, provider, dsig.SignOptions(tags=[0x00100010, 0x00100020, 0x00280010])
        )
        dsig.add_signature(ds, provider, dsig.SignOptions(tags=[0x00100020, 0x00280010]))
        dsig.add_signature(ds, provider, location=dsig.parse_location("(0010,1002)[0]"))
    finally:
        provider.close()
    ds.PatientName = "Changed^Later"
    changed = tmp_path / "two.dcm"
    dsig.save(ds, changed, dsig.target_encoding(ds, "same", None))
    code, text = explained(changed, "--integrity-only")
    assert code == 1
    first, second, nested = explain_file(changed).signatures
    assert first.verdict == "INVALID" and first.changed == ("PatientName",)
    assert "covered by an intact signature" in first.change_note
    assert second.changed == () and second.decided_by == "trust"
    assert nested.location == "OtherPatientIDsSequence[0]"
    assert nested.digest_recomputed == nested.digest_carried is not None
    assert "trust was declined (integrity only)" in text
    only = cli("explain", changed, "--integrity-only", "--signature", second.uid)
    assert only.exit_code == 1 and only.stdout.count("signature #") == 1
    assert f"decided by: another signature: signature {first.uid} (not shown" in only.stdout


def test_html_escapes_what_the_file_says(tmp_path: Path) -> None:
    from dsig.explain.html import render_html

    ds = dsig.read_dicom(sample("CT_small.dcm"))
    ds.PatientName = "<script>alert(1)</script>"
    hostile = tmp_path / "hostile.dcm"
    dsig.save(ds, hostile, dsig.target_encoding(ds, "same", None))
    page = render_html(explain_file(hostile))
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_malformed_signature_keeps_the_verifier_verdict(pki: Pki, tmp_path: Path) -> None:
    signed = sign(pki.pki.leaf("radiologist"), "JPEG-lossy.dcm", tmp_path / "ok.dcm")
    ds = dsig.read_dicom(signed)
    del find_signatures(ds)[0].item[0x04000005]  # MAC ID Number
    broken = tmp_path / "broken.dcm"
    dsig.save(ds, broken, dsig.target_encoding(ds, "same", None))
    code, text = explained(broken, *pki.trust)
    assert code == 1
    assert "MAC stream: not run: not built (MALFORMED_SIGNATURE" in text
    assert "decided by: MAC stream" in text
