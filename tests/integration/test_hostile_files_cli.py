"""Issue 13, part A walked as an attacker would: each hostile file is built here and handed to
the ``dsig`` command in a real subprocess (exit code, human and JSON output, and stderr, where
a Python warning would show). The library-level tests are in test_hostile_parse.py."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CorePki
from tests.helpers.rawdicom import (
    EXPLICIT_LE,
    IMPLICIT_LE,
    basic_dataset,
    element,
    even,
    item,
    meta,
    part10,
    sequence,
)

ROOT = Path(__file__).resolve().parents[2]
STRICT = ("--integrity-only", "--require", "signature", "--require-coverage", "all")


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsig", *map(str, args)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=ROOT, check=False,
        timeout=120,
    )  # fmt: skip


def report(*args: object) -> tuple[int, dict[str, Any], str]:
    proc = run("verify", "--json", *args)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def signed_file(core_pki: CorePki, tmp_path: Path, body: bytes, uid: str) -> bytes:
    plain = tmp_path / f"plain-{uid}.dcm"
    plain.write_bytes(part10(meta(EXPLICIT_LE, uid), body))
    out = tmp_path / f"signed-{uid}.dcm"
    proc = run("sign", plain, out, "--key", core_pki.rsa_key, "--cert", core_pki.rsa_cert,
               "--no-password")  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return out.read_bytes()


def dataset_of(data: bytes) -> bytes:
    group_length = struct.unpack_from("<I", data, 132 + 8)[0]
    return data[132 + 12 + group_length :]


def no_valid_line(text: str) -> None:
    assert not [line for line in text.splitlines() if line.startswith("VALID")], text


# --- polyglot: the meta header's transfer syntax governs ------------------------------------


def test_polyglot_is_never_valid(core_pki: CorePki, tmp_path: Path) -> None:
    signed = dataset_of(
        signed_file(core_pki, tmp_path, basic_dataset("1.2.3.4.200"), "1.2.3.4.200")
    )
    first = element(0x00060010, "SH", b"ABCD")  # implicit: its length swallows what follows
    swallow = struct.unpack_from("<I", first, 4)[0]
    hidden = basic_dataset("9.9.9", implicit=True, patient="Hidden^Patient")
    pad = element(0xFFFCFFFC, "OB", b"\x00" * (swallow - 4 - len(signed) - 12) + hidden)
    poly = tmp_path / "poly.dcm"
    poly.write_bytes(part10(meta(IMPLICIT_LE, "1.2.3.4.200"), first + signed + pad))
    code, out, err = report(*STRICT, poly)
    file = out["files"][0]
    assert code == 1 and file["indication"] == "INVALID" and err == "", (file, err)
    assert file["signatures"] == []  # read as the meta says: the hidden data set, unsigned
    codes = {f["code"] for f in file["findings"]}
    assert {"SIGNATURE_REQUIRED", "COVERAGE_INCOMPLETE"} <= codes, file["findings"]
    human = run("verify", *STRICT, poly)
    assert human.returncode == 1 and human.stdout.startswith("INVALID"), human.stdout
    no_valid_line(human.stdout)
    # the same bytes under an explicit VR meta: the signature verifies, the rest is listed
    explicit = tmp_path / "poly-explicit.dcm"
    explicit.write_bytes(part10(meta(EXPLICIT_LE, "1.2.3.4.200"), first + signed + pad))
    code, out, err = report(*STRICT, explicit)
    file = out["files"][0]
    assert code == 1 and file["indication"] == "INVALID" and err == ""
    assert file["signatures"][0]["integrity"] == "VALID"
    assert file["uncovered"] == ["(0006,0010)", "(FFFC,FFFC)"]
    human = run("verify", *STRICT, explicit)
    assert human.returncode == 1, human.stdout
    unsignable = [line for line in human.stdout.splitlines() if "UNSIGNABLE_CONTENT" in line]
    assert unsignable and "(0006,0010)" in unsignable[0] and "(FFFC,FFFC)" in unsignable[0]
    assert any("COVERAGE_INCOMPLETE" in line for line in human.stdout.splitlines())
    no_valid_line(human.stdout)
    # without --require-coverage the signature stands, but the uncovered content is said
    human = run("verify", "--integrity-only", explicit)
    assert human.returncode == 0 and "UNSIGNABLE_CONTENT" in human.stdout


def test_a_data_set_not_in_the_meta_encoding_is_an_error(tmp_path: Path) -> None:
    liar = tmp_path / "liar.dcm"  # says explicit, holds implicit: never re-read another way
    liar.write_bytes(part10(meta(EXPLICIT_LE, "1.2.3.4.201"), basic_dataset("1.2.3.4.201",
                                                                          implicit=True)))  # fmt: skip
    proc = run("verify", *STRICT, liar)
    assert proc.returncode == 4 and proc.stdout.startswith("ERROR"), proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    no_valid_line(proc.stdout)


def test_trailing_bytes_fail_coverage_all(core_pki: CorePki, tmp_path: Path) -> None:
    data = signed_file(core_pki, tmp_path, basic_dataset("1.2.3.4.202"), "1.2.3.4.202")
    tail = tmp_path / "tail.dcm"
    tail.write_bytes(data + b"\x00" * 64)
    code, out, _ = report("--integrity-only", tail)
    file = out["files"][0]
    assert code == 0 and file["trailing_bytes"] == 64
    assert any(f["code"] == "UNSIGNABLE_CONTENT" and "64 byte(s) after" in f["message"]
               for f in file["findings"])  # fmt: skip
    code, out, _ = report(*STRICT, tail)
    assert code == 1 and out["files"][0]["indication"] == "INVALID"


# --- UN added after signing is listed by tag --------------------------------------------------


def _insert(body: bytes, extra: bytes) -> bytes:
    """``extra`` among the top-level elements of an explicit VR LE ``body``, in tag order."""
    tag = struct.unpack_from("<HH", extra)
    at = 0
    while at < len(body):
        if struct.unpack_from("<HH", body, at) > tag:
            break
        if body[at + 4 : at + 6] in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR"):
            at += 12 + struct.unpack_from("<I", body, at + 8)[0]
        else:
            at += 8 + struct.unpack_from("<H", body, at + 6)[0]
    return body[:at] + extra + body[at:]


@pytest.mark.parametrize(
    ("extra", "listed"),
    [
        (element(0x20500020, "UN", b"INVERSE "), "(2050,0020)"),
        (element(0x00324000, "UN", b"Patient has no fracture "), "(0032,4000)"),
        (sequence(0x00400275, [item(element(0x00400007, "UN", b"note"))]), "(0040,0275)"),
        (element(0x00291010, "UN", b"\x00" * 64), "(0029,1010)"),
    ],
    ids=["presentation-lut-shape", "study-comments", "sequence-with-un", "shadow-pixels"],
)
def test_un_added_after_signing_is_listed_and_fails_coverage_all(
    core_pki: CorePki, tmp_path: Path, extra: bytes, listed: str
) -> None:
    data = signed_file(core_pki, tmp_path, basic_dataset("1.2.3.4.203"), "1.2.3.4.203")
    body = dataset_of(data)
    added = tmp_path / "added.dcm"
    added.write_bytes(data[: len(data) - len(body)] + _insert(body, extra))
    code, out, err = report("--integrity-only", added)
    file = out["files"][0]
    assert code == 0 and err == ""  # the signature itself is intact ...
    assert listed in file["uncovered"] and listed in file["signatures"][0]["unsigned_tags"]
    assert any(
        f["code"] == "UNSIGNABLE_CONTENT" and listed in f["message"] for f in file["findings"]
    )  # fmt: skip ... and what it leaves out is said
    human = run("verify", "--integrity-only", added)
    assert "1 present elements not covered" in human.stdout, human.stdout
    assert any(listed in line for line in human.stdout.splitlines() if "UNSIGNABLE" in line)
    code, out, _ = report(*STRICT, added)
    file = out["files"][0]
    assert code == 1 and file["indication"] == "INVALID"
    assert any(f["code"] == "COVERAGE_INCOMPLETE" and listed in f["message"]
               for f in file["findings"])  # fmt: skip
    no_valid_line(run("verify", *STRICT, added).stdout)


# --- value bytes invalid in their character set: no Python warning on stderr ------------------


def _bad_text_dataset(uid: str, charset: bytes, bad: bytes) -> bytes:
    code = item(element(0x00080100, "SH", b"1234") + element(0x00080102, "SH", b"99")
                + element(0x00080104, "LO", even(b"Meaning" + bad)))  # fmt: skip
    content = sequence(0x0040A730, [item(
        element(0x0040A040, "CS", b"TEXT") + sequence(0x0040A043, [code])
        + element(0x0040A160, "UT", even(b"Text " + bad)))])  # fmt: skip
    return basic_dataset(uid, extra=[
        (0x00080005, "CS", even(charset)), (0x00100010, "PN", even(b"Bad" + bad + b"^Name")),
        (0x00100020, "LO", even(b"ID" + bad)), (0x00081030, "LO", even(b"Study" + bad)),
        (0x00081010, "SH", even(b"St" + bad)), (0x00324000, "LT", even(b"Note" + bad)),
        (0x0040A730, "RAW", content),
    ])  # fmt: skip


@pytest.mark.parametrize(
    ("charset", "bad"),
    [
        (b"ISO_IR 192", b"\xff\xfe\xc3("),
        (b"GB18030", b"\x80\xff"),
        (b"\\ISO 2022 IR 87", b"\x1b$B\xff\xff\x1b(B"),  # invalid JIS X 0208 in an escape
    ],
    ids=["utf-8", "gb18030", "iso-2022-jp"],
)
def test_undecodable_values_never_warn_on_stderr(
    core_pki: CorePki, tmp_path: Path, charset: bytes, bad: bytes
) -> None:
    """pydicom warns ("Failed to decode byte string with encoding ...") wherever it decodes
    such a value; dsig decodes what it shows itself and says so in one finding."""
    uid = "1.2.3.4.204"
    signed = tmp_path / "s.dcm"
    signed.write_bytes(signed_file(core_pki, tmp_path, _bad_text_dataset(uid, charset, bad), uid))
    study = tmp_path / "study"
    study.mkdir()
    (study / "s.dcm").write_bytes(signed.read_bytes())
    html = tmp_path / "explain.html"
    manifest = tmp_path / "manifest.dcm"
    key = ("--key", core_pki.rsa_key, "--cert", core_pki.rsa_cert, "--no-password")
    runs = {
        "verify": run("verify", "--integrity-only", signed),
        "verify --json": run("verify", "--integrity-only", "--json", signed),
        "verify coverage": run("verify", *STRICT, signed),
        "verify --require-coverage profile": run("verify", "--integrity-only",
                                                 "--require-coverage", "profile", signed),
        "verify --trust-store": run("verify", "--trust-store", core_pki.trust_bundle, signed),
        "inspect": run("inspect", signed),
        "inspect --json": run("inspect", "--json", signed),
        "explain": run("explain", "--integrity-only", signed, "--html", html),
        "sign --item": run("sign", signed, tmp_path / "item.dcm", "--item",
                           "ContentSequence[0]", *key),
        "manifest create": run("manifest", "create", study, "-o", manifest, *key),
    }  # fmt: skip
    runs["manifest verify"] = run("manifest", "verify", manifest, study, "--integrity-only")
    for name, proc in runs.items():
        assert proc.stderr == "", (name, proc.stderr)
        assert proc.returncode == 0, (name, proc.returncode, proc.stdout)
    explain = runs["explain"].stdout
    notes = [line for line in explain.splitlines() if "VALUE_NOT_DECODABLE" in line]
    assert len(notes) == 1, explain
    listed = "(0008,1010), (0008,1030), (0010,0010), (0010,0020), (0040,A730)[1].(0040,A043)[1]."
    assert notes[0].startswith("  file: VALUE_NOT_DECODABLE: 5 text value(s)"), notes
    assert notes[0].endswith(listed + "(0008,0104)"), notes  # by tag, nested ones by path
    page = html.read_text()
    assert "Bad\ufffd" in page and "VALUE_NOT_DECODABLE" in page
    # the manifest copies the patient's attributes as stored, never re-encoded
    from dsig.encoding.reader import read_dicom
    from dsig.encoding.values import stored

    kos, source = read_dicom(manifest), read_dicom(signed)
    for copied in (0x00080005, 0x00100010, 0x00100020, 0x00081030):
        assert stored(kos, copied).value == stored(source, copied).value, hex(copied)


# --- EKU: anyExtendedKeyUsage, mixed EKUs, and a site's required EKU ----------------------------


def _eku_signer(tmp_path: Path, name: str, eku: list[str]) -> tuple[Path, Path, Path]:
    """(key, cert, trust store) of a signer issued with these dotted EKUs."""
    from cryptography import x509

    from tests.helpers.pki_factory import build_pki, issue

    pki = build_pki()
    leaf = issue(name, issuer=pki.intermediate, eku=[x509.ObjectIdentifier(o) for o in eku])
    key, cert = leaf.write(tmp_path, name)
    root, inter = pki.write_anchors(tmp_path / f"{name}-anchors")
    store = tmp_path / f"{name}-store.pem"
    store.write_bytes(root.read_bytes() + inter.read_bytes())
    return key, cert, store


ANY_EKU, DOC_EKU = "2.5.29.37.0", "1.3.6.1.5.5.7.3.36"
SERVER_AUTH, TIME_STAMPING = "1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.8"


@pytest.mark.parametrize(
    ("eku", "accepted"),
    [
        ([ANY_EKU], True),
        ([SERVER_AUTH, DOC_EKU], True),
        ([SERVER_AUTH, TIME_STAMPING], False),  # several EKUs, none for documents
    ],
    ids=["any", "server-and-document", "server-and-timestamping"],
)
def test_eku_rule_is_the_same_in_sign_verify_and_cert_check(
    tmp_path: Path, eku: list[str], accepted: bool
) -> None:
    key, cert, store = _eku_signer(tmp_path, "eku", eku)
    plain = tmp_path / "plain.dcm"
    plain.write_bytes(part10(meta(EXPLICIT_LE, "1.2.3.4.205"), basic_dataset("1.2.3.4.205")))
    out = tmp_path / "signed.dcm"
    signing = run("sign", plain, out, "--key", key, "--cert", cert, "--no-password")
    checked = run("cert", "check", cert, "--trust-store", store, "--revocation", "off")
    if accepted:
        assert signing.returncode == 0, signing.stderr
        assert checked.returncode == 0 and checked.stdout.startswith("VALID"), checked.stdout
        code, data, _ = report("--trust-store", store, "--revocation", "off", out)
        assert code == 0 and data["files"][0]["indication"] == "VALID", data
        return
    assert signing.returncode == 4 and "EXTENDED_KEY_USAGE" in signing.stderr
    assert not out.exists() and len(signing.stderr.strip().splitlines()) == 1
    assert checked.returncode == 1 and "EXTENDED_KEY_USAGE" in checked.stdout
    forced = run("sign", plain, out, "--key", key, "--cert", cert, "--no-password",
                 "--force-certificate")  # fmt: skip
    assert forced.returncode == 0, forced.stderr  # signed anyway: verification still refuses
    code, data, _ = report("--trust-store", store, "--revocation", "off", out)
    trust = data["files"][0]["signatures"][0]["trust"]
    assert code == 1 and [f["code"] for f in trust["findings"]] == ["EXTENDED_KEY_USAGE"]


def test_policy_file_names_the_ekus_a_site_requires(tmp_path: Path) -> None:
    site = "1.3.6.1.4.1.99999.1"  # a site's own EKU, required on top of document signing
    key, cert, store = _eku_signer(tmp_path, "doc-only", [DOC_EKU])
    policy = tmp_path / "site.toml"
    policy.write_text(f'anchors = ["{store}"]\nrevocation = "off"\nrequired_eku = ["{site}"]\n')
    plain = tmp_path / "plain.dcm"
    plain.write_bytes(part10(meta(EXPLICIT_LE, "1.2.3.4.206"), basic_dataset("1.2.3.4.206")))
    out = tmp_path / "signed.dcm"
    assert run("sign", plain, out, "--key", key, "--cert", cert, "--no-password").returncode == 0
    code, data, _ = report("--policy-file", policy, out)
    trust = data["files"][0]["signatures"][0]["trust"]
    assert code == 1 and [f["code"] for f in trust["findings"]] == ["EXTENDED_KEY_USAGE"]
    assert site in trust["findings"][0]["message"]
    checked = run("cert", "check", cert, "--policy-file", policy)
    assert checked.returncode == 1 and site in checked.stdout
    refused = run("sign", plain, tmp_path / "refused.dcm", "--key", key, "--cert", cert,
                  "--no-password", "--policy-file", policy)  # fmt: skip
    assert refused.returncode == 4 and site in refused.stderr
    # a signer listing both is accepted by the same policy
    key2, cert2, store2 = _eku_signer(tmp_path, "doc-and-site", [DOC_EKU, site])
    policy.write_text(f'anchors = ["{store2}"]\nrevocation = "off"\nrequired_eku = ["{site}"]\n')
    out2 = tmp_path / "signed2.dcm"
    signing = run("sign", plain, out2, "--key", key2, "--cert", cert2, "--no-password",
                  "--policy-file", policy)  # fmt: skip
    assert signing.returncode == 0, signing.stderr
    code, data, _ = report("--policy-file", policy, out2)
    assert code == 0, data
    assert run("cert", "check", cert2, "--policy-file", policy).returncode == 0


# --- bounded work with the default limits, measured in a process of its own -------------------

_MEASURE = """
import json, os, subprocess, sys, time
start = time.monotonic()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
out = p.stdout.read().decode(errors="replace") if p.stdout else ""
_, status, usage = os.wait4(p.pid, 0)
print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "seconds": time.monotonic() - start,
                  "rss_mib": usage.ru_maxrss / 1024, "out": out}))
