"""Issue 7 hardening: parser limits, algorithm policy, coverage policy (signature wrapping),
output safety, secrets, and the tamper matrix with legal re-encodings."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    generate_uid,
)
from typer.testing import CliRunner

from dsig.cli import app
from dsig.encoding.limits import LimitExceededError, ParseLimits
from dsig.encoding.reader import read_dicom
from dsig.encoding.writer import Encoding, save
from dsig.errors import DicomFormatError
from dsig.operations.signer import SignOptions, add_signature
from dsig.operations.verifier import VerifyOptions, verify_file
from dsig.results import Indication
from dsig.signature.model import find_signatures
from tests.conftest import CorePki, sample
from tests.helpers import dicom_factory
from tests.property import mutations
from tokens.api import KeyProvider
from tokens.digest import HashAlgorithm

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
INTEGRITY = VerifyOptions(integrity_only=True)


def dsig(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def sign_cli(core_pki: CorePki, src: Path, dst: Path, *extra: object) -> Any:
    return dsig("sign", src, dst, "--key", core_pki.rsa_key, "--cert", core_pki.rsa_cert,
                "--no-password", *extra)  # fmt: skip


def verify_json(path: Path, *extra: object) -> dict[str, Any]:
    r = dsig("verify", path, "--json", "--integrity-only", *extra)
    data: dict[str, Any] = json.loads(r.stdout)
    data["exit_code"] = r.exit_code
    return data


def one_line_error(r: Any) -> str:
    assert r.stderr.startswith("dsig: error: ") and r.stderr.count("\n") == 1, r.stderr
    return str(r.stderr)


@pytest.fixture(scope="module")
def key(core_pki: CorePki) -> Iterator[KeyProvider]:
    provider = mutations.open_key(core_pki.rsa_key, core_pki.rsa_cert)
    yield provider
    provider.close()


@pytest.fixture(scope="module")
def signed_seeds(tmp_path_factory: pytest.TempPathFactory, key: KeyProvider) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("seeds")
    return {name: mutations.make_signed(name, d, key) for name in mutations.SEEDS}


# --- parser limits ------------------------------------------------------------------------------


def _nested(depth: int) -> Dataset:
    ds = Dataset()
    ds.PatientName = "Deep^Nest"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    level = ds
    for _ in range(depth):
        child = Dataset()
        child.CodeMeaning = "x"
        level.ContentSequence = DicomSequence([child])
        level = child
    return ds


def _write(ds: Dataset, path: Path, syntax: str = ExplicitVRLittleEndian) -> Path:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_parse_limits_are_validated_and_frozen() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        ParseLimits(max_depth=0)
    limits = ParseLimits()
    with pytest.raises(AttributeError):
        limits.max_depth = 3  # type: ignore[misc]


def test_nesting_depth_limit(tmp_path: Path) -> None:
    ok = _write(_nested(10), tmp_path / "ok.dcm")
    read_dicom(ok)
    with pytest.raises(LimitExceededError, match="max_depth"):
        read_dicom(ok, ParseLimits(max_depth=5))
    deep = _write(_nested(70), tmp_path / "deep.dcm")  # over the default 64
    r = dsig("verify", deep, "--json", "--integrity-only")
    assert r.exit_code == 4
    error = json.loads(r.stdout)["files"][0]["error"]
    assert "ParseLimits.max_depth" in error and "\n" not in error
    r = dsig("inspect", deep)
    assert r.exit_code == 4 and "max_depth" in one_line_error(r)


def test_pathological_nesting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """5000 undefined-length sequences inside each other (pydicom itself recurses)."""
    body = b""
    for _ in range(5000):
        body = (b"\x40\x00\x30\xa7SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
                + body + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")  # fmt: skip
    base = _write(_nested(0), tmp_path / "base.dcm").read_bytes()
    bomb = tmp_path / "bomb.dcm"
    bomb.write_bytes(base + body)
    proc = subprocess.run([sys.executable, "-m", "dsig", "verify", str(bomb)], capture_output=True,
                          text=True, cwd=ROOT, check=False, timeout=120)  # fmt: skip
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_signature_count_limit(tmp_path: Path, key: KeyProvider) -> None:
    ds = read_dicom(sample("CT_small.dcm"))
    for _ in range(3):
        add_signature(ds, key, SignOptions(tags=[0x00100010]))
    assert len(find_signatures(ds)) == 3
    with pytest.raises(LimitExceededError, match="max_signatures"):
        find_signatures(ds, ParseLimits(max_signatures=2))
    # Over the default: 129 copies of one signature item.
    items = ds[0xFFFAFFFA].value
    while len(items) < 129:
        items.append(items[0])
    many = tmp_path / "many.dcm"
    save(ds, many, Encoding(ExplicitVRLittleEndian))
    data = verify_json(many)
    assert data["exit_code"] == 4
    assert "ParseLimits.max_signatures" in data["files"][0]["error"]


def test_total_work_limit() -> None:
    with pytest.raises(LimitExceededError, match="max_elements"):
        read_dicom(sample("CT_small.dcm"), ParseLimits(max_elements=100))


def test_verification_work_limit(tmp_path: Path, key: KeyProvider) -> None:
    """Each signature walks nested content once per level: signatures x depth-weighted
    elements is bounded, so a deep, wide, many-signature file cannot take hours."""
    ds = _nested(20)
    for _ in range(3):
        add_signature(ds, key, SignOptions(tags=[0x00100010]))
    path = tmp_path / "deep-signed.dcm"
    _write(ds, path)
    weighted = read_dicom(path).dsig_weighted_elements
    assert weighted > 20 * 20 / 2
    assert verify_file(path, INTEGRITY).indication is Indication.VALID
    tight = VerifyOptions(integrity_only=True, limits=ParseLimits(max_work=3 * weighted - 1))
    result = verify_file(path, tight)
    assert result.indication is Indication.ERROR and "ParseLimits.max_work" in (result.error or "")


def test_element_length_beyond_file_size(tmp_path: Path) -> None:
    data = bytearray(sample("CT_small.dcm").read_bytes())
    at = data.index(b"\xe0\x7f\x10\x00OW")
    data[at + 8 : at + 12] = (0xFFFFFFF0).to_bytes(4, "little")
    bad = tmp_path / "long.dcm"
    bad.write_bytes(bytes(data))
    with pytest.raises(DicomFormatError, match=r"more than the whole file|truncated"):
        read_dicom(bad)
    assert verify_json(bad)["exit_code"] == 4


def _deflated(path: Path, zeros: int) -> Path:
    ds = _nested(0)
    ds.add_new(0x00091010, "LO", "dsig")  # private creator
    ds.add_new(0x00091011, "OB", b"\x00" * zeros)
    return _write(ds, path, DeflatedExplicitVRLittleEndian)


def test_deflate_bomb_is_refused_before_inflating(tmp_path: Path) -> None:
    small = _deflated(tmp_path / "ok.dcm", 1 << 16)
    read_dicom(small)
    bomb = _deflated(tmp_path / "bomb.dcm", 4 << 20)
    assert bomb.stat().st_size < 64 << 10  # 4 MiB of zeros deflate to a few KiB
    with pytest.raises(LimitExceededError, match="max_inflated_bytes"):
        read_dicom(bomb, ParseLimits(max_inflated_bytes=1 << 20))
    read_dicom(bomb)  # within the default


def test_limits_module_helpers_on_junk(tmp_path: Path) -> None:
    from dsig.encoding.limits import check_inflated_size, deflated_data_offset

    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff")
    assert deflated_data_offset(junk) is None
    check_inflated_size(junk, 0, ParseLimits())  # corrupt deflate data: left to pydicom
    assert deflated_data_offset(tmp_path / "missing") is None


def test_verify_file_fails_closed_on_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    import dsig.operations.verifier

    def broken(*_args: object, **_kwargs: object) -> None:
        raise KeyError("simulated bug")

    # verify_file verifies through _verify_dataset (it shares the read's level walks).
    monkeypatch.setattr(dsig.operations.verifier, "_verify_dataset", broken)
    result = verify_file(sample("CT_small.dcm"), INTEGRITY)
    assert result.indication is Indication.ERROR
    assert (result.error or "").startswith(dsig.operations.verifier.INTERNAL_ERROR)
    assert "KeyError" in (result.error or "") and "\n" not in (result.error or "")


# --- algorithm policy ---------------------------------------------------------------------------


@pytest.mark.parametrize("mac", ["md5", "sha1"])
def test_weak_mac_refused_unless_allowed(core_pki: CorePki, tmp_path: Path, mac: str) -> None:
    out = tmp_path / "o.dcm"
    r = sign_cli(core_pki, sample("CT_small.dcm"), out, "--mac", mac)
    assert r.exit_code == 4 and f"--allow-weak {mac}" in one_line_error(r)
    assert not out.exists()
    other = "sha1" if mac == "md5" else "md5"
    r = sign_cli(core_pki, sample("CT_small.dcm"), out, "--mac", mac, "--allow-weak", other)
    assert r.exit_code == 4 and not out.exists()
    assert (
        sign_cli(core_pki, sample("CT_small.dcm"), out, "--mac", mac, "--allow-weak", mac).exit_code
        == 0
    )

    default = verify_json(out)
    assert default["exit_code"] == 0
    codes = {(f["code"], f["severity"]) for f in default["files"][0]["signatures"][0]["findings"]}
    assert ("WEAK_ALGORITHM", "warning") in codes
    strict = verify_json(out, "--strict")
    assert strict["exit_code"] == 1
    sig = strict["files"][0]["signatures"][0]
    assert sig["integrity"] == "VALID" and sig["indication"] == "INVALID"
    assert ("WEAK_ALGORITHM", "error") in {(f["code"], f["severity"]) for f in sig["findings"]}
    weak = next(f["message"] for f in sig["findings"] if f["severity"] == "error")
    assert weak.endswith(f"refused under strict checking unless {mac} is allowed as weak")
    # the library's message names no flag; the CLI's human output adds it
    human = dsig("verify", out, "--integrity-only", "--strict").stdout
    assert f"{weak} (use --allow-weak {mac})" in human
    assert verify_json(out, "--strict", "--allow-weak", mac)["exit_code"] == 0


def test_small_rsa_key_refused_unless_allowed(core_pki: CorePki, tmp_path: Path) -> None:
    k, c = core_pki.pki.leaf("rsa1024", key_kind="rsa1024").write(tmp_path, "rsa1024")
    out = tmp_path / "o.dcm"
    base = ["sign", sample("CT_small.dcm"), out, "--key", k, "--cert", c, "--no-password"]
    r = dsig(*base)
    assert r.exit_code == 4 and "--allow-weak rsa1024" in one_line_error(r)
    assert dsig(*base, "--allow-weak", "rsa2000").exit_code == 4  # the floor stays above 1024
    assert dsig(*base, "--allow-weak", "rsa1024").exit_code == 0
    assert verify_json(out)["exit_code"] == 0
    assert verify_json(out, "--strict")["exit_code"] == 1
    assert verify_json(out, "--strict", "--allow-weak", "rsa1024")["exit_code"] == 0


def test_unknown_allow_weak_name_is_an_error(core_pki: CorePki, tmp_path: Path) -> None:
    r = sign_cli(core_pki, sample("CT_small.dcm"), tmp_path / "o.dcm", "--allow-weak", "md4")
    assert r.exit_code == 4 and "md4" in one_line_error(r)
    signed = tmp_path / "s.dcm"
    assert sign_cli(core_pki, sample("CT_small.dcm"), signed).exit_code == 0
    r = dsig("verify", signed, "--integrity-only", "--allow-weak", "md4")
    assert r.exit_code == 4 and "md4" in one_line_error(r)


def test_library_refuses_weak_mac_too(key: KeyProvider) -> None:
    from dsig.errors import SigningError

    ds = read_dicom(sample("CT_small.dcm"))
    with pytest.raises(SigningError, match="weak"):
        add_signature(ds, key, SignOptions(mac=HashAlgorithm.MD5))
    assert 0xFFFAFFFA not in ds
    add_signature(ds, key, SignOptions(mac=HashAlgorithm.MD5, allow_weak=("md5",)))


# --- coverage policy (signature wrapping) -------------------------------------------------------


def test_coverage_all_and_profile(core_pki: CorePki, tmp_path: Path) -> None:
    full, part, creator = tmp_path / "full.dcm", tmp_path / "part.dcm", tmp_path / "creator.dcm"
    assert sign_cli(core_pki, sample("CT_small.dcm"), full).exit_code == 0
    assert sign_cli(core_pki, sample("CT_small.dcm"), part, "--tag", "PatientName").exit_code == 0
    assert (
        sign_cli(
            core_pki,
            sample("CT_small.dcm"),
            creator,
            "--profile",
            "creator",
            "--tag",
            "SOPInstanceUID",
        ).exit_code
        == 0
    )

    assert verify_json(full, "--require-coverage", "profile")["exit_code"] == 0
    # CT_small's Data Set Trailing Padding holds 126 non-zero bytes that no signature can
    # cover: "all" fails it (issue 13); the same file with zeroed padding passes
    data = verify_json(full, "--require-coverage", "all")
    assert data["exit_code"] == 1
    coverage = [f for f in data["files"][0]["findings"] if f["code"] == "COVERAGE_INCOMPLETE"]
    assert len(coverage) == 1 and coverage[0]["message"].endswith(": (FFFC,FFFC)"), coverage
    zeroed = tmp_path / "zeroed.dcm"
    raw = full.read_bytes()
    at = raw.index(b"\xfc\xff\xfc\xffOB\x00\x00")
    length = int.from_bytes(raw[at + 8 : at + 12], "little")
    zeroed.write_bytes(raw[: at + 12] + bytes(length) + raw[at + 12 + length :])
    assert verify_json(zeroed, "--require-coverage", "all")["exit_code"] == 0
    for mode in ("all", "profile"):
        data = verify_json(part, "--require-coverage", mode)
        assert data["exit_code"] == 1
        finding = next(
            f for f in data["files"][0]["findings"] if f["code"] == "COVERAGE_INCOMPLETE"
        )
        assert finding["severity"] == "error"
        assert data["files"][0]["signatures"][0]["indication"] == "VALID"  # the signature is fine
    assert verify_json(creator, "--require-coverage", "profile")["exit_code"] == 0
    assert verify_json(creator, "--require-coverage", "all")["exit_code"] == 1
    assert verify_json(part)["exit_code"] == 0  # off by default
    unsigned = verify_json(sample("CT_small.dcm"), "--require-coverage", "profile")
    assert unsigned["exit_code"] == 1


def test_coverage_profile_of_an_sr_and_require(core_pki: CorePki, tmp_path: Path) -> None:
    sr = tmp_path / "sr.dcm"
    assert (
        sign_cli(
            core_pki,
            sample("reportsi.dcm"),
            sr,
            "--profile",
            "sr",
            "--purpose",
            "1",
            "--tag",
            "SOPInstanceUID",
        ).exit_code
        == 0
    )
    assert verify_json(sr, "--require-coverage", "profile")["exit_code"] == 0
    # an explicit --require names the profile whose demands count
    data = verify_json(sr, "--require-coverage", "profile", "--require", "creator")
    assert data["exit_code"] == 1
    assert {f["code"] for f in data["files"][0]["findings"]} == {
        "PROFILE_NOT_MET",
        "COVERAGE_INCOMPLETE",
    }


def test_wrapping_added_element_fails_coverage(core_pki: CorePki, tmp_path: Path) -> None:
    signed = tmp_path / "s.dcm"
    assert sign_cli(core_pki, sample("CT_small.dcm"), signed).exit_code == 0
    ds = pydicom.dcmread(signed)
    ds.add_new(0x00324000, "LT", "injected after signing")
    ds.add_new(0x00104000, "LT", "injected patient comments")
    wrapped = tmp_path / "w.dcm"
    ds.save_as(wrapped)
    assert verify_json(wrapped)["exit_code"] == 0  # the signature itself is still intact
    data = verify_json(wrapped, "--require-coverage", "all")
    assert data["exit_code"] == 1
    coverage = [f for f in data["files"][0]["findings"] if f["code"] == "COVERAGE_INCOMPLETE"]
    assert "(0032,4000)" in coverage[0]["message"]
    human = dsig("verify", wrapped, "--integrity-only")
    assert (
        "warning: valid signatures cover only part of the object: 2 present element(s)"
        in human.stdout
    )
    assert "(0010,4000), (0032,4000)" in human.stdout


def _insert_before(data: bytes, marker: bytes, extra: bytes) -> bytes:
    at = data.index(marker)
    return data[:at] + extra + data[at:]


def test_duplicate_element_is_refused_not_verified(core_pki: CorePki, tmp_path: Path) -> None:
    """Wrapping by duplication: pydicom keeps the last of two equal tags, DCMTK the first. A
    forged PatientName before the signed one must not verify VALID anywhere: refused."""
    signed = tmp_path / "s.dcm"
    assert sign_cli(core_pki, sample("CT_small.dcm"), signed).exit_code == 0
    data = signed.read_bytes()
    forged = b"\x10\x00\x10\x00PN\x0c\x00Forged^Name "
    top = tmp_path / "dup-top.dcm"
    top.write_bytes(_insert_before(data, b"\x10\x00\x10\x00PN", forged))
    result = verify_file(top, INTEGRITY)
    assert result.indication is Indication.ERROR and "appears twice" in (result.error or "")
    assert verify_json(top)["exit_code"] == 4
    r = sign_cli(core_pki, top, tmp_path / "o.dcm")
    assert r.exit_code == 4 and "appears twice" in one_line_error(r)
    # inside a sequence item (parsed lazily): (0010,0020) LO twice in OtherPatientIDsSequence
    inner = tmp_path / "dup-item.dcm"
    item_start = data.index(b"\x10\x00\x20\x00LO\x08\x00ABCD1234")
    body = data[:item_start] + b"\x10\x00\x20\x00LO\x08\x00EVIL0000" + data[item_start:]
    inner.write_bytes(body.replace(b"\xfe\xff\x00\xe0\x1c\x00\x00\x00", b"\xfe\xff\x00\xe0\x2c\x00\x00\x00", 1)
                      .replace(b"\x10\x00\x02\x10SQ\x00\x00H\x00\x00\x00", b"\x10\x00\x02\x10SQ\x00\x00X\x00\x00\x00", 1))  # fmt: skip
    result = verify_file(inner, INTEGRITY)
    assert result.indication is Indication.ERROR and "appears twice" in (result.error or "")


def test_partial_coverage_warning_for_item_only_signature(
    core_pki: CorePki, tmp_path: Path
) -> None:
    out = tmp_path / "i.dcm"
    assert sign_cli(core_pki, sample("rtplan.dcm"), out, "--item", "BeamSequence[0]").exit_code == 0
    human = dsig("verify", out, "--integrity-only")
    assert human.exit_code == 0
    assert (
        "ITEM_SIGNATURES_ONLY: valid signatures cover only sequence items (BeamSequence[0]), "
        "not the main data set" in human.stdout
    )
    full = tmp_path / "f.dcm"
    assert sign_cli(core_pki, sample("CT_small.dcm"), full).exit_code == 0
    assert "warning:" not in dsig("verify", full, "--integrity-only").stdout


# --- output safety ------------------------------------------------------------------------------


def test_outputs_never_replace_the_input(core_pki: CorePki, tmp_path: Path) -> None:
    src = tmp_path / "ct.dcm"
    src.write_bytes(sample("CT_small.dcm").read_bytes())
    original = src.read_bytes()
    out = tmp_path / "o.dcm"
    r = sign_cli(core_pki, src, out, "--dump", src)
    assert r.exit_code == 2 and "--dump" in r.stderr and src.read_bytes() == original
    r = sign_cli(core_pki, src, out, "--dump", out)
    assert r.exit_code == 2 and not out.exists()
    assert sign_cli(core_pki, src, out).exit_code == 0
    uid = json.loads(dsig("inspect", out, "--json").stdout)["signatures"][0]["uid"]
    signed = out.read_bytes()
    r = dsig("inspect", out, "--dump-mac", uid, out)
    assert r.exit_code == 2 and out.read_bytes() == signed
    r = dsig("remove", out, out, "--all")
    assert r.exit_code == 2 and out.read_bytes() == signed
    existing = tmp_path / "exists.dcm"
    existing.write_bytes(b"keep")
    r = dsig("remove", out, existing, "--all")
    assert r.exit_code == 2 and existing.read_bytes() == b"keep"
    assert dsig("remove", out, existing, "--all", "--force").exit_code == 0
    assert not list(tmp_path.glob("*.dsig-tmp"))


def test_failed_sign_leaves_no_output_or_temp(core_pki: CorePki, tmp_path: Path) -> None:
    out, dump = tmp_path / "o.dcm", tmp_path / "d.bin"
    r = sign_cli(core_pki, sample("CT_small.dcm"), out, "--dump", dump, "--tag", "(0040,A730)")
    assert r.exit_code == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_atomic_output_keeps_target_on_failure(tmp_path: Path) -> None:
    from dsig.encoding.writer import atomic_output

    target = tmp_path / "t.bin"
    target.write_bytes(b"original")

    def interrupted() -> None:
        with atomic_output(target) as fp:
            fp.write(b"partial")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        interrupted()
    assert target.read_bytes() == b"original"
    assert [p.name for p in tmp_path.iterdir()] == ["t.bin"]


# --- secrets ------------------------------------------------------------------------------------

SECRET = "Pw-7f3a-unlikely-SECRET"

_SPAWN_AUDIT = """
import json, logging, sys
events = []
def hook(event, args):
    if event in ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system"):
        events.append([event, repr(args)])
