"""A corpus of vendor oddities, built byte by byte (no file is checked in).

Each :class:`Oddity` is a Part 10 file (or bare data set) as real modalities and PACS write
them: padded strings in every string VR (spaces and NULs, leading and trailing, multi-valued),
explicit-VR UN elements of each kind, odd lengths, private sequences in implicit VR, wrong group
lengths, a meta header naming the wrong transfer syntax, file meta without preamble, trailing
padding after the data set. ``dsig_read`` / ``dcmsign_read`` are the input options each tool
needs for it (the same choice, spelt by each).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.rawdicom import (
    EXPLICIT_BE,
    EXPLICIT_LE,
    IMPLICIT_LE,
    basic_dataset,
    element,
    item,
    meta,
    part10,
    sequence,
)

#: Every file :func:`build_corpus` writes, by name (the tests parametrise over these).
CORPUS_NAMES = (
    "padded-explicit-le", "padded-implicit-le", "padded-explicit-be", "nul-padded", "nul-every-vr",
    "leading-nuls",
    "un-elements", "un-binary-vrs", "odd-lengths", "private-sq-implicit", "wrong-group-lengths",
    "wrong-meta-xfer", "meta-no-preamble", "bare-dataset", "trailing-padding",
)  # fmt: skip


@dataclass(frozen=True)
class Oddity:
    name: str
    path: Path
    dsig_read: tuple[str, ...] = ()
    dcmsign_read: tuple[str, ...] = ()
    #: holds string values with trailing NULs, or of odd length ending in a space: DCMTK
    #: 3.6.7 keeps those bytes (the NUL it pads odd values with stops its trailing-space
    #: strip); DCMTK >= 3.7.0 and dsig strip them (dsig.encoding.normalize). dcmsign 3.6.7's ``+d``
    #: stream over the original then differs from dsig's; over dsig's output it is equal.
    dcmtk_367_differs: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


#: (tag, VR, stored value): every string VR, padded every way DCMTK corrects or keeps.
PADDED_STRINGS: tuple[tuple[int, str, bytes], ...] = (
    (0x00080008, "CS", b"DERIVED \\SECONDARY\\OTHER  "),  # multi-valued, 2 trailing spaces
    (0x00080020, "DA", b"20260101  "),
    (0x00080030, "TM", b" 101010 "),  # leading space kept
    (0x0008002A, "DT", b"20260101101010    "),
    (0x00080054, "AE", b"  STORESCP      "),
    (0x00080080, "LO", b"General Hospital" + b" " * 10),
    (0x00080081, "ST", b"  1 Main Street   "),
    (0x00080090, "PN", b"Doe^John^^^   "),
    (0x00080119, "UC", b"LONGCODE    "),
    (0x00080120, "UR", b"urn:oid:1.2.3   "),
    (0x00101010, "AS", b"042Y"),
    (0x00102160, "SH", b"  "),  # only padding: empty as DCMTK reads it
    (0x00180050, "DS", b" 2.5 \\ 3.0  "),  # spaces inside values kept
    (0x00181030, "LO", b"A \\B    "),
    (0x00200013, "IS", b" 7  "),
    (0x00204000, "LT", b"  comment with trailing spaces      "),
    (0x0020000D, "UI", b" 1.2.826.0.1.3680043.9.7433.3 .1\x00\x00"),  # spaces, two NULs
    (0x0040A160, "UT", b"free text   "),
)
#: Values DCMTK 3.6.7 keeps as stored and 3.7.0 (and dsig) strips: trailing NULs, and odd
#: lengths ending in spaces.
NUL_PADDED: tuple[tuple[int, str, bytes], ...] = (
    (0x00081030, "LO", b"Study\x00\x00"),
    (0x00321060, "LO", b"Proc \x00 \x00"),
    (0x00080054, "AE", b"  STORESCP       "),
    (0x00081010, "SH", b"S1 "),
)

#: Every string VR but AS (fixed four characters) with trailing NULs, alone or mixed with
#: spaces, leading spaces kept, multi-valued where the VR allows it.
NUL_EVERY_VR: tuple[tuple[int, str, bytes], ...] = (
    (0x00080008, "CS", b"DERIVED\\PRIMARY \x00"),
    (0x00080020, "DA", b"20260101\x00\x00"),
    (0x00080030, "TM", b" 101010\x00"),
    (0x0008002A, "DT", b"20260101101010\x00 \x00\x00"),
    (0x00080054, "AE", b"STORESCP\x00\x00"),
    (0x00080080, "LO", b"General Hospital \x00\x00\x00"),
    (0x00080081, "ST", b" 1 Main Street\x00"),
    (0x00080090, "PN", b"Doe^John\x00 \x00\x00"),
    (0x00080119, "UC", b"LONGCODE\\B\x00\x00"),
    (0x00080120, "UR", b"urn:oid:1.2.3\x00"),
    (0x00102160, "SH", b"\x00\x00"),
    (0x00180050, "DS", b"2.5\\3.0\x00\x00"),
    (0x00200013, "IS", b"7 \x00 "),
    (0x00204000, "LT", b"comment\x00"),
    (0x0020000D, "UI", b"1.2.826.0.1.3680043.9.7433.3.11.1\x00\x00\x00"),
    (0x0040A160, "UT", b"free text \x00\x00"),
)


#: Leading NULs (and NULs before a backslash): DCMTK keeps them, as it keeps leading spaces;
#: only trailing padding goes (a value of NULs and spaces only becomes empty).
LEADING_NULS: tuple[tuple[int, str, bytes], ...] = (
    (0x00080080, "LO", b"\x00\x00General  "),
    (0x00081010, "SH", b"\x00S1"),  # odd length too
    (0x00080008, "CS", b"\x00ORIGINAL\\\x00PRIMARY "),
    (0x00081030, "LO", b"\x00 \x00 "),
    (0x00204000, "LT", b"\x00text\x00"),
    (0x00180050, "DS", b"\x002.5"),
    (0x00100010, "PN", b" \x00Doe^J"),
)


def _us(value: int) -> bytes:
    return struct.pack("<H", value)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def build_corpus(directory: Path) -> list[Oddity]:
    """Write every oddity into ``directory``."""
    d = directory
    d.mkdir(parents=True, exist_ok=True)
    uid = "1.2.826.0.1.3680043.9.7433.3"
    out: list[Oddity] = []

    for name, ts, implicit, big in (
        ("padded-explicit-le", EXPLICIT_LE, False, False),
        ("padded-implicit-le", IMPLICIT_LE, True, False),
        ("padded-explicit-be", EXPLICIT_BE, False, True),
    ):
        ds = basic_dataset(f"{uid}.1", implicit=implicit, big=big, extra=PADDED_STRINGS)
        out.append(Oddity(name, _write(d / f"{name}.dcm", part10(meta(ts, f"{uid}.1"), ds))))
    ds = basic_dataset(f"{uid}.2", extra=PADDED_STRINGS + NUL_PADDED)
    out.append(Oddity("nul-padded", _write(d / "nul-padded.dcm", part10(meta(EXPLICIT_LE, f"{uid}.2"), ds)),
                      dcmtk_367_differs=True))  # fmt: skip

    ds = basic_dataset(f"{uid}.11", extra=NUL_EVERY_VR)
    out.append(Oddity("nul-every-vr", _write(d / "nul-every-vr.dcm", part10(meta(EXPLICIT_LE, f"{uid}.11"), ds)),
                      dcmtk_367_differs=True))  # fmt: skip

    ds = basic_dataset(f"{uid}.13", extra=LEADING_NULS)
    out.append(Oddity("leading-nuls", _write(d / "leading-nuls.dcm", part10(meta(EXPLICIT_LE, f"{uid}.13"), ds)),
                      dcmtk_367_differs=True))  # fmt: skip

    # explicit VR UN: known tags (a Specific Character Set among them), a private element, a
    # CP-246 sequence of undefined length (implicit LE inside, with a nested sequence), and UN
    # inside an item of a real sequence
    nested = sequence(0x00081140, [item(element(0x00081150, "UI", b"1.2.3\x00", implicit=True)
                                        + element(0x00081155, "UI", b"1.2.3.4\x00", implicit=True))],
                      implicit=True)  # fmt: skip
    cp246 = sequence(
        0x00091010,
        [item(element(0x00080100, "SH", b"CODE", implicit=True) + nested, undefined=True),
         item(element(0x00080100, "SH", b"C2  ", implicit=True))],
        vr="UN",
    )  # fmt: skip
    un = [
        (0x00080005, "UN", b"ISO_IR 100"),
        (0x00090010, "LO", b"ACME 1.0"),
        (0x00091001, "UN", b"\x01\x02\x03\x04"),
        (0x00091010, "RAW", cp246),
        # a known sequence stored as UN: undefined length (CP-246) and defined length
        (0x00081115, "RAW", sequence(0x00081115, [item(element(0x0020000E, "UI", b"1.2.3.5\x00",
                                                               implicit=True))], vr="UN")),
        (0x00081140, "RAW", sequence(0x00081140, [item(element(0x00081150, "UI", b"1.2.3\x00",
                                                               implicit=True))], vr="UN",
                                     undefined=False)),
        (0x00180050, "UN", b"5.0 "),
        (0x00324000, "UN", b"Patient has no fracture "),
        (0x00400275, "RAW", sequence(0x00400275, [item(element(0x00400007, "UN", b"desc")
                                                       + element(0x00400009, "SH", b"SPS1"))])),
        (0x20500020, "UN", b"INVERSE "),
    ]  # fmt: skip
    ds = basic_dataset(f"{uid}.3", extra=un)
    out.append(Oddity("un-elements", _write(d / "un-elements.dcm", part10(meta(EXPLICIT_LE, f"{uid}.3"), ds))))  # fmt: skip

    # explicit VR UN holding values of known binary VRs (US, FD, AT, UL; pydicom would hand
    # them over as numbers), odd-length strings, a CP-246 sequence of binary elements, and a
    # private UN beside its creator
    binary = [
        (0x00280010, "UN", _us(8)),  # Rows
        (0x00281050, "UN", b"40 "),  # Window Center (DS), odd length
        (0x00189089, "UN", struct.pack("<3d", 1.0, 0.0, 0.0)),  # Diffusion Gradient (FD)
        (0x00209165, "UN", struct.pack("<HH", 0x0020, 0x9056)),  # Dimension Index Pointer (AT)
        (0x00100030, "UN", b"19700101"),
        (0x00080100, "UN", struct.pack("<I", 12345)),  # a UL-sized value in a string tag
        (0x00186011, "RAW", sequence(0x00186011, [item(
            element(0x00186012, "US", _us(1), implicit=True)
            + element(0x00186014, "US", _us(2), implicit=True)
            + element(0x0018602C, "FD", struct.pack("<d", 0.1), implicit=True))], vr="UN")),
        (0x00290010, "LO", b"ACME"),
        (0x00291010, "UN", b"\x00\x01"),
    ]  # fmt: skip
    ds = basic_dataset(f"{uid}.12", extra=binary)
    out.append(Oddity("un-binary-vrs", _write(d / "un-binary-vrs.dcm", part10(meta(EXPLICIT_LE, f"{uid}.12"), ds))))  # fmt: skip

    # odd lengths DCMTK makes even on read (strings, and an odd OB)
    odd = [(0x00200010, "SH", b"ODD"), (0x00080070, "LO", b"Vendo"), (0x00081010, "SH", b"S1Z"),
           (0x00290010, "LO", b"ODDCO"), (0x00291001, "OB", b"\x01\x02\x03")]  # fmt: skip
    ds = basic_dataset(f"{uid}.4", extra=odd)
    out.append(Oddity("odd-lengths", _write(d / "odd-lengths.dcm", part10(meta(EXPLICIT_LE, f"{uid}.4"), ds)),
                      dcmtk_367_differs=True))  # fmt: skip

    # private sequences in implicit VR (undefined and defined length, unknown creator)
    inner = item(element(0x00191001, "LO", b"priv", implicit=True), undefined=False)
    priv = [
        (0x00190010, "LO", b"VENDOR X"),
        (0x00191010, "RAW", sequence(0x00191010, [item(element(0x00100010, "PN", b"In^Item ", implicit=True)
                                                       + element(0x00191001, "LO", b"v1", implicit=True),
                                                       undefined=True)], implicit=True)),
        (0x00191011, "RAW", sequence(0x00191011, [inner], implicit=True, undefined=False)),
    ]  # fmt: skip
    ds = basic_dataset(f"{uid}.5", implicit=True, extra=priv)
    out.append(Oddity("private-sq-implicit", _write(d / "private-sq-implicit.dcm", part10(meta(IMPLICIT_LE, f"{uid}.5"), ds))))  # fmt: skip

    # wrong group lengths (groups 0008, 0010 and 0028)
    wrong = [(0x00080000, "UL", struct.pack("<I", 4)), (0x00100000, "UL", struct.pack("<I", 9999)),
             (0x00280000, "UL", struct.pack("<I", 0))]  # fmt: skip
    ds = basic_dataset(f"{uid}.6", extra=wrong)
    out.append(Oddity("wrong-group-lengths", _write(d / "wrong-group-lengths.dcm", part10(meta(EXPLICIT_LE, f"{uid}.6"), ds))))  # fmt: skip

    # the meta names explicit VR LE, the data set is implicit VR LE: read with detection
    ds = basic_dataset(f"{uid}.7", implicit=True, extra=PADDED_STRINGS[:4])
    out.append(Oddity("wrong-meta-xfer", _write(d / "wrong-meta-xfer.dcm", part10(meta(EXPLICIT_LE, f"{uid}.7"), ds)),
                      dsig_read=("--read-xfer", "detect"), dcmsign_read=("-td",)))  # fmt: skip

    # file meta without the 128-byte preamble and DICM prefix
    ds = basic_dataset(f"{uid}.8")
    out.append(Oddity("meta-no-preamble", _write(d / "meta-no-preamble.dcm", meta(EXPLICIT_LE, f"{uid}.8") + ds)))  # fmt: skip

    # a bare data set (no meta at all), implicit VR
    ds = basic_dataset(f"{uid}.9", implicit=True)
    out.append(Oddity("bare-dataset", _write(d / "bare-dataset.dcm", ds),
                      dsig_read=("--read", "dataset"), dcmsign_read=("-f",)))  # fmt: skip

    # zero padding after the data set
    ds = basic_dataset(f"{uid}.10") + b"\x00" * 64
    out.append(Oddity("trailing-padding", _write(d / "trailing-padding.dcm", part10(meta(EXPLICIT_LE, f"{uid}.10"), ds))))  # fmt: skip
    return out
