"""Issue 12: both interop directions over every file of the vendor-oddities corpus
(tests/helpers/oddities.py, read with the input options each needs) and every sample pydicom
ships (not only the curated SAMPLE_NAMES of the main suite), in one parametrised set
(``test_both_directions[corpus:NAME]`` / ``[sample:NAME]``).

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

import os
from dataclasses import dataclass
from pathlib import Path

import pydicom.data
import pytest
from pydicom.data import get_testdata_files

from dsig.encoding.reader import read_dicom
from dsig.operations.verifier import dump_mac_stream
from tests.helpers import dcmtk, dicom_factory
from tests.helpers.oddities import CORPUS_NAMES, build_corpus
from tests.interop.conftest import Dsig, FileResult, PkiFiles, pmap

_FILES = [Path(p) for p in get_testdata_files() if Path(p).is_file()]
_ROOT = Path(os.path.commonpath(_FILES))
#: Every file pydicom ships, by its path under pydicom's test-file directory (two names are
#: shipped twice: DICOMDIR and README.txt, in dicomdirtests/ and beside it).
SAMPLES = sorted((p.relative_to(_ROOT).as_posix(), p) for p in _FILES)
#: Every test case: ``corpus:NAME`` (built by the fixture) and ``sample:NAME``.
CASES = [f"corpus:{n}" for n in CORPUS_NAMES] + [f"sample:{n}" for n, _ in SAMPLES]

#: Files pydicom ships that are not DICOM at all (text, JSON, an ICC profile, gzip, dump text).
NOT_DICOM = ("README", "README.txt", "crayons.icc", "rtplan.dump", "rtstruct.dump", "test1.json",
             "test_PN.json", "zipMR.gz")  # fmt: skip
#: DICOMDIRs hold only group 0004 (file meta and directory records), which are not signable:
#: dsig refuses a signature over no element ("nothing to sign"); dcmsign makes one (an empty
#: Data Elements Signed), and dsig verifies that VALID.
NOTHING_TO_SIGN = ("DICOMDIR", "DICOMDIR-bigEnd", "DICOMDIR-empty.dcm", "DICOMDIR-implicit",
                   "DICOMDIR-nooffset", "DICOMDIR-nopatient", "DICOMDIR-reordered")  # fmt: skip
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


@dataclass(frozen=True)
class Case:
    name: str  # file name in ``work``
    src: Path
    work: Path
    dsig: Dsig
    pki: PkiFiles
    #: the input options each tool needs for the file (the same choice, spelt by each)
    dsig_read: tuple[str, ...] = ()
    dcmsign_read: tuple[str, ...] = ()


def _run_one(case: Case) -> Outcome:
    name, src, work, dsig, pki = case.name, case.src, case.work, case.dsig, case.pki
    o = Outcome(src)
    ours, ours_dump = work / f"{name}.dsig.dcm", work / f"{name}.dsig.dump"
    proc = dsig.sign_proc(src, ours, pki.rsa, dump=ours_dump, extra=case.dsig_read)
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
                              dump=theirs_dump, check=False, extra=case.dcmsign_read)  # fmt: skip
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
    corpus = {o.name: o for o in build_corpus(tmp_path_factory.mktemp("oddities"))}
    assert sorted(corpus) == sorted(CORPUS_NAMES)
    cases = [
        Case(f"corpus_{n}", corpus[n].path, work, dsig, pki, corpus[n].dsig_read,
             corpus[n].dcmsign_read)
        for n in CORPUS_NAMES
    ] + [Case(f"sample_{n.replace('/', '_')}", path, work, dsig, pki)
         for n, path in SAMPLES]  # fmt: skip
    results = pmap(_run_one, cases)
    verified = dsig.verify_many([o.dcmsign_out for o in results if o.dcmsign_out is not None])
    return Samples(dict(zip(CASES, results, strict=True)), verified)


def test_there_are_many_samples() -> None:
    assert len(SAMPLES) > 100 and len(CASES) == len(SAMPLES) + len(CORPUS_NAMES)
    shipped = Path(pydicom.data.__file__).parent / "test_files"
    on_disk = {p for p in shipped.rglob("*") if p.is_file()}
    assert on_disk <= {p for _, p in SAMPLES}  # every file pydicom ships is a case


@pytest.mark.parametrize("case", CASES)
def test_both_directions(samples: Samples, case: str) -> None:
    kind, where = case.split(":", 1)
    name = Path(where).name  # a sample's file name (the lists above name samples by it)
    o = samples.outcomes[case]
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
        assert kind == "sample" and name in NOTHING_TO_SIGN, (o.dsig_error, name)
        assert "nothing to sign" in o.dsig_error, (o.dsig_error, name)
    if o.dsig_signed and not o.dcmsign_signed:
        pytest.fail(f"dcmsign refuses what dsig signs: {o.dcmsign_error}")
    if not o.dsig_signed and not o.dcmsign_signed:
        assert o.dsig_error.startswith("dsig: error: ") and o.dsig_error.count("\n") == 0
        assert kind == "sample" and name in REFUSED_BY_BOTH, f"both refuse {name}: {o.dsig_error}"
        assert REFUSED_BY_BOTH[name] in o.dsig_error, o.dsig_error
    else:
        assert name not in REFUSED_BY_BOTH, f"{name} is read now: drop it from REFUSED_BY_BOTH"
    if o.dsig_signed:
        assert name not in NOTHING_TO_SIGN, f"{name} is signed now: drop it from NOTHING_TO_SIGN"