sys.addaudithook(hook)
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
import atexit
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(events)))
from dsig.cli import main
sys.argv = ["dsig", *sys.argv[2:]]
main()
"""


def _run_audited(
    tmp_path: Path, *args: object, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], str]:
    events = tmp_path / "spawned.json"
    proc = subprocess.run([sys.executable, "-c", _SPAWN_AUDIT, str(events), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, check=False, timeout=120)  # fmt: skip
    assert events.exists(), proc.stderr
    return proc, events.read_text()


def test_password_never_leaks(core_pki: CorePki, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    issued = core_pki.pki.leaf("rsa")
    key_path = tmp_path / "enc.key.pem"
    key_path.write_bytes(issued.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(SECRET.encode())))  # fmt: skip
    env = dict(os.environ, DSIG_PW=SECRET, DSIG_WRONG="wrong-" + SECRET[::-1])
    pw_file = tmp_path / "pw.txt"
    pw_file.write_text(SECRET + "\n")
    out, dump = tmp_path / "o.dcm", tmp_path / "d.bin"
    common = ["--key", key_path, "--cert", core_pki.rsa_cert]
    runs = [
        _run_audited(tmp_path, "sign", sample("CT_small.dcm"), out, *common, "--password-env",
                     "DSIG_PW", "--dump", dump, env=env),
        _run_audited(tmp_path, "sign", sample("CT_small.dcm"), tmp_path / "p.dcm", *common,
                     "--password-file", pw_file, env=env),
        _run_audited(tmp_path, "sign", sample("CT_small.dcm"), tmp_path / "w.dcm", *common,
                     "--password-env", "DSIG_WRONG", env=env),
        _run_audited(tmp_path, "verify", out, "--json", "--integrity-only", env=env),
    ]  # fmt: skip
    assert [p.returncode for p, _ in runs] == [0, 0, 4, 0], [p.stderr for p, _ in runs]
    for proc, spawned in runs:
        for text in (proc.stdout, proc.stderr, spawned):
            assert SECRET not in text and SECRET[::-1] not in text
        assert "Traceback" not in proc.stderr
    assert SECRET.encode() not in dump.read_bytes() and SECRET.encode() not in out.read_bytes()
    # the dump is exactly the MAC stream that the signature signs
    ref = dicom_factory.signature_refs(out)[0]
    assert dicom_factory.signature_matches_stream(ref, dump.read_bytes())


_CORE_LIMITS = """
import atexit, json, resource, sys
resource.setrlimit(resource.RLIMIT_CORE, (1 << 20, 1 << 20))  # core dumps allowed, as a shell may
import dsig, dsig.cli, pki, tokens
seen = {"library": resource.getrlimit(resource.RLIMIT_CORE)}  # importing changes nothing
atexit.register(lambda: print(json.dumps({**seen, "cli": resource.getrlimit(resource.RLIMIT_CORE)})))
sys.argv = ["dsig", *sys.argv[1:]]
dsig.cli.main()
"""


def test_the_command_disables_core_dumps_the_library_does_not(
    core_pki: CorePki, tmp_path: Path
) -> None:
    """A core file of ``dsig sign`` would hold the key password: RLIMIT_CORE is 0 (hard too,
    so nothing later raises it) in the command, before any secret is read; a program that
    imports the library keeps its own limits."""
    pw_file = tmp_path / "pw.txt"
    pw_file.write_text("not-the-password\n")
    proc = subprocess.run([sys.executable, "-c", _CORE_LIMITS, "sign", sample("CT_small.dcm"),
                           tmp_path / "o.dcm", "--key", core_pki.encrypted_key, "--cert",
                           core_pki.rsa_cert, "--password-file", pw_file],
                          capture_output=True, text=True, cwd=ROOT, check=False, timeout=120)  # fmt: skip
    assert proc.returncode == 4, proc.stderr  # the wrong password: read, then refused
    limits = json.loads(proc.stdout.strip().splitlines()[-1])
    assert limits == {"library": [1 << 20, 1 << 20], "cli": [0, 0]}, proc.stdout


def test_password_not_in_exception_text(core_pki: CorePki, tmp_path: Path) -> None:
    import traceback

    from tokens.errors import TokenError
    from tokens.registry import open_key_provider

    with pytest.raises(TokenError) as info:
        open_key_provider(str(core_pki.encrypted_key), cert=core_pki.rsa_cert,
                          password=SECRET.encode())  # fmt: skip
    text = "".join(traceback.format_exception(info.value))
    assert SECRET not in text and repr(SECRET.encode()) not in text


@pytest.mark.softhsm
def test_pin_never_leaks(tmp_path: Path) -> None:
    from tests.helpers.softhsm_fixtures import skip_or_fail_without_softhsm

    skip_or_fail_without_softhsm()
    pin = "Pin-4c1d-unlikely-SECRET"
    provision = (
        "import sys; from pathlib import Path; from tests.helpers.softhsm import provision; "
        "t = provision(Path(sys.argv[1]), 'dsig-secrets', pin=sys.argv[2]); "
        "print(t.conf); print(t.module); print(t.rsa_uri)"
    )
    prov = subprocess.run([sys.executable, "-c", provision, str(tmp_path / "hsm"), pin],
                          capture_output=True, text=True, cwd=ROOT, check=False, timeout=120)  # fmt: skip
    assert prov.returncode == 0, prov.stderr
    conf, module, uri = prov.stdout.split()[:3]
    env = dict(os.environ, SOFTHSM2_CONF=conf, DSIG_PKCS11_MODULE=module, DSIG_PIN=pin,
               DSIG_BAD_PIN=pin[::-1])  # fmt: skip
    out = tmp_path / "o.dcm"
    good = _run_audited(tmp_path, "sign", sample("CT_small.dcm"), out, "--key", uri,
                        "--pin-env", "DSIG_PIN", env=env)  # fmt: skip
    bad = _run_audited(tmp_path, "sign", sample("CT_small.dcm"), tmp_path / "b.dcm", "--key", uri,
                       "--pin-env", "DSIG_BAD_PIN", env=env)  # fmt: skip
    listing = _run_audited(tmp_path, "tokens", "list", env=env)
    assert good[0].returncode == 0, good[0].stderr
    assert bad[0].returncode == 4
    for proc, spawned in (good, bad, listing):
        for text in (proc.stdout, proc.stderr, spawned):
            assert pin not in text and pin[::-1] not in text
    assert pin.encode() not in out.read_bytes()


# --- tamper matrix ------------------------------------------------------------------------------

#: Positions sampled per seed (first, last and random bytes of every covered value, capped).
TAMPER_SAMPLES = 150
TAMPER_STATS: dict[str, int] = {}


def _positions(covered: list[mutations.Covered], rng: random.Random) -> list[tuple[int, int]]:
    picks: set[tuple[int, int]] = set()
    for c in covered:
        picks.add((c.start, c.sig))
        picks.add((c.end - 1, c.sig))
    chosen = rng.sample(sorted(picks), min(len(picks), TAMPER_SAMPLES * 2 // 3))
    big = [c for c in covered if c.end - c.start > 64]
    for _ in range(TAMPER_SAMPLES - len(chosen)):
        c = rng.choice(big or covered)
        chosen.append((rng.randrange(c.start, c.end), c.sig))
    return chosen


@pytest.mark.parametrize("seed", list(mutations.SEEDS))
def test_tamper_matrix(signed_seeds: dict[str, Path], tmp_path: Path, seed: str) -> None:
    path = signed_seeds[seed]
    original = verify_file(path, INTEGRITY)
    assert original.indication is Indication.VALID, original.to_json()
    covered = mutations.covered_ranges(path)
    assert {c.sig for c in covered} == set(range(len(original.signatures)))
    data = path.read_bytes()
    rng = random.Random(f"tamper-{seed}")
    failures = []
    work = tmp_path / "t.dcm"
    for pos, sig in _positions(covered, rng):
        for bit in (0, 7) if pos % 3 == 0 else (rng.randrange(8),):
            work.write_bytes(mutations.flip_bit(data, pos, bit))
            result = verify_file(work, INTEGRITY)
            TAMPER_STATS[seed] = TAMPER_STATS.get(seed, 0) + 1
            if result.error is not None:
                failures.append((pos, bit, "error", result.error))
            elif result.signatures[sig].integrity is not Indication.INVALID:
                failures.append((pos, bit, result.signatures[sig].integrity.value, ""))
    assert not failures, failures[:10]
    print(f"tamper matrix {seed}: {TAMPER_STATS[seed]} single-bit changes in covered values")


REENCODINGS = {
    "explicit-lengths": Encoding(ExplicitVRLittleEndian, "explicit"),
    "undefined-lengths": Encoding(ExplicitVRLittleEndian, "undefined"),
    "big-endian": Encoding(ExplicitVRBigEndian, "undefined"),
    "deflated": Encoding(DeflatedExplicitVRLittleEndian, None),
}


@pytest.mark.parametrize("seed", list(mutations.SEEDS))
def test_legal_reencodings_keep_signatures_valid(
    signed_seeds: dict[str, Path], tmp_path: Path, seed: str
) -> None:
    path = signed_seeds[seed]
    n = len(verify_file(path, INTEGRITY).signatures)
    compressed = seed == "jpeg"
    outputs = []
    for name, encoding in REENCODINGS.items():
        if compressed and name in ("big-endian", "deflated"):
            continue  # compressed pixel data stays in its own transfer syntax
        if compressed:
            encoding = Encoding(str(read_dicom(path).file_meta.TransferSyntaxUID), encoding.lengths)
        out = tmp_path / f"{name}.dcm"
        save(read_dicom(path), out, encoding)
        outputs.append(out)
    if not compressed:
        padded = tmp_path / "group-lengths-padding.dcm"
        dicom_factory.with_group_lengths_and_padding(path, padded)
        outputs.append(padded)
        stripped = tmp_path / "group-lengths-removed.dcm"
        save(read_dicom(padded), stripped, Encoding(ExplicitVRLittleEndian, "undefined"))
        outputs.append(stripped)
    else:
        padded = tmp_path / "trailing-padding.dcm"
        padded.write_bytes(
            path.read_bytes() + b"\xfc\xff\xfc\xffOB\x00\x00\x10\x00\x00\x00" + b"\x00" * 16
        )
        outputs.append(padded)
    for out in outputs:
        result = verify_file(out, INTEGRITY)
        assert result.indication is Indication.VALID, (out.name, result.to_json())
        assert len(result.signatures) == n, out.name
