"""Issue 12: dcmsign parity on the vendor-oddities corpus (tests/helpers/oddities.py).

For every file of the corpus, in both directions:

* dsig signs (``--dump``) -> ``dcmsign --verify`` accepts the signature;
* dcmsign signs (``+d``) -> dsig verifies it VALID and ``dsig inspect --dump-mac`` rebuilds
  dcmsign's stream byte for byte;
* dsig's stream (data-element part) equals dcmsign's ``+d`` stream when dcmsign signs the same
  elements: of the original file, and of dsig's output (where the stored values are already
  normalised; the two only differ for the values DCMTK 3.6.7 keeps, see
  ``Oddity.dcmtk_367_differs``, and there dcmsign 3.6.7's stream is rebuilt exactly from the
  stored values by 3.6.7's rule, so the difference is that rule and nothing else).

Plus the reason for normalising: a signature over the stored padded bytes is refused by
dcmsign ("corrupted").
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag

from dsig.encoding.normalize import STRING_VRS, dcmtk_string
from dsig.encoding.reader import read_dicom
from dsig.encoding.values import element_vr, le_value, stored
from dsig.encoding.writer import save, target_encoding
from dsig.operations.signer import SignOptions, add_signature
from tests.helpers import dcmtk, dicom_factory
from tests.helpers.oddities import CORPUS_NAMES, PADDED_STRINGS, Oddity, build_corpus
from tests.helpers.rawdicom import (
    EXPLICIT_LE,
    UNDEFINED,
    basic_dataset,
    element,
    item,
    meta,
    part10,
    sequence,
)
from tests.interop.conftest import Dsig, PkiFiles
from tests.property import mutations


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Oddity]:
    built = {o.name: o for o in build_corpus(tmp_path_factory.mktemp("oddities"))}
    assert set(built) == set(CORPUS_NAMES)
    return built


def _last_ref(path: Path) -> dicom_factory.SigRef:
    return dicom_factory.signature_refs(read_dicom(path))[-1]


def _tags(ref: dicom_factory.SigRef) -> list[str]:
    return [f"{t >> 16:04x},{t & 0xFFFF:04x}" for t in ref.signed_tags]


def _dcmsign_data_stream(src: Path, out: Path, pki: PkiFiles, tags: list[str],
                         read: tuple[str, ...] = ()) -> bytes:  # fmt: skip
    dump = out.with_suffix(".dump")
    dcmtk.dcmsign_sign(src, out, pki.rsa.key, pki.rsa.cert, mac="sha256", tags=tags, dump=dump,
                       extra=read)  # fmt: skip
    data, _ = dicom_factory.split_stream(dump.read_bytes(), _last_ref(out).item)
    return data


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_dsig_signs_dcmsign_verifies(
    corpus: dict[str, Oddity], name: str, dsig: Dsig, pki: PkiFiles, tmp_path: Path
) -> None:
    odd = corpus[name]
    out, dump = tmp_path / "dsig.dcm", tmp_path / "dsig.dump"
    dsig.sign(odd.path, out, pki.rsa, dump=dump, extra=odd.dsig_read)
    ok, output = dcmtk.dcmsign_verify(out)
    assert ok, output
    ref = _last_ref(out)
    assert dicom_factory.signature_matches_stream(ref, dump.read_bytes())
    ours, _ = dicom_factory.split_stream(dump.read_bytes(), ref.item)
    # dcmsign over dsig's output (normalised values): the same stream
    assert ours == _dcmsign_data_stream(out, tmp_path / "re.dcm", pki, _tags(ref))
    # dcmsign over the original, reading it the same way
    theirs = _dcmsign_data_stream(
        odd.path, tmp_path / "orig.dcm", pki, _tags(ref), odd.dcmsign_read
    )
    if odd.dcmtk_367_differs and " v3.6." in dcmtk.dcmsign_version():
        assert ours != theirs  # documented: DCMTK 3.6.x keeps NUL-stopped padding
        # ... and the difference is exactly 3.6.7's rule, applied to the stored values
        as_367 = _stream_as_dcmtk_367(odd.path, ref.signed_tags, pki)
        assert as_367 == theirs, dicom_factory.first_difference(as_367, theirs)
    else:
        assert ours == theirs, dicom_factory.first_difference(ours, theirs)


def _dcmtk_367_string(value: bytes, vr: str) -> bytes:
    """A stored string value as DCMTK 3.6.7 reads it (dcbytstr.cc / dcvrui.cc at tag
    DCMTK-3.6.7): ``postLoadValue`` makes an odd length even with a NUL, UI loses white
    space, only the padding character is stripped (a NUL stops it), an odd length is
    padded again."""
    pad = b"\x00" if vr == "UI" else b" "
    if len(value) % 2:
        value += b"\x00"
    if vr == "UI":
        value = bytes(b for b in value if b not in b" \t\n\v\f\r")
    value = value.rstrip(pad)
    return value + pad if len(value) % 2 else value


def _stream_as_dcmtk_367(src: Path, tags: list[int], pki: PkiFiles) -> bytes:
    """dsig's data-element stream over ``src`` with its top-level string values read as
    DCMTK 3.6.7 reads them (and hashed as they then are)."""
    ds = read_dicom(src)
    for tag in tags:
        elem = stored(ds, tag, keep_deferred=False)
        vr = element_vr(ds, tag, ())
        if vr in STRING_VRS:  # the stored bytes (le_value would pad an odd length already)
            raw = (
                bytes(elem.value or b"") if isinstance(elem, RawDataElement) else le_value(elem, vr)
            )
            value = _dcmtk_367_string(raw, vr)
            ds._dict[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, len(value), value, 0,
                                                    False, True)  # fmt: skip
    stream = io.BytesIO()
    key = mutations.open_key(pki.rsa.key, pki.rsa.cert)
    try:
        options = SignOptions(tags=tags, normalize_strings=False, dump_sinks=[stream.write])
        add_signature(ds, key, options)
    finally:
        key.close()
    item = dicom_factory.signature_refs(ds)[-1].item
    return dicom_factory.split_stream(stream.getvalue(), item)[0]


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_dcmsign_signs_dsig_verifies(
    corpus: dict[str, Oddity], name: str, dsig: Dsig, pki: PkiFiles, tmp_path: Path
) -> None:
    odd = corpus[name]
    out, dump = tmp_path / "dcmtk.dcm", tmp_path / "dcmtk.dump"
    dcmtk.dcmsign_sign(odd.path, out, pki.rsa.key, pki.rsa.cert, mac="sha256", dump=dump,
                       extra=odd.dcmsign_read)  # fmt: skip
    result = dsig.verify_one(out)
    result.assert_valid(1)
    uid = _last_ref(out).uid
    assert dsig.dump_mac(out, uid, tmp_path / "ours.dump") == dump.read_bytes()


def test_stored_padding_unnormalised_is_refused_by_dcmsign(
    corpus: dict[str, Oddity], pki: PkiFiles, tmp_path: Path
) -> None:
    """Why signing normalises: the stored bytes are not what dcmsign hashes."""
    key = mutations.open_key(pki.rsa.key, pki.rsa.cert)
    try:
        for normalise, expect_ok in ((False, False), (True, True)):
            ds = read_dicom(corpus["padded-explicit-le"].path)
            info = add_signature(ds, key, SignOptions(normalize_strings=normalise))
            assert bool(info.normalized) == normalise
            out = tmp_path / f"n{normalise}.dcm"
            save(ds, out, target_encoding(ds, "same", None))
            ok, output = dcmtk.dcmsign_verify(out)
            assert ok == expect_ok, output
            if not expect_ok:
                assert "corrupted" in output
    finally:
        key.close()


def test_sign_says_how_many_values_it_normalised_and_json_lists_them(
    corpus: dict[str, Oddity], dsig: Dsig, pki: PkiFiles, tmp_path: Path
) -> None:
    src = corpus["padded-explicit-le"].path
    expected = sorted(
        f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        for tag, vr, value in PADDED_STRINGS
        if dcmtk_string(value, vr) != value
    )
    assert len(expected) == 16  # every padded VR but AS (already even, no padding)
    human = dsig.sign_proc(src, tmp_path / "h.dcm", pki.rsa)
    assert human.returncode == 0, human.stderr
    lines = [line for line in human.stdout.splitlines() if "normalised" in line]
    assert len(lines) == 1 and f"normalised {len(expected)} signed string value" in lines[0]
    machine = dsig.sign_proc(src, tmp_path / "j.dcm", pki.rsa, extra=["--json"])
    assert machine.returncode == 0, machine.stderr
    (entry,) = json.loads(machine.stdout)["files"]
    assert entry["normalized"] == expected
    # an already normalised input: nothing touched, nothing said
    again = dsig.sign_proc(tmp_path / "h.dcm", tmp_path / "again.dcm", pki.rsa, extra=["--json"])
    assert json.loads(again.stdout)["files"][0]["normalized"] == []


def test_stored_padding_signed_by_another_tool_verifies(
    corpus: dict[str, Oddity], dsig: Dsig, pki: PkiFiles, tmp_path: Path
) -> None:
    """Verification hashes the stored bytes: a signature over un-normalised values holds."""
    key = mutations.open_key(pki.rsa.key, pki.rsa.cert)
    try:
        ds = read_dicom(corpus["padded-explicit-le"].path)
        add_signature(ds, key, SignOptions(normalize_strings=False))
    finally:
        key.close()
    out = tmp_path / "stored.dcm"
    save(ds, out, target_encoding(ds, "same", None))
    assert b"General Hospital" + b" " * 10 in out.read_bytes()  # still padded as stored
    dsig.verify_one(out).assert_valid(1)


@pytest.mark.parametrize(
    ("name", "extra", "named"),
    [
        ("cp246-truncated", element(0x00400275, "UN", item(element(0x00400007, "LO", b"ab",
                                    implicit=True), undefined=True), length=UNDEFINED),
         "UN sequence (CP-246) (0040,0275) is malformed"),
        ("cp246-explicit-inside", sequence(0x00081140, [item(element(0x00081150, "UI", b"1.2\x00"))],
                                           vr="UN"), "UN sequence (CP-246) (0008,1140) is malformed"),
    ],
)  # fmt: skip
def test_malformed_un_sequence_is_an_error_naming_the_tag(
    dsig: Dsig, pki: PkiFiles, tmp_path: Path, name: str, extra: bytes, named: str
) -> None:
    """dcmsign refuses these too; dsig's one line names the element."""
    uid = "1.2.826.0.1.3680043.9.7433.20"
    src = tmp_path / f"{name}.dcm"
    tag = int.from_bytes(extra[:2], "little") << 16 | int.from_bytes(extra[2:4], "little")
    src.write_bytes(part10(meta(EXPLICIT_LE, uid), basic_dataset(uid, extra=[(tag, "RAW", extra)])))
    assert dcmtk.dcmsign_sign(src, tmp_path / "d.dcm", pki.rsa.key, pki.rsa.cert,
                              check=False).returncode != 0  # fmt: skip
    for proc in (dsig.sign_proc(src, tmp_path / "s.dcm", pki.rsa), dsig.run("verify", src)):
        assert proc.returncode == 4
        assert named in proc.stderr + proc.stdout and "Traceback" not in proc.stderr


def test_un_charset_with_nul_bytes_is_read_as_dcmsign_reads_it(
    dsig: Dsig, pki: PkiFiles, tmp_path: Path
) -> None:
    """A UN Specific Character Set holding NULs is an unknown charset (default repertoire),
    not an internal ValueError; both directions interoperate."""
    uid = "1.2.826.0.1.3680043.9.7433.21"
    src = tmp_path / "un-charset.dcm"
    src.write_bytes(part10(meta(EXPLICIT_LE, uid),
                           basic_dataset(uid, extra=[(0x00080005, "UN", b"\xff\xfe\x00\x01")])))  # fmt: skip
    ours = dsig.sign(src, tmp_path / "dsig.dcm", pki.rsa)
    ok, output = dcmtk.dcmsign_verify(ours)
    assert ok, output
    theirs = tmp_path / "dcmtk.dcm"
    dcmtk.dcmsign_sign(src, theirs, pki.rsa.key, pki.rsa.cert, mac="sha256")
    dsig.verify_one(theirs).assert_valid(1)
