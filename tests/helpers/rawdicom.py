"""Byte-level DICOM builders: files pydicom would refuse to write (UN of known tags, CP-246 UN
sequences, odd lengths, wrong group lengths, lying meta headers, polyglots).

Every function returns bytes; :func:`part10` assembles a file. Nothing here normalises a value:
what a test passes is what the file holds.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

#: VRs with a 32-bit length (and 2 reserved bytes) in explicit VR.
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
UNDEFINED = 0xFFFFFFFF

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"


def tag_bytes(tag: int, *, big: bool = False) -> bytes:
    return struct.pack(">HH" if big else "<HH", tag >> 16, tag & 0xFFFF)


def element(
    tag: int,
    vr: str,
    value: bytes,
    *,
    implicit: bool = False,
    big: bool = False,
    length: int | None = None,
) -> bytes:
    """One element, value as given (no padding); ``length`` overrides the length field."""
    n = len(value) if length is None else length
    u32, u16 = (">I", ">H") if big else ("<I", "<H")
    if implicit:
        return tag_bytes(tag, big=big) + struct.pack(u32, n) + value
    if vr in LONG_VRS:
        return tag_bytes(tag, big=big) + vr.encode() + b"\x00\x00" + struct.pack(u32, n) + value
    return tag_bytes(tag, big=big) + vr.encode() + struct.pack(u16, n) + value


def item(body: bytes, *, undefined: bool = False, big: bool = False) -> bytes:
    u32 = ">I" if big else "<I"
    if undefined:
        return (
            tag_bytes(0xFFFEE000, big=big) + struct.pack(u32, UNDEFINED) + body
            + tag_bytes(0xFFFEE00D, big=big) + struct.pack(u32, 0)
        )  # fmt: skip
    return tag_bytes(0xFFFEE000, big=big) + struct.pack(u32, len(body)) + body


def sequence(
    tag: int,
    items: Iterable[bytes],
    *,
    vr: str = "SQ",
    implicit: bool = False,
    big: bool = False,
    undefined: bool = True,
) -> bytes:
    """A sequence of already-encoded items (``item()``), undefined length by default."""
    body = b"".join(items)
    u32 = ">I" if big else "<I"
    if undefined:
        delim = tag_bytes(0xFFFEE0DD, big=big) + struct.pack(u32, 0)
        return element(tag, vr, body + delim, implicit=implicit, big=big, length=UNDEFINED)
    return element(tag, vr, body, implicit=implicit, big=big)


def text(value: str) -> bytes:
    return value.encode("latin-1")


def even(value: bytes, pad: bytes = b" ") -> bytes:
    return value + pad if len(value) % 2 else value


def meta(transfer_syntax: str, sop_instance: str, sop_class: str = SC_CLASS) -> bytes:
    """File meta group (explicit VR LE) with its group length."""
    body = b"".join(
        [
            element(0x00020001, "OB", b"\x00\x01"),
            element(0x00020002, "UI", even(text(sop_class), b"\x00")),
            element(0x00020003, "UI", even(text(sop_instance), b"\x00")),
            element(0x00020010, "UI", even(text(transfer_syntax), b"\x00")),
            element(0x00020012, "UI", even(text("1.2.826.0.1.3680043.9.7433.1"), b"\x00")),
        ]
    )
    return element(0x00020000, "UL", struct.pack("<I", len(body))) + body


def part10(meta_bytes: bytes, dataset: bytes, *, preamble: bool = True) -> bytes:
    head = b"\x00" * 128 + b"DICM" if preamble else b"DICM"
    return head + meta_bytes + dataset


def basic_dataset(
    sop_instance: str,
    *,
    implicit: bool = False,
    big: bool = False,
    patient: str = "Doe^Jane",
    extra: Iterable[tuple[int, str, bytes]] = (),
) -> bytes:
    """A small secondary-capture-like data set (8x8 8-bit pixels), elements in tag order,
    ``extra`` (tag, vr, raw value) merged in."""
    us = ">H" if big else "<H"
    elems: dict[int, tuple[str, bytes]] = {
        0x00080016: ("UI", even(text(SC_CLASS), b"\x00")),
        0x00080018: ("UI", even(text(sop_instance), b"\x00")),
        0x00080060: ("CS", b"OT"),
        0x00100010: ("PN", even(text(patient))),
        0x00100020: ("LO", b"ID42"),
        0x0020000D: ("UI", even(text(sop_instance + ".1"), b"\x00")),
        0x0020000E: ("UI", even(text(sop_instance + ".2"), b"\x00")),
        0x00280002: ("US", struct.pack(us, 1)),
        0x00280004: ("CS", b"MONOCHROME2 "),
        0x00280010: ("US", struct.pack(us, 8)),
        0x00280011: ("US", struct.pack(us, 8)),
        0x00280100: ("US", struct.pack(us, 8)),
        0x00280101: ("US", struct.pack(us, 8)),
        0x00280102: ("US", struct.pack(us, 7)),
        0x00280103: ("US", struct.pack(us, 0)),
        0x7FE00010: ("OB" if not big else "OW", bytes(range(64))),
    }
    for tag, vr, value in extra:
        elems[tag] = (vr, value)
    return b"".join(
        elems[t][1] if elems[t][0] == "RAW" else element(t, elems[t][0], elems[t][1],
                                                         implicit=implicit, big=big)
        for t in sorted(elems)
    )  # fmt: skip


def vr_switch_polyglot(implicit_body: bytes, hidden: bytes) -> bytes:
    """Data set bytes that read as ``implicit_body`` in implicit VR (what a meta header saying
    implicit VR LE demands, and what DCMTK and dsig read) and as the explicit VR data set
    ``hidden`` in explicit VR (what pydicom switches to, with a warning, when the first element
    looks explicit). The first element, explicit (0006,0010) SH "ABCD", has an implicit length
    field ("SH" + 4: 280,659 bytes) that swallows ``hidden`` and the head of an explicit
    padding element, whose value swallows ``implicit_body``."""
    first = element(0x00060010, "SH", b"ABCD")
    swallowed = struct.unpack_from("<I", first, 4)[0]
    zeros = swallowed - 4 - len(hidden) - 12
    if zeros < 0:
        raise ValueError("the hidden data set must be under 280,640 bytes")
    pad_header = element(0xFFFCFFFC, "OB", b"", length=zeros + len(implicit_body))
    return first + hidden + pad_header + bytes(zeros) + implicit_body