"""


def measured(path: Path) -> dict[str, Any]:
    """``dsig verify --integrity-only`` of ``path``: exit code, wall time, peak RSS, output."""
    cmd = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "dsig", "verify",
           "--integrity-only", str(path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120, cwd=ROOT)
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _wide(n: int) -> bytes:
    """A sequence holding ``n`` short private LO elements (distinct tags within each item)."""
    items = []
    for first in range(0, n, 0xEFFF):
        count = min(0xEFFF, n - first)
        items.append(item(b"".join(element(0x00090000 | (0x1000 + k), "LO", b"ab")
                                   for k in range(count))))  # fmt: skip
    return sequence(0x00400275, items)


def _many_signatures(core_pki: CorePki, tmp_path: Path, copies: int) -> Path:
    """A 9 MB file: 80,000 elements in a sequence, one signature over everything and
    ``copies - 1`` copies of it under other UIDs (each one makes the verifier walk it all)."""
    import copy

    import pydicom
    from pydicom.uid import generate_uid

    wide = _wide(80_000)
    pad = element(0x00091010, "OB", bytes(9_000_000 - len(wide)))
    body = basic_dataset("1.2.3.4.207", extra=[(0x00400275, "RAW", wide),
                                               (0x00091010, "RAW", pad)])  # fmt: skip
    path = tmp_path / f"sigs-{copies}.dcm"
    path.write_bytes(signed_file(core_pki, tmp_path, body, "1.2.3.4.207"))
    ds = pydicom.dcmread(path)
    signatures = ds.DigitalSignaturesSequence
    for _ in range(copies - 1):
        twin = copy.deepcopy(signatures[0])
        twin.DigitalSignatureUID = generate_uid()
        signatures.append(twin)
    ds.save_as(path)
    assert path.stat().st_size <= 10_000_000
    return path


def test_many_signatures_over_a_wide_file_are_bounded(core_pki: CorePki, tmp_path: Path) -> None:
    """128 signatures over 80,000 elements (9 MB) took 12 s; the work allowance grows with
    the file (ParseLimits.base_work + size / bytes_per_work), so it is refused at once, while
    as many signatures as the allowance pays for verify in about a second."""
    (tmp_path / "many").mkdir()
    (tmp_path / "few").mkdir()
    refused = measured(_many_signatures(core_pki, tmp_path / "many", 128))
    assert refused["rc"] == 4 and "ParseLimits.base_work" in refused["out"], refused
    assert refused["seconds"] < 5 and refused["rss_mib"] < 256, refused
    accepted = measured(_many_signatures(core_pki, tmp_path / "few", 9))
    # all nine verified: the first VALID, its copies not (their UIDs are in the MAC)
    assert accepted["rc"] == 1 and "parser limit" not in accepted["out"], accepted["out"][-300:]
    assert "signature #9 " in accepted["out"] and ": VALID; integrity VALID" in accepted["out"]
    assert accepted["seconds"] < 5 and accepted["rss_mib"] < 256, accepted
    print(f"\n128 signatures refused in {refused['seconds']:.2f} s, "
          f"9 verified in {accepted['seconds']:.2f} s ({accepted['rss_mib']:.0f} MiB)")  # fmt: skip


def test_work_allowance_grows_with_the_file() -> None:
    from dsig.encoding.limits import ParseLimits
    from dsig.errors import OptionsError

    limits = ParseLimits()
    assert limits.work_cap(None) == limits.max_work
    assert limits.work_cap(10_000_000) == 1_000_000 + 10_000_000 // 16
    assert limits.work_cap(1 << 30) == limits.max_work
    with pytest.raises(OptionsError, match="bytes_per_work"):
        ParseLimits(bytes_per_work=0)


def test_signing_a_wide_item_is_linear(core_pki: CorePki, tmp_path: Path) -> None:
    """Normalising the values to sign walked the whole item once per element: 8,000 elements
    in one item took 138 s to sign; 40,000 now take well under the bound."""
    import time

    body = basic_dataset("1.2.3.4.208", extra=[(0x00400275, "RAW", _wide(40_000))])
    start = time.monotonic()
    signed_file(core_pki, tmp_path, body, "1.2.3.4.208")
    assert time.monotonic() - start < 15


def test_deflate_bomb_behind_a_padded_meta_with_default_limits(tmp_path: Path) -> None:
    """The meta padded past 64 KiB hid the Deflated transfer syntax from the size check (3 MB
    reached 6.3 GB); with the default limits the 1 GiB of zeros is refused while inflating."""
    import zlib

    uid = "1.2.3.4.209"
    head = basic_dataset(uid)
    at = head.index(struct.pack("<HH", 0x0010, 0x0010))
    m = meta("1.2.840.10008.1.2.1.99", uid)
    inner = m[12:] + element(0x00020100, "OB", bytes(100_000))  # the meta ends past 64 KiB
    m = element(0x00020000, "UL", struct.pack("<I", len(inner))) + inner
    path = tmp_path / "padded-bomb.dcm"
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with path.open("wb") as fp:
        fp.write(part10(m, b""))
        fp.write(c.compress(head[:at] + element(0x00091010, "OB", b"", length=1 << 30)))
        block = bytes(1 << 20)
        for _ in range(1 << 10):
            fp.write(c.compress(block))
        fp.write(c.compress(head[at:]) + c.flush())
    assert path.stat().st_size < 10_000_000
    run_ = measured(path)
    assert run_["rc"] == 4 and "ParseLimits.max_inflated_bytes" in run_["out"], run_
    assert run_["seconds"] < 5 and run_["rss_mib"] < 256, run_
    assert "Traceback" not in run_["out"]
    print(f"\npadded-meta deflate bomb ({path.stat().st_size:,} bytes): refused in "
          f"{run_['seconds']:.2f} s, peak {run_['rss_mib']:.0f} MiB")  # fmt: skip


def test_explain_page_escapes_control_characters(core_pki: CorePki, tmp_path: Path) -> None:
    """A value holding a newline, an escape sequence and a bidi override: the explain page
    (lines in ``pre-wrap``) and its output show them as escapes, never a forged line."""
    forged = "X\nVALID /a.dcm\x1b[2J\u202e"
    uid = "1.2.3.4.210"
    body = basic_dataset(uid, extra=[(0x00080005, "CS", b"ISO_IR 192"),
                                     (0x00081030, "LO", even(forged.encode()))])  # fmt: skip
    signed = tmp_path / "forged.dcm"
    signed.write_bytes(signed_file(core_pki, tmp_path, body, uid))
    page = tmp_path / ("page" + forged.replace("/", "_") + ".html")
    proc = run("explain", "--integrity-only", signed, "--html", page)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert not [line for line in proc.stdout.splitlines() if line.startswith("VALID /a.dcm")]
    document = page.read_text()
    assert "\x1b" not in document and "\u202e" not in document
    assert "\nVALID" not in document and "X\\nVALID /a.dcm\\x1b[2J\\u202e" in document
