"""Storage re-encodings of signed files: both dcmsign and dsig must reach the same verdict.

Signed originals come from both signers (dcmsign and dsig). Re-encodings that only change
the *encoding* (explicit LE / BE / deflated, explicit <-> undefined lengths, group lengths and
trailing padding, pydicom re-save, relabelling the unprotected MAC transfer syntax) keep every
signature valid. Known breakers (doc section 11 items 2 and 8): ``dcmconv +ti`` on
waveform_ecg (private tags -> UN), re-fragmenting encapsulated pixel data, filling the Basic
Offset Table -> both tools fail.

All dsig verdicts come from one batched ``dsig verify --integrity-only --json`` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pytest
from pydicom.encaps import generate_frames

from tests.helpers import dcmtk, dicom_factory
from tests.helpers.dicom_factory import SR_NESTED_ITEM, signature_refs
from tests.interop.conftest import Dsig, FileResult, PkiFiles, Sources, pmap

Conv = Callable[[Path, Path], object]


def _dcmconv(*opts: str) -> Conv:
    return lambda src, dst: dcmtk.dcmconv(src, dst, *opts)


def _refragment(src: Path, dst: Path) -> None:
    """Split every frame's codestream into two fragments (same pixels, new fragmentation)."""
    ds = pydicom.dcmread(src)
    nf = int(ds.get("NumberOfFrames", 1) or 1)
    frames = list(generate_frames(ds.PixelData, number_of_frames=nf))
    per = [dicom_factory.split_even(f, 2) for f in frames]
    ds.PixelData = dicom_factory.encapsulate_fragments(per, bot=False)
    ds["PixelData"].is_undefined_length = True
    ds.save_as(dst)


def _fill_bot(src: Path, dst: Path) -> None:
    """Keep the fragments, write a filled Basic Offset Table."""
    ds = pydicom.dcmread(src)
    nf = int(ds.get("NumberOfFrames", 1) or 1)
    frags = list(pydicom.encaps.generate_fragmented_frames(ds.PixelData, number_of_frames=nf))
    ds.PixelData = dicom_factory.encapsulate_fragments([list(f) for f in frags], bot=True)
    ds["PixelData"].is_undefined_length = True
    ds.save_as(dst)


def _relabel_mac_ts(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes())
    dcmtk.dcmodify(dst, "-m", "(4ffe,0001)[0].(0400,0010)=1.2.840.10008.1.2.1.99")


CONVERSIONS: dict[str, Conv] = {
    "te": _dcmconv("+te"),
    "tb": _dcmconv("+tb"),
    "td": _dcmconv("+td"),
    "ti": _dcmconv("+ti"),
    "len-undefined": _dcmconv("-e"),
    "len-explicit": _dcmconv("+e"),
    "undef-then-explicit": lambda s, d: (
        dcmtk.dcmconv(s, d.with_suffix(".tmp"), "-e"),
        dcmtk.dcmconv(d.with_suffix(".tmp"), d, "+e"),
    ),
    "grouplen-padding": _dcmconv("+g", "+p", "256", "16"),
    "pydicom-resave": lambda s, d: dicom_factory.resave_with_pydicom(s, d),
    "relabel-mac-ts-deflated": _relabel_mac_ts,
    # breakers
    "refragment": _refragment,
    "fill-bot": _fill_bot,
}

NATIVE_OK = (
    "te",
    "tb",
    "td",
    "len-undefined",
    "undef-then-explicit",
    "grouplen-padding",
    "pydicom-resave",
)
ENCAPS_OK = ("len-undefined", "len-explicit", "grouplen-padding", "pydicom-resave")


@dataclass(frozen=True)
class Original:
    """A signed original: ``source`` signed by ``by`` (plus an item signature if ``item``)."""

    id: str
    source: str
    by: str  # dcmsign | dsig
    item: str | None = None


ORIGINALS = [
    Original("dcmsign-CT_small", "CT_small.dcm", "dcmsign"),
    Original("dcmsign-reportsi", "reportsi.dcm", "dcmsign"),
    Original("dcmsign-waveform_ecg", "waveform_ecg.dcm", "dcmsign"),
    Original("dcmsign-rtplan", "rtplan.dcm", "dcmsign"),
    Original("dcmsign-MR_small_bigendian", "MR_small_bigendian.dcm", "dcmsign"),
    Original("dcmsign-sr_nested-item+main", "sr_nested", "dcmsign", item=SR_NESTED_ITEM),
    Original("dcmsign-JPEG-lossy", "JPEG-lossy.dcm", "dcmsign"),
    Original("dcmsign-mf_jpeg_bot", "mf_jpeg_bot", "dcmsign"),
    Original("dcmsign-image_dfl", "image_dfl.dcm", "dcmsign"),
    Original("dsig-CT_small", "CT_small.dcm", "dsig"),
    Original("dsig-waveform_ecg", "waveform_ecg.dcm", "dsig"),
    Original("dsig-sr_nested-item+main", "sr_nested", "dsig", item=SR_NESTED_ITEM),
    Original("dsig-rtplan-item+main", "rtplan.dcm", "dsig", item="BeamSequence[0]"),
    Original("dsig-mf_jpeg_nobot", "mf_jpeg_nobot", "dsig"),
]
_ORIG = {o.id: o for o in ORIGINALS}


@dataclass(frozen=True)
class Reenc:
    original: str
    conversion: str
    valid: bool

    @property
    def id(self) -> str:
        return f"{self.original}--{self.conversion}"


