"""The CLI contract of the core issue: commands, options, exit codes, JSON, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydicom
import pytest
from typer.testing import CliRunner

from dsig.cli import app
from tests.conftest import CorePki, sample

runner = CliRunner()


def dsig(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def sign(core_pki: CorePki, src: Path, dst: Path, *extra: object, key: str = "rsa") -> Any:
    k, c = (
        (core_pki.rsa_key, core_pki.rsa_cert)
        if key == "rsa"
        else (core_pki.ec_key, core_pki.ec_cert)
    )
    result = dsig("sign", src, dst, "--key", k, "--cert", c, "--no-password", *extra)
    return result


def report(path: Path, *extra: object) -> dict[str, Any]:
    result = dsig("verify", path, "--json", "--integrity-only", *extra)
    data: dict[str, Any] = json.loads(result.stdout)
    data["exit_code"] = result.exit_code
    return data


def only_signature(data: dict[str, Any]) -> dict[str, Any]:
    sigs = data["files"][0]["signatures"]
    assert len(sigs) == 1
    return sigs[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("mac", ["sha256", "sha384", "sha512", "ripemd160", "sha1", "md5"])
@pytest.mark.parametrize("key", ["rsa", "ec"])
def test_sign_verify_all_macs_and_keys(
    core_pki: CorePki, tmp_path: Path, mac: str, key: str
) -> None:
    out = tmp_path / "signed.dcm"
    weak_ok = ("--allow-weak", mac) if mac in ("sha1", "md5") else ()
    assert (
        sign(core_pki, sample("CT_small.dcm"), out, "--mac", mac, *weak_ok, key=key).exit_code == 0
    )
    data = report(out)
    sig = only_signature(data)
    assert data["exit_code"] == 0
    assert sig["integrity"] == "VALID" and sig["mac_algorithm"] == mac.upper()
    weak = any(f["code"] == "WEAK_ALGORITHM" for f in sig["findings"])
    assert weak == (mac in ("sha1", "md5"))
    assert ("base" in sig["profiles"]) == (key == "rsa")  # profiles are RSA only


def test_json_schema_and_trust_not_checked_is_indeterminate(
    core_pki: CorePki, tmp_path: Path
) -> None:
    out = tmp_path / "s.dcm"
    sign(core_pki, sample("reportsi.dcm"), out, "--purpose", "1")
    result = dsig("verify", out, "--json")
    assert result.exit_code == 3  # trust not checked and not --integrity-only
    data = json.loads(result.stdout)
    file = data["files"][0]
    assert set(file) >= {"path", "indication", "error", "signatures"}
    sig = file["signatures"][0]
    assert set(sig) >= {
        "uid", "location", "mac_id", "mac_algorithm", "mac_transfer_syntax", "datetime", "signer",
        "purpose", "integrity", "trust", "timestamp", "profiles", "signed_tags", "unsigned_tags",
        "findings", "indication",
    }  # fmt: skip
    assert sig["trust"]["indication"] == "NOT_CHECKED"
    assert sig["trust"]["findings"][0]["code"] == "TRUST_NOT_CHECKED"
    assert sig["indication"] == "INDETERMINATE" and file["indication"] == "INDETERMINATE"
    assert sig["purpose"] == {
        "code": "1",
        "scheme": "ASTM-sigpurpose",
        "meaning": "Author's Signature",
    }
    assert data["summary"]["indeterminate"] == 1


def test_tampering_fails_and_adding_unsigned_element_is_reported(
    core_pki: CorePki, tmp_path: Path
) -> None:
    out = tmp_path / "s.dcm"
    sign(core_pki, sample("CT_small.dcm"), out)
    ds = pydicom.dcmread(out)
    ds.PatientName = "Tampered^Name"
    tampered = tmp_path / "t.dcm"
    ds.save_as(tampered)
    data = report(tampered)
    assert data["exit_code"] == 1
    assert only_signature(data)["findings"][0]["code"] == "MAC_MISMATCH"

    ds = pydicom.dcmread(out)
    assert 0x00324000 not in ds
    ds.add_new(0x00324000, "LT", "added later")  # StudyComments
    added = tmp_path / "a.dcm"
    ds.save_as(added)
    data = report(added)
    assert data["exit_code"] == 0
    # CT_small.dcm's zero-byte trailing padding is listed only in the file's "uncovered"
    assert only_signature(data)["unsigned_tags"] == ["(0032,4000)"]
    assert data["files"][0]["uncovered"] == ["(0032,4000)", "(FFFC,FFFC)"]


def test_tag_selection_and_item_signature(core_pki: CorePki, tmp_path: Path) -> None:
    tag_file = tmp_path / "tags.txt"
    tag_file.write_text("# tags\nStudyInstanceUID (0020,000E)\n")
    out = tmp_path / "s.dcm"
    r = sign(core_pki, sample("rtplan.dcm"), out, "--tag", "SOPInstanceUID", "--tag", "0008,0016",
             "--tag-file", tag_file)  # fmt: skip
    assert r.exit_code == 0, r.output
    sig = only_signature(report(out))
    assert sig["signed_tags"] == ["(0008,0016)", "(0008,0018)", "(0020,000D)", "(0020,000E)"]
    assert "(0010,0010)" in sig["unsigned_tags"]

    nested = tmp_path / "n.dcm"
    r = sign(core_pki, out, nested, "--item", "BeamSequence[0]", "--purpose", "5")
    assert r.exit_code == 0, r.output
    again = tmp_path / "n2.dcm"
    assert sign(core_pki, nested, again, "--item", "(300A,00B0)[0]").exit_code == 0
    data = report(again)
    sigs = data["files"][0]["signatures"]
    assert [s["location"] for s in sigs] == ["", "BeamSequence[0]", "BeamSequence[0]"]
    assert all(s["integrity"] == "VALID" for s in sigs)
    assert len({s["mac_id"] for s in sigs}) == 3  # unique in the whole instance


@pytest.mark.parametrize(
    ("xfer", "lengths"),
    [("big", "undefined"), ("implicit", "explicit"), ("little", "undefined"), ("same", "explicit")],
)
def test_output_transfer_syntax_and_lengths(
    core_pki: CorePki, tmp_path: Path, xfer: str, lengths: str
) -> None:
    out = tmp_path / "s.dcm"
    r = sign(core_pki, sample("reportsi.dcm"), out, "--write-xfer", xfer, "--lengths", lengths)
    assert r.exit_code == 0, r.output
    expected = {"big": "1.2.840.10008.1.2.2", "implicit": "1.2.840.10008.1.2",
                "little": "1.2.840.10008.1.2.1", "same": "1.2.840.10008.1.2.1"}[xfer]  # fmt: skip
    assert pydicom.dcmread(out).file_meta.TransferSyntaxUID == expected
    sig = only_signature(report(out))
    assert sig["integrity"] == "VALID"
    assert sig["mac_transfer_syntax"] == "1.2.840.10008.1.2.1"


def test_old_format_needs_format_old(core_pki: CorePki, tmp_path: Path) -> None:
    out = tmp_path / "old.dcm"
    assert sign(core_pki, sample("JPEG-lossy.dcm"), out, "--format", "old").exit_code == 0
    data = report(out)
    assert data["exit_code"] == 1
    finding = only_signature(data)["findings"][0]
    assert finding["code"] == "LEGACY_FORMAT" and "--" not in finding["message"]
    human = dsig("verify", out, "--integrity-only").stdout  # the CLI names its flag
    assert f"LEGACY_FORMAT: {finding['message']} (use --format-old)" in human
    assert report(out, "--format-old")["exit_code"] == 0


def test_multiframe_multifragment_jpeg_and_fragment_tamper(
    core_pki: CorePki, tmp_path: Path
) -> None:
    from tests.helpers.dicom_factory import multiframe_multifragment_jpeg

    src = multiframe_multifragment_jpeg(tmp_path / "mf.dcm", frames=4)
    out = tmp_path / "s.dcm"
    assert sign(core_pki, src, out).exit_code == 0
    assert report(out)["exit_code"] == 0
    data = bytearray(out.read_bytes())
    pos = data.rindex(b"\xff\xd9") - 10  # a byte inside the last JPEG fragment
    data[pos] ^= 0x01
    (tmp_path / "t.dcm").write_bytes(bytes(data))
    assert report(tmp_path / "t.dcm")["exit_code"] == 1


def test_dump_equals_inspect_dump_mac(core_pki: CorePki, tmp_path: Path) -> None:
    out, dump, again = tmp_path / "s.dcm", tmp_path / "sign.bin", tmp_path / "inspect.bin"
    assert sign(core_pki, sample("waveform_ecg.dcm"), out, "--dump", dump).exit_code == 0
    listing = json.loads(dsig("inspect", out, "--json").stdout)
    uid = listing["signatures"][0]["uid"]
    assert dsig("inspect", out, "--dump-mac", uid, again).exit_code == 0
    assert dump.read_bytes() == again.read_bytes() and len(dump.read_bytes()) > 280_000


def test_remove_one_and_all(core_pki: CorePki, tmp_path: Path) -> None:
    a, b = tmp_path / "a.dcm", tmp_path / "b.dcm"
    sign(core_pki, sample("rtplan.dcm"), a, "--item", "BeamSequence[0]")
    sign(core_pki, a, b)
    uids = [s["uid"] for s in report(b)["files"][0]["signatures"]]
    one = tmp_path / "one.dcm"
    assert dsig("remove", b, one, "--uid", uids[1]).exit_code == 0
    assert [s["uid"] for s in report(one)["files"][0]["signatures"]] == [uids[0]]
    none = tmp_path / "none.dcm"
    assert dsig("remove", b, none, "--all").exit_code == 0
    ds = pydicom.dcmread(none)
    assert 0xFFFAFFFA not in ds and 0x4FFE0001 not in ds
    assert 0xFFFAFFFA not in ds.BeamSequence[0] and 0x4FFE0001 not in ds.BeamSequence[0]
    assert report(none)["files"][0]["indication"] == "UNSIGNED"
    r = dsig("remove", none, tmp_path / "x.dcm", "--all")
    assert r.exit_code == 4 and "no signature" in r.stderr


def test_in_place_and_output_safety(core_pki: CorePki, tmp_path: Path) -> None:
    src = tmp_path / "ct.dcm"
    src.write_bytes(sample("CT_small.dcm").read_bytes())
    original = src.read_bytes()
    r = sign(core_pki, src, src)
    assert r.exit_code == 2 and "--in-place" in r.stderr
    out = tmp_path / "out.dcm"
    out.write_bytes(b"keep me")
    r = sign(core_pki, src, out)
    assert r.exit_code == 2 and out.read_bytes() == b"keep me"
    assert src.read_bytes() == original
    r = dsig(
        "sign",
        src,
        "--in-place",
        "--key",
        core_pki.rsa_key,
        "--cert",
        core_pki.rsa_cert,
        "--no-password",
    )
    assert r.exit_code == 0
    assert report(src)["exit_code"] == 0
    assert not list(tmp_path.glob("*.dsig-tmp"))


def test_many_inputs_to_out_dir(core_pki: CorePki, tmp_path: Path) -> None:
    indir = tmp_path / "in" / "sub"
    indir.mkdir(parents=True)
    for name in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm"):
        (indir / name).write_bytes(sample(name).read_bytes())
    r = dsig("sign", tmp_path / "in", "--out-dir", tmp_path / "out", "--recursive",
             "--key", core_pki.rsa_key, "--cert", core_pki.rsa_cert, "--no-password")  # fmt: skip
    assert r.exit_code == 0, r.output
    outs = sorted((tmp_path / "out").rglob("*.dcm"))
    assert [p.name for p in outs] == ["CT_small.dcm", "JPEG2000.dcm", "MR_small.dcm"]
    assert dsig("verify", tmp_path / "out", "--recursive", "--integrity-only").exit_code == 0


def test_encrypted_key_password_sources(
    core_pki: CorePki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pw = tmp_path / "pw"
    pw.write_text(core_pki.password + "\n")
    base = [
        "sign",
        sample("CT_small.dcm"),
        "--key",
        core_pki.encrypted_key,
        "--cert",
        core_pki.rsa_cert,
    ]
    assert dsig(*base[:2], tmp_path / "a.dcm", *base[2:], "--password-file", pw).exit_code == 0
    monkeypatch.setenv("DSIG_TEST_PW", core_pki.password)
    assert (
        dsig(*base[:2], tmp_path / "b.dcm", *base[2:], "--password-env", "DSIG_TEST_PW").exit_code
        == 0
    )
    monkeypatch.setenv("DSIG_TEST_PW", "wrong")
    r = dsig(*base[:2], tmp_path / "c.dcm", *base[2:], "--password-env", "DSIG_TEST_PW")
    assert r.exit_code == 4 and "password" in r.stderr and "wrong\n" not in r.stderr
    r = dsig(*base[:2], tmp_path / "d.dcm", *base[2:])  # no terminal to prompt on
    assert r.exit_code == 4 and "--password-file" in r.stderr
    assert not (tmp_path / "c.dcm").exists() and not (tmp_path / "d.dcm").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tag", "NoSuchKeyword"], "unknown tag"),
        (["--tag", "(0040,A730)"], "not present"),
        (["--item", "BeamSequence[0"], "bad location"),
        (["--item", "ReferencedImageSequence[7]"], "no sequence"),
        (["--profile", "sr"], "SR"),
        (["--purpose", "42"], "purpose"),
        (["--write-xfer", "implicit"], None),
    ],
)
def test_bad_signing_input_is_one_line_exit_4(
    core_pki: CorePki, tmp_path: Path, extra: list[str], message: str | None
) -> None:
    src = sample("JPEG-lossy.dcm") if "--write-xfer" in extra else sample("CT_small.dcm")
    r = sign(core_pki, src, tmp_path / "o.dcm", *extra)
    assert r.exit_code == 4, r.output
    assert r.stderr.startswith("dsig: error: ") and r.stderr.count("\n") == 1
    if message:
        assert message.lower() in r.stderr.lower()
    assert not (tmp_path / "o.dcm").exists()


def test_key_certificate_mismatch(core_pki: CorePki, tmp_path: Path) -> None:
    r = dsig("sign", sample("CT_small.dcm"), tmp_path / "o.dcm", "--key", core_pki.rsa_key,
             "--cert", core_pki.ec_cert, "--no-password")  # fmt: skip
    assert r.exit_code == 4 and "does not match" in r.stderr


def test_an_inconsistent_rsa_key_does_not_sign(core_pki: CorePki, tmp_path: Path) -> None:
    # Key files load without OpenSSL's slow consistency check: a key whose public part matches
    # the certificate but whose private exponent is wrong must still never sign.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    good = serialization.load_pem_private_key(Path(core_pki.rsa_key).read_bytes(), None)
    assert isinstance(good, rsa.RSAPrivateKey)
    n = good.private_numbers()
    d = n.d ^ 2  # no longer the inverse of e
    broken = rsa.RSAPrivateNumbers(
        n.p, n.q, d, d % (n.p - 1), d % (n.q - 1), n.iqmp, n.public_numbers
    ).private_key(unsafe_skip_rsa_key_validation=True)
    key = tmp_path / "broken.key.pem"
    key.write_bytes(
        broken.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    r = dsig("sign", sample("CT_small.dcm"), tmp_path / "o.dcm", "--key", key,
             "--cert", core_pki.rsa_cert, "--no-password")  # fmt: skip
    assert r.exit_code == 4, r.output
    assert r.stderr.count("\n") == 1 and "inconsistent" in r.stderr
    assert not (tmp_path / "o.dcm").exists()
    # the provider itself refuses, whoever calls it (the CLI's probe signature is not needed)
    import tokens
    from tokens.files import FileKeyProvider

    provider = FileKeyProvider.from_files(key, Path(core_pki.rsa_cert))
    with pytest.raises(tokens.KeyLoadError, match="inconsistent"):
        provider.sign_digest(tokens.Digest(tokens.HashAlgorithm.SHA256, bytes(32)))


def test_not_dicom_and_truncated_are_errors(core_pki: CorePki, tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"hello world, not dicom at all" * 10)
    signed = tmp_path / "s.dcm"
    sign(core_pki, sample("CT_small.dcm"), signed)
    trunc = tmp_path / "trunc.dcm"
    trunc.write_bytes(signed.read_bytes()[:20000])
    for bad in (junk, trunc, tmp_path / "missing.dcm"):
        data = report(bad)
        assert data["exit_code"] == 4
        assert data["files"][0]["indication"] == "ERROR" and data["files"][0]["error"]
    r = sign(core_pki, trunc, tmp_path / "o.dcm")
    assert r.exit_code == 4 and "truncated" in r.stderr


def test_require_options(core_pki: CorePki, tmp_path: Path) -> None:
    out = tmp_path / "s.dcm"
    sign(core_pki, sample("CT_small.dcm"), out, "--profile", "creator")
    assert report(out, "--require", "creator")["exit_code"] == 0
    assert report(out, "--require", "sr")["exit_code"] == 1
    unsigned = report(sample("CT_small.dcm"), "--require", "signature")
    assert unsigned["exit_code"] == 1
    assert unsigned["files"][0]["findings"][0]["code"] == "SIGNATURE_REQUIRED"
    assert report(sample("CT_small.dcm"))["exit_code"] == 0  # unsigned, nothing required


def test_purposes_table() -> None:
    r = dsig("purposes", "--json")
    table = json.loads(r.stdout)
    assert [p["code"] for p in table] == list(range(1, 19))
    assert table[4]["meaning"] == "Verification Signature"


def test_console_script_has_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "dsig", "verify", str(tmp_path / "nope.dcm")],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 4 and "Traceback" not in proc.stderr + proc.stdout
