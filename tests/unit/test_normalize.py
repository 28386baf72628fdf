"""Issue 12, without DCMTK: signing normalises the string values it signs as DCMTK reads them
(dsig.encoding.normalize), and nothing else; verification hashes the stored bytes.

The interop side (dcmsign accepts what dsig signs, and refuses the un-normalised stored
bytes) is tests/interop/test_oddities.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dsig.encoding.normalize import STRING_VRS, dcmtk_string
from dsig.encoding.reader import read_dicom
from dsig.encoding.writer import save, target_encoding
from dsig.operations.signer import SignOptions, add_signature
from dsig.operations.verifier import VerifyOptions, verify_file
from tests.helpers.oddities import PADDED_STRINGS
from tests.helpers.pki_factory import build_pki
from tests.helpers.rawdicom import EXPLICIT_LE, basic_dataset, element, item, meta, part10, sequence
from tokens import open_key_provider
from tokens.api import KeyProvider

UID = "1.2.826.0.1.3680043.9.7433.40"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyProvider]:
    key_path, cert_path = build_pki().leaf("rsa").write(tmp_path_factory.mktemp("pki"), "rsa")
    provider = open_key_provider(str(key_path), cert=cert_path, password=None)
    yield provider
    provider.close()


@pytest.mark.parametrize(
    ("vr", "stored", "read"),
    [
        ("CS", b"DERIVED \\SECONDARY\\OTHER  ", b"DERIVED \\SECONDARY\\OTHER"),  # 26 -> 24
        ("SH", b"  ", b""),  # only padding: empty
        ("LO", b"General Hospital" + b" " * 10, b"General Hospital"),
        ("TM", b" 101010 ", b" 101010 "),  # a leading space is kept, odd length re-padded
        ("DS", b" 2.5 \\ 3.0  ", b" 2.5 \\ 3.0"),  # spaces around a backslash are kept
        ("LO", b"Proc \x00 \x00", b"Proc"),  # trailing NULs and spaces mixed (DCMTK 3.7)
        ("ST", b"ab\x00", b"ab"),
        ("LT", b"text", b"text"),  # already normalised: unchanged
        ("UI", b" 1.2.3 .4\x00\x00", b"1.2.3.4\x00"),  # white space anywhere, NUL pad
        ("UI", b"1.2.3\t\x00", b"1.2.3\x00"),
        ("UI", b"1.22\x00\x00", b"1.22"),
        ("AE", b"SCP ", b"SCP "),  # odd content: one pad byte stays
        ("LO", b"\x00\x00General  ", b"\x00\x00General "),  # leading NULs kept, as spaces
        ("CS", b"\x00A\\\x00B ", b"\x00A\\\x00B "),  # and after a backslash
        ("LO", b"\x00 \x00 ", b""),  # NULs and spaces only: empty
    ],
)
def test_the_rule_is_dcmtks(vr: str, stored: bytes, read: bytes) -> None:
    assert vr in STRING_VRS
    assert dcmtk_string(stored, vr) == read
    assert dcmtk_string(read, vr) == read  # what dsig writes reads back unchanged


def test_only_string_vrs_are_normalised() -> None:
    assert sorted(STRING_VRS) == sorted(
        "AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT".split()
    )  # the DcmByteString subclasses of dcmdata (dcvr*.h); OB/UN/SQ... are not strings


def _file(tmp_path: Path, extra: list[tuple[int, str, bytes]]) -> Path:
    src = tmp_path / "src.dcm"
    src.write_bytes(part10(meta(EXPLICIT_LE, UID), basic_dataset(UID, extra=extra)))
    return src


def _signed(src: Path, key: KeyProvider, out: Path, **kw: object) -> tuple[bytes, tuple[str, ...]]:
    ds = read_dicom(src)
    info = add_signature(ds, key, SignOptions(**kw))  # type: ignore[arg-type]
    save(ds, out, target_encoding(ds, "same", None))
    return out.read_bytes(), info.normalized


def test_values_outside_the_signed_set_stay_as_stored(tmp_path: Path, key: KeyProvider) -> None:
    src = _file(tmp_path, list(PADDED_STRINGS))
    body, touched = _signed(src, key, tmp_path / "out.dcm", tags=[0x00080008, 0x00080080])
    assert touched == ("(0008,0008)", "(0008,0080)")
    # signed: normalised in the output
    assert element(0x00080008, "CS", b"DERIVED \\SECONDARY\\OTHER") in body
    assert element(0x00080080, "LO", b"General Hospital") in body
    assert b"OTHER  " not in body and b"Hospital " not in body
    # not signed: every other padded value is written byte for byte as stored
    for tag, vr, value in PADDED_STRINGS:
        if tag not in (0x00080008, 0x00080080):
            assert element(tag, vr, value) in body, f"{tag:08X} changed"
    result = verify_file(tmp_path / "out.dcm", VerifyOptions(integrity_only=True))
    assert [s.indication.value for s in result.signatures] == ["VALID"]


def test_values_in_items_of_a_signed_sequence_are_normalised(
    tmp_path: Path, key: KeyProvider
) -> None:
    seq = sequence(0x00400275, [item(element(0x00400007, "LO", b"desc      ")
                                     + element(0x00400009, "SH", b"SPS1"))])  # fmt: skip
    src = _file(tmp_path, [(0x00400275, "RAW", seq), (0x00081030, "LO", b"kept  ")])
    body, touched = _signed(src, key, tmp_path / "out.dcm", tags=[0x00400275])
    assert touched == ("(0040,0275)[0](0040,0007)",)
    assert element(0x00400007, "LO", b"desc") in body
    assert element(0x00081030, "LO", b"kept  ") in body  # outside the signed set


def test_verification_hashes_the_stored_bytes(tmp_path: Path, key: KeyProvider) -> None:
    """A signature another tool made over the un-normalised values verifies; re-padding a
    value after signing breaks it (the stored bytes are what is checked)."""
    src = _file(tmp_path, list(PADDED_STRINGS))
    body, touched = _signed(src, key, tmp_path / "stored.dcm", normalize_strings=False)
    assert touched == ()
    padded = element(0x00080080, "LO", b"General Hospital" + b" " * 10)
    assert padded in body
    ok = verify_file(tmp_path / "stored.dcm", VerifyOptions(integrity_only=True))
    assert [s.indication.value for s in ok.signatures] == ["VALID"]
    # the same value as DCMTK reads it is no longer what was signed
    (tmp_path / "repadded.dcm").write_bytes(
        body.replace(padded, element(0x00080080, "LO", b"General Hospital" + b" " * 8))
    )
    bad = verify_file(tmp_path / "repadded.dcm", VerifyOptions(integrity_only=True))
    assert [s.indication.value for s in bad.signatures] == ["INVALID"]