def _matrix() -> list[Reenc]:
    out: list[Reenc] = []
    for o in ORIGINALS:
        encaps = o.source in ("JPEG-lossy.dcm", "mf_jpeg_bot", "mf_jpeg_nobot")
        if encaps:
            convs = [*ENCAPS_OK]
        elif o.source == "image_dfl.dcm":
            convs = ["te", "tb", "pydicom-resave"]
        elif o.source == "MR_small_bigendian.dcm":
            convs = ["te", "td", "ti", "pydicom-resave"]
        elif o.source in ("CT_small.dcm", "reportsi.dcm", "rtplan.dcm", "sr_nested"):
            convs = [*NATIVE_OK, "ti"]
            if o.id == "dcmsign-CT_small":
                convs.append("relabel-mac-ts-deflated")
        else:  # waveform
            convs = [*NATIVE_OK]
        out += [Reenc(o.id, c, True) for c in convs]
    # known breakers
    out += [
        Reenc("dcmsign-waveform_ecg", "ti", False),
        Reenc("dsig-waveform_ecg", "ti", False),
        Reenc("dcmsign-JPEG-lossy", "refragment", False),
        Reenc("dcmsign-JPEG-lossy", "fill-bot", False),
        Reenc("dcmsign-mf_jpeg_bot", "refragment", False),
        Reenc("dsig-mf_jpeg_nobot", "fill-bot", False),
    ]
    return out


MATRIX = _matrix()
MATRIX_IDS = [m.id for m in MATRIX]
assert len(set(MATRIX_IDS)) == len(MATRIX_IDS)


@dataclass
class Converted:
    case: Reenc
    path: Path | None = None
    n_signatures: int = 0
    error: str | None = None
    dcmsign: tuple[bool, str] = (False, "")
    result: FileResult | None = None


@dataclass
class Built:
    originals: dict[str, Path] = field(default_factory=dict)
    original_errors: dict[str, str] = field(default_factory=dict)
    converted: dict[str, Converted] = field(default_factory=dict)


def _sign_original(o: Original, d: Path, pki: PkiFiles, sources: Sources, dsig: Dsig) -> Path:
    src = sources(o.source)
    cur = src
    steps = ([o.item] if o.item else []) + [None]
    for n, item in enumerate(steps):
        out = d / f"{o.id}.{n}.dcm"
        if o.by == "dcmsign":
            dcmtk.dcmsign_sign(cur, out, pki.rsa.key, pki.rsa.cert, item=item, purpose=1)
        else:
            dsig.sign(cur, out, pki.rsa if n == 0 else pki.ec, item=item, purpose=1)
        cur = out
    return cur


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, pki: PkiFiles, sources: Sources, dsig: Dsig
) -> Built:
    d = tmp_path_factory.mktemp("reencoding")
    b = Built()

    def sign(o: Original) -> Path | str:
        try:
            return _sign_original(o, d, pki, sources, dsig)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"

    for o, got in zip(ORIGINALS, pmap(sign, ORIGINALS), strict=True):
        if isinstance(got, str):
            b.original_errors[o.id] = got
        else:
            b.originals[o.id] = got
    for m in MATRIX:
        c = Converted(m)
        b.converted[m.id] = c
        if m.original not in b.originals:
            c.error = f"signing the original failed: {b.original_errors.get(m.original)}"
            continue
        src = b.originals[m.original]
        dst = d / f"{m.id}.dcm"
        try:
            CONVERSIONS[m.conversion](src, dst)
            c.path = dst
            c.n_signatures = len(signature_refs(src))
            c.dcmsign = dcmtk.dcmsign_verify(dst)
        except Exception as exc:
            c.error = f"conversion failed: {type(exc).__name__}: {exc}"
    paths = [c.path for c in b.converted.values() if c.path is not None]
    results = dsig.verify_many(paths)
    for c in b.converted.values():
        if c.path is not None:
            c.result = results[str(c.path)]
    return b


def _get(built: Built, m: Reenc) -> Converted:
    c = built.converted[m.id]
    if c.error is not None:
        pytest.fail(c.error)
    return c


@pytest.mark.parametrize("orig", ORIGINALS, ids=[o.id for o in ORIGINALS])
def test_original_valid_in_both(built: Built, orig: Original, dsig: Dsig) -> None:
    if orig.id in built.original_errors:
        pytest.fail(built.original_errors[orig.id])
    p = built.originals[orig.id]
    ok, out = dcmtk.dcmsign_verify(p)
    assert ok, out
    dsig.verify_one(p).assert_valid(n_signatures=2 if orig.item else 1)


@pytest.mark.parametrize("m", MATRIX, ids=MATRIX_IDS)
def test_dcmsign_verdict(built: Built, m: Reenc) -> None:
    c = _get(built, m)
    ok, out = c.dcmsign
    if m.valid:
        assert ok, out
        assert out.count("Signature Verification : OK") == c.n_signatures, out
    else:
        assert not ok, out


@pytest.mark.parametrize("m", MATRIX, ids=MATRIX_IDS)
def test_dsig_verdict(built: Built, m: Reenc) -> None:
    c = _get(built, m)
    assert c.result is not None
    if m.valid:
        c.result.assert_valid(n_signatures=c.n_signatures)
    else:
        assert c.result.indication in ("INVALID", "INDETERMINATE"), c.result.describe()
        assert c.result.indication != "VALID", c.result.describe()
        assert any(s.get("integrity") != "VALID" for s in c.result.signatures), c.result.describe()


def test_breaker_exit_code(built: Built, dsig: Dsig) -> None:
    """A single broken file gives a non-zero exit (1 invalid)."""
    m = next(x for x in MATRIX if x.id == "dcmsign-JPEG-lossy--refragment")
    c = _get(built, m)
    res = dsig.verify([c.path])  # type: ignore[list-item]
    assert res.returncode == 1, res.describe()
