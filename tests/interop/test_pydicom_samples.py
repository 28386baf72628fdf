"""Issue 12: both interop directions over every sample pydicom ships (not only the curated
SAMPLE_NAMES of the main suite).

Per file: dsig signs (``--dump``) and dcmsign verifies; dcmsign signs the same elements (``+d``)
and dsig verifies that VALID (one batched ``dsig verify --json``), rebuilding dcmsign's
stream with ``inspect --dump-mac``'s function; dsig's
data-element stream equals dcmsign's (over the original, or, for values DCMTK 3.6.x keeps
padded, over dsig's normalised output). A file one tool refuses, the other refuses too, except
the one documented difference: dsig will not make a signature over no element at all
(a DICOMDIR holds only group 0004), which dcmsign does, and which dsig still verifies. The
files both refuse are listed in REFUSED_BY_BOTH with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.data import get_testdata_files

from dsig.encoding.reader import read_dicom
from dsig.operations.verifier import dump_mac_stream
from tests.helpers import dcmtk, dicom_factory
from tests.interop.conftest import Dsig, FileResult, PkiFiles, pmap

SAMPLES = sorted({Path(p).name: Path(p) for p in get_testdata_files() if Path(p).is_file()}.items())

#: Files pydicom ships that are not DICOM at all (text, JSON, an ICC profile, gzip, dump text).
NOT_DICOM = ("README", "README.txt", "crayons.icc", "rtplan.dump", "rtstruct.dump", "test1.json",
             "test_PN.json", "zipMR.gz")  # fmt: skip
#: The samples both tools refuse to read (so neither direction can run), each with the part of
#: dsig's one-line error that says why. Any other sample must go both ways.
REFUSED_BY_BOTH = {
    **dict.fromkeys(NOT_DICOM, "not a DICOM file"),
    # a stray byte before (0008,0005): no preamble, no meta, no data set at offset 0
    "no_meta.dcm": "not a DICOM file",
    # cut short inside Pixel Data / inside a sequence
    "MR_truncated.dcm": "truncated",
    "rtplan_truncated.dcm": "truncated",
    # the meta names JPEG Baseline (explicit VR), the data set is implicit VR: DCMTK's -td
    # keeps a compressed syntax, and so does --read-xfer detect (test_read_options.py)
    "SC_rgb_jpeg.dcm": "no valid VR",
}


@dataclass
class Outcome:
    path: Path
    dsig_signed: bool = False
    dsig_error: str = ""
    dcmsign_verify: tuple[bool, str] = (False, "")
    dcmsign_signed: bool = False
    dcmsign_error: str = ""
    dcmsign_out: Path | None = None
    dcmsign_dump: Path | None = None
    stream_equal: bool | None = None
    stream_note: str = ""
    #: dsig's MAC stream of dcmsign's signature (``inspect --dump-mac``'s function, in process)
    dcmsign_redump: bytes | None = None


def _data(dump: Path, out: Path) -> bytes:
    ref = dicom_factory.signature_refs(read_dicom(out))[-1]
    return dicom_factory.split_stream(dump.read_bytes(), ref.item)[0]


def _run_one(args: tuple[str, Path, Path, Dsig, PkiFiles]) -> Outcome:
    name, src, work, dsig, pki = args
    o = Outcome(src)
    ours, ours_dump = work / f"{name}.dsig.dcm", work / f"{name}.dsig.dump"
    proc = dsig.sign_proc(src, ours, pki.rsa, dump=ours_dump)
    tags: list[str] = []
    if proc.returncode == 0:
        o.dsig_signed = True
        o.dcmsign_verify = dcmtk.dcmsign_verify(ours)
        ref = dicom_factory.signature_refs(read_dicom(ours))[-1]
        tags = [f"{t >> 16:04x},{t & 0xFFFF:04x}" for t in ref.signed_tags]
    else:
        o.dsig_error = proc.stderr.strip()
    theirs, theirs_dump = work / f"{name}.dcmtk.dcm", work / f"{name}.dcmtk.dump"
    sign = dcmtk.dcmsign_sign(src, theirs, pki.rsa.key, pki.rsa.cert, mac="sha256", tags=tags,
                              dump=theirs_dump, check=False)  # fmt: skip
    if sign.returncode == 0 and theirs.exists():
        o.dcmsign_signed, o.dcmsign_out, o.dcmsign_dump = True, theirs, theirs_dump
    else:
        o.dcmsign_error = (sign.stdout + sign.stderr).strip()[-400:]
    if o.dsig_signed and o.dcmsign_signed:
        mine = _data(ours_dump, ours)
        o.stream_equal = mine == _data(theirs_dump, theirs)
        if not o.stream_equal:  # DCMTK 3.6.x keeps some padding: compare over dsig's output
            again, again_dump = work / f"{name}.re.dcm", work / f"{name}.re.dump"
            dcmtk.dcmsign_sign(ours, again, pki.rsa.key, pki.rsa.cert, mac="sha256", tags=tags,
                               dump=again_dump)  # fmt: skip
            o.stream_equal = " v3.6." in dcmtk.dcmsign_version() and mine == _data(
                again_dump, again
            )
            o.stream_note = dicom_factory.first_difference(mine, _data(theirs_dump, theirs))
    if o.dcmsign_out is not None:
        uid = dicom_factory.signature_refs(read_dicom(o.dcmsign_out))[-1].uid
        redump = work / f"{name}.redump"
        with redump.open("wb") as fp:
            dump_mac_stream(read_dicom(o.dcmsign_out), uid, [fp.write])
        o.dcmsign_redump = redump.read_bytes()
    return o


@dataclass
class Samples:
    outcomes: dict[str, Outcome]
    #: ``dsig verify --json`` of every dcmsign-signed sample (batched: few processes)
    verified: dict[str, FileResult]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory, dsig: Dsig, pki: PkiFiles) -> Samples:
    work = tmp_path_factory.mktemp("samples")
    results = pmap(_run_one, [(name, path, work, dsig, pki) for name, path in SAMPLES])
    verified = dsig.verify_many([o.dcmsign_out for o in results if o.dcmsign_out is not None])
    return Samples({name: o for (name, _), o in zip(SAMPLES, results, strict=True)}, verified)


def test_there_are_many_samples() -> None:
    assert len(SAMPLES) > 100


@pytest.mark.parametrize("name", [n for n, _ in SAMPLES])
def test_sample_both_directions(samples: Samples, name: str) -> None:
    o = samples.outcomes[name]
    if o.dsig_signed:
        ok, output = o.dcmsign_verify
        assert ok, output
    if o.dcmsign_signed:
        assert o.dcmsign_out is not None and o.dcmsign_dump is not None
        samples.verified[str(o.dcmsign_out)].assert_valid(1)
        assert o.dcmsign_redump == o.dcmsign_dump.read_bytes()
    if o.stream_equal is not None:
        assert o.stream_equal, o.stream_note
    if not o.dsig_signed and o.dcmsign_signed:
        assert "nothing to sign" in o.dsig_error, (o.dsig_error, name)
    if o.dsig_signed and not o.dcmsign_signed:
        pytest.fail(f"dcmsign refuses what dsig signs: {o.dcmsign_error}")
    if not o.dsig_signed and not o.dcmsign_signed:
        assert o.dsig_error.startswith("dsig: error: ") and o.dsig_error.count("\n") == 0
        assert name in REFUSED_BY_BOTH, f"both tools refuse {name}: {o.dsig_error}"
        assert REFUSED_BY_BOTH[name] in o.dsig_error, o.dsig_error
    else:
        assert name not in REFUSED_BY_BOTH, f"{name} is read now: drop it from REFUSED_BY_BOTH"
