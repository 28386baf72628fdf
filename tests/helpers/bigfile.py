"""Generated DICOM files with large values, written in chunks (never held in memory whole).

Used by the bounded-memory tests and by ``scripts/bench.py``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

_CHUNK = 1 << 20
_LONG = {"OB", "OW", "OF", "OD", "OL", "UN", "UT"}


@dataclass(frozen=True)
class BigValue:
    """A large top-level element: tag, VR, length (odd lengths allowed, as some files have)."""

    tag: int
    vr: str
    length: int


def _block(seed: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < _CHUNK:
        out += hashlib.sha512(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:_CHUNK])


def _write_pattern(fp: object, length: int, seed: int) -> None:
    write = fp.write  # type: ignore[attr-defined]
    block = bytearray(_block(seed))
    n = 0
    while length > 0:
        struct.pack_into("<Q", block, 0, n)  # each chunk differs
        take = min(length, _CHUNK)
        write(memoryview(block)[:take])
        length -= take
        n += 1


def _header(tag: int, vr: str, length: int, transfer_syntax: str) -> bytes:
    little = transfer_syntax != ExplicitVRBigEndian
    e = "<" if little else ">"
    head = struct.pack(e + "HH", tag >> 16, tag & 0xFFFF)
    if transfer_syntax == ImplicitVRLittleEndian:
        return head + struct.pack("<I", length)
    if vr in _LONG:
        return head + vr.encode() + b"\x00\x00" + struct.pack(e + "I", length)
    return head + vr.encode() + struct.pack(e + "H", length)


def base_dataset(*, frames: int, rows: int, cols: int, encapsulated: bool = False) -> Dataset:
    """A secondary-capture style multi-frame image without Pixel Data."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.2"  # Multi-frame Grayscale Byte SC
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "OT"
    ds.PatientName = "Bench^Big"
    ds.PatientID = "BIG-1"
    ds.StudyDate = "20260101"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = str(frames)
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 8 if encapsulated else 16
    ds.BitsStored = 8 if encapsulated else 12
    ds.HighBit = 7 if encapsulated else 11
    ds.PixelRepresentation = 0
    return ds


def write_big_file(
    path: Path,
    *,
    frames: int,
    rows: int = 512,
    cols: int = 512,
    transfer_syntax: str = ExplicitVRLittleEndian,
    encapsulated: bool = False,
    extra: Sequence[BigValue] = (),
    seed: int = 1,
) -> Path:
    """Write a multi-frame image whose Pixel Data (and ``extra`` values) are streamed to disk.

    Uncompressed: 16-bit OW frames of ``rows*cols``. Encapsulated (JPEG Baseline UID, fake
    fragments of ``rows*cols`` bytes each; the MAC does not look inside): an empty Basic Offset
    Table and one fragment per frame.
    """
    ts = JPEGBaseline8Bit if encapsulated else transfer_syntax
    ds = base_dataset(frames=frames, rows=rows, cols=cols, encapsulated=encapsulated)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(ts)
    ds.file_meta = meta
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    big = sorted(extra, key=lambda v: v.tag)
    with path.open("ab") as fp:
        for n, value in enumerate(big):
            if value.tag >= 0x7FE00010:
                raise ValueError("extra values must sort before Pixel Data")
            fp.write(_header(value.tag, value.vr, value.length, ts))
            _write_pattern(fp, value.length, seed + 100 + n)
        if encapsulated:
            fp.write(_header(0x7FE00010, "OB", 0xFFFFFFFF, ts))
            fp.write(struct.pack("<HHI", 0xFFFE, 0xE000, 0))  # empty Basic Offset Table
            for f in range(frames):
                size = rows * cols
                fp.write(struct.pack("<HHI", 0xFFFE, 0xE000, size))
                _write_pattern(fp, size, seed + f)
            fp.write(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
        else:
            length = frames * rows * cols * 2
            fp.write(_header(0x7FE00010, "OW", length, ts))
            _write_pattern(fp, length, seed)
    return path


def write_small_image(path: Path, *, seed: int = 0, rows: int = 64, cols: int = 64) -> Path:
    """A small single-frame image (about 8 KiB of pixels), explicit VR little endian."""
    return write_big_file(path, frames=1, rows=rows, cols=cols, seed=seed)
