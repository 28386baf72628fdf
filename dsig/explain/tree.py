"""The file's element tree with covered / not covered marked (for the HTML page)."""

from __future__ import annotations

import struct

from pydicom.charset import default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from dsig.encoding.charsets import decode_text
from dsig.encoding.tags import tag_name, tag_str
from dsig.encoding.values import UNDEFINED, element_vr, is_sequence, sequence_items, stored
from dsig.explain.model import ElementNode

_FRAMING = frozenset({0xFFFAFFFA, 0x4FFE0001, 0x00080001})
_MAX_ITEMS = 50
_MAX_DEPTH = 8
_BULK = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN", "UT", "LT"})


#: struct codes of the binary VRs shown as numbers.
_NUMBERS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q",
            "UV": "Q", "AT": "HH"}  # fmt: skip


def _summary(level: Dataset, tag: int, vr: str, undecodable: list[str], where: str) -> str:
    """The value as the page shows it, decoded here from the stored bytes: pydicom's
    conversion would warn on stderr (bytes invalid in the character set, a value too long
    for its VR) and convert the element in place. Invalid bytes read as U+FFFD and are
    listed in ``undecodable`` (by ``where``)."""
    elem = stored(level, tag, keep_deferred=True)
    length = elem.length if isinstance(elem, RawDataElement) else None
    if length == UNDEFINED:
        return "encapsulated (undefined length)"
    if vr in _BULK or (length is not None and length > 80):
        return f"{length if length is not None else '?'} bytes"
    value = elem.value
    if not isinstance(value, bytes | bytearray):  # made by dsig, not read: already decoded
        text = "" if value is None else str(value)
    elif vr in _NUMBERS:
        code = _NUMBERS[vr]
        size = struct.calcsize(code)
        if len(value) % size:
            return f"{len(value)} bytes"
        order = "<" if getattr(elem, "is_little_endian", True) is not False else ">"
        numbers = [n for (n,) in struct.iter_unpack(order + code[0], value)]
        if vr == "AT":
            pairs = zip(numbers[::2], numbers[1::2], strict=True)
            text = "\\".join(f"({g:04X},{e:04X})" for g, e in pairs)
        else:
            text = "\\".join(str(n) for n in numbers)
    else:
        encodings = getattr(level, "_character_set", None) or default_encoding
        text, good = decode_text(bytes(value), encodings, vr)
        text = text.rstrip("\x00 ")
        if not good:
            undecodable.append(where)
    return text if len(text) <= 64 else text[:61] + "..."


def element_tree(
    ds: Dataset, covered: set[str], undecodable: list[str] | None = None
) -> tuple[ElementNode, ...]:
    """Top-level elements, ``covered`` when a main-level signature lists them; everything
    nested under a covered sequence is covered with it. Text values whose bytes are invalid
    in their character set are appended to ``undecodable`` (``(0040,A730)[1].(0040,A160)``)."""
    return _level(ds, covered, None, (), 0, [] if undecodable is None else undecodable, "")


def _level(
    level: Dataset,
    covered: set[str],
    inherited: bool | None,
    ancestors: tuple[Dataset, ...],
    depth: int,
    undecodable: list[str],
    prefix: str,
) -> tuple[ElementNode, ...]:
    nodes = []
    for tag in sorted(int(t) for t in level.keys()):
        vr = element_vr(level, tag, ancestors)
        framing = tag in _FRAMING or tag & 0xFFFF == 0
        is_covered: bool | None
        if inherited is not None:
            is_covered = inherited
        else:
            is_covered = None if framing else tag_str(tag) in covered
        children: tuple[ElementNode, ...] = ()
        summary = ""
        if is_sequence(level, tag, vr):
            items = sequence_items(level, tag)
            summary = f"{len(items)} item(s)"
            if depth < _MAX_DEPTH:
                kids = []
                for n, item in enumerate(items[:_MAX_ITEMS], 1):
                    inner = _level(item, covered, is_covered, (level, *ancestors), depth + 1,
                                   undecodable, f"{prefix}{tag_str(tag)}[{n}].")  # fmt: skip
                    kids.append(ElementNode("", f"item {n}", "", "", is_covered, inner))
                children = tuple(kids)
        else:
            summary = _summary(level, tag, vr, undecodable, prefix + tag_str(tag))
        nodes.append(ElementNode(tag_str(tag), tag_name(tag), vr, summary, is_covered, children))
    return tuple(nodes)
