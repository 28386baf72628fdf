"""Issue 12: ``--read`` / ``--read-xfer`` accept and refuse what dcmsign's ``+f``/``+fo``/``-f``
and ``-t=``/``-td``/``-te``/``-tb``/``-ti`` accept and refuse, over the oddities corpus and the
pydicom samples whose encoding or meta header is unusual.

Two documented differences, asserted as such: forcing an encoding of a Part 10 file is a usage
error in both tools (dcmsign: "only allowed with --read-dataset"; dsig exits 2); and
``--read dataset`` on a file that has a file meta header is refused by dsig, where dcmsign
``-f`` parses the preamble and meta as data set elements (garbage, "no signatures found").
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from dsig.encoding.read_options import FORCED_XFERS, READ_MODES, READ_XFERS, ReadOptions
from dsig.encoding.reader import read_dicom
from dsig.errors import DicomFormatError, OptionsError
from tests.helpers import dcmtk
from tests.helpers.oddities import build_corpus
from tests.interop.conftest import Dsig, PkiFiles

MODE_FLAGS = {"auto": "+f", "file": "+fo", "dataset": "-f"}
XFER_FLAGS = {"auto": "-t=", "detect": "-td", "little": "-te", "big": "-tb", "implicit": "-ti"}
#: samples with no preamble, no meta, a meta without transfer syntax, or a meta that lies
SAMPLES = (
    "SC_rgb_jpeg.dcm", "meta_missing_tsyntax.dcm", "rtstruct.dcm", "no_meta_group_length.dcm",
    "ExplVR_BigEndNoMeta.dcm", "ExplVR_LitEndNoMeta.dcm", "MR_small_bigendian.dcm",
    "CT_small.dcm",
)  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    corpus = [o.path for o in build_corpus(tmp_path_factory.mktemp("oddities"))]
    return corpus + [Path(str(get_testdata_file(n))) for n in SAMPLES]


def _has_meta(path: Path) -> bool:
    head = path.read_bytes()[:132]
    return head[128:132] == b"DICM" or head[:2] == b"\x02\x00"


def _dcmsign_reads(path: Path, mode: str, xfer: str) -> tuple[int, str]:
    proc = subprocess.run(
        ["dcmsign", "--verify", MODE_FLAGS[mode], XFER_FLAGS[xfer], str(path)],
        capture_output=True, text=True, errors="replace", check=False,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("mode", READ_MODES)
@pytest.mark.parametrize("xfer", READ_XFERS)
def test_read_options_accept_what_dcmsign_accepts(files: list[Path], mode: str, xfer: str) -> None:
    for path in files:
        rc, output = _dcmsign_reads(path, mode, xfer)
        if xfer in FORCED_XFERS and mode != "dataset":
            assert rc == 1 and "only allowed with --read-dataset" in output, (path, output)
            with pytest.raises(OptionsError, match="needs read mode dataset"):
                ReadOptions(mode, xfer)
            continue
        try:
            read_dicom(path, read=ReadOptions(mode, xfer))
            ours, why = True, ""
        except DicomFormatError as e:
            ours, why = False, str(e)
        if mode == "dataset" and _has_meta(path):
            assert not ours and "has a file meta header" in why, (path, why)
            assert rc != 0 or "no signatures found" in output, (path, output)
            continue
        assert ours == (rc == 0), (path.name, mode, xfer, why, output[-300:])


def test_detect_keeps_a_compressed_syntax_and_reads_a_lying_uncompressed_one(
    files: list[Path],
) -> None:
    """dcmsign -td ignores the meta only when it names an uncompressed syntax."""
    jpeg = next(p for p in files if p.name == "SC_rgb_jpeg.dcm")  # meta JPEG, data set implicit
    with pytest.raises(DicomFormatError, match="no valid VR"):
        read_dicom(jpeg, read=ReadOptions(xfer="detect"))
    liar = next(p for p in files if p.name == "wrong-meta-xfer.dcm")  # meta explicit, implicit
    ds = read_dicom(liar, read=ReadOptions(xfer="detect"))
    assert str(ds.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2"


def test_forcing_an_encoding_of_a_file_is_a_usage_error(files: list[Path], dsig: Dsig) -> None:
    proc = dsig.run("inspect", "--read-xfer", "implicit", files[0])
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "(use --read dataset)" in proc.stderr, proc.stderr


#: Every command that reads DICOM, with its other arguments ({src}, {tmp}, {key}, {cert}).
COMMANDS = {
    "sign": ["sign", "{src}", "{tmp}/s.dcm", "--key", "{key}", "--cert", "{cert}", "--no-password"],
    "verify": ["verify", "{src}"],
    "inspect": ["inspect", "{src}"],
    "remove": ["remove", "{src}", "{tmp}/r.dcm", "--all"],
    "explain": ["explain", "{src}"],
    "timestamp query": ["timestamp", "query", "{src}", "-o", "{tmp}/q.tsq"],
    "timestamp insert": ["timestamp", "insert", "{src}", "{tmp}/i.dcm", "--reply", "{tmp}/x",
                         "--query", "{tmp}/x"],
    "timestamp add": ["timestamp", "add", "{src}", "{tmp}/a.dcm", "--all", "--tsa",
                      "http://127.0.0.1:9"],
    "manifest create": ["manifest", "create", "{src}", "-o", "{tmp}/m.dcm", "--key", "{key}",
                        "--cert", "{cert}", "--no-password"],
    # the manifest is made first (of the bare data set, read with --read dataset)
    "manifest verify": ["manifest", "verify", "{tmp}/made.dcm", "{src}", "--integrity-only"],
    # nothing listens on port 9: every file is refused while it is read, before connecting
    "send": ["send", "127.0.0.1", "9", "{src}"],
}  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_reads_as_told(
    files: list[Path], dsig: Dsig, pki: PkiFiles, tmp_path: Path, command: str
) -> None:
    """``--read file`` reaches the reader of every command (a bare data set is refused, as
    by dcmsign +fo), and so does ``--read-xfer`` (forcing on a file is a usage error; detect
    reads a file whose meta names the wrong syntax)."""
    bare = next(p for p in files if p.name == "bare-dataset.dcm")
    (tmp_path / "x").write_bytes(b"\x30\x00")
    fill = {"src": str(bare), "tmp": str(tmp_path), "key": str(pki.rsa.key),
            "cert": str(pki.rsa.cert)}  # fmt: skip
    args = [a.format(**fill) for a in COMMANDS[command]]
    if command == "manifest verify":
        made = dsig.run(*[a.format(**fill) for a in COMMANDS["manifest create"]],
                        "--read", "dataset")  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
        (tmp_path / "m.dcm").rename(tmp_path / "made.dcm")
        ok = dsig.run(*args, "--read", "dataset")
        assert ok.returncode == 0, ok.stdout + ok.stderr
    proc = dsig.run(*args, "--read", "file")
    # manifest verify too: the instance is unreadable (4), as verify says; its missing
    # reference may be in that file, so it does not make the study INVALID (1)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "read mode file: no file meta header" in proc.stdout + proc.stderr
    proc = dsig.run(*args, "--read-xfer", "big")
    assert proc.returncode == 2 and "(use --read dataset)" in proc.stderr, proc.stderr
    # --read-xfer reaches the reader too: a meta naming the wrong syntax stops the read by
    # default, and is ignored with detect (whatever the command then says of the file)
    fill["src"] = str(next(p for p in files if p.name == "wrong-meta-xfer.dcm"))
    args = [a.format(**fill) for a in COMMANDS[command]]
    proc = dsig.run(*args)
    assert "has no valid VR" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    proc = dsig.run(*args, "--read-xfer", "detect")
    said = proc.stdout + proc.stderr
    assert "no valid VR" not in said and "internal error" not in said, said


def test_a_signed_file_whose_meta_lies_verifies_with_detect_in_both_tools(
    files: list[Path], dsig: Dsig, pki: PkiFiles, tmp_path: Path
) -> None:
    """Careless tooling rewrote the meta header of a signed implicit VR file to name explicit
    VR. By default both tools refuse to read it as what it is not; with ``--read-xfer
    detect`` / ``-td`` both verify the signature."""
    from tests.helpers.net import dataset_bytes
    from tests.helpers.rawdicom import EXPLICIT_LE, meta, part10

    src = next(p for p in files if p.name == "padded-implicit-le.dcm")
    signed = dsig.sign(src, tmp_path / "signed.dcm", pki.rsa)
    ds = read_dicom(signed)
    assert ds.dsig_layout.implicit
    liar = tmp_path / "liar.dcm"
    liar.write_bytes(part10(meta(EXPLICIT_LE, str(ds.SOPInstanceUID)), dataset_bytes(signed)))
    assert not dcmtk.dcmsign_verify(liar)[0]
    proc = dsig.run("verify", liar, "--integrity-only")
    assert proc.returncode == 4 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    ok, output = dcmtk.dcmsign_verify(liar, extra=["-td"])
    assert ok, output
    dsig.verify_one(liar, "--read-xfer", "detect").assert_valid(1)
