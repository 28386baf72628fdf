"""dcmsign verifies a big file dsig signed while writing it (the streamed path of issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

from dsig.encoding.reader import read_dicom
from dsig.encoding.writer import target_encoding
from dsig.operations.file_signing import STREAM_MIN, FileSigning, _streamable, sign_file
from tests.helpers import dcmtk
from tests.helpers.bigfile import write_big_file
from tests.interop.conftest import PkiFiles
from tokens.registry import open_key_provider


@pytest.mark.parametrize(
    ("syntax", "encapsulated"),
    [(ExplicitVRLittleEndian, False), (ExplicitVRLittleEndian, True), (ExplicitVRBigEndian, False)],
)
def test_dcmsign_verifies_a_streamed_big_file(
    pki: PkiFiles, tmp_path: Path, syntax: str, encapsulated: bool
) -> None:
    frames = STREAM_MIN // (512 * 512 * 2) + 4
    src = write_big_file(
        tmp_path / "big.dcm", frames=frames, transfer_syntax=syntax, encapsulated=encapsulated
    )
    with open_key_provider(str(pki.rsa.key), cert=pki.rsa.cert, password=None) as key:
        ds = read_dicom(src)
        assert _streamable(ds, key, FileSigning(), target_encoding(ds, "same", None)) == 256
        out = sign_file(src, tmp_path / "signed.dcm", key).output
    ok, output = dcmtk.dcmsign_verify(out)
    assert ok, output
    # a flipped byte deep in the pixel data is caught by dcmsign too
    with out.open("r+b") as fp:
        fp.seek(out.stat().st_size - 5 * 2**20)
        byte = fp.read(1)
        fp.seek(-1, 1)
        fp.write(bytes([byte[0] ^ 1]))
    ok, output = dcmtk.dcmsign_verify(out)
    assert not ok, output
