"""Sign what dcmsign will read: string values as DCMTK holds them after reading.

DCMTK (``dcmEnableAutomaticInputDataCorrection``, on by default) corrects every string value
when it converts it to its internal form, and hashes and writes that form:

* ``DcmByteString::makeMachineByteString`` (dcmdata/libsrc/dcbytstr.cc): all trailing padding
  characters and NUL bytes are removed (for every string VR: AE AS CS DA DS DT IS LO LT PN SH
  ST TM UC UI UR UT); ``makeDicomByteString`` then pads an odd length with the VR's padding
  character (space; NUL for UI). Leading spaces, and spaces before a backslash, are kept.
* ``DcmUniqueIdentifier::makeMachineByteString`` (dcmdata/libsrc/dcvrui.cc): a UI value
  first loses every white-space character (``isspace``) wherever it is.
* ``DcmByteString::postLoadValue``: an odd length read from the file becomes even.

This is DCMTK 3.7.0's rule; 3.6.7 strips the padding character only (a NUL stops it), and
3.7.0 added trailing NULs (commit 31924835, DCMTK issue #1014). What dsig writes reads back
unchanged in both.

A signature over the stored bytes of such a value would not verify in dcmsign, so signing
normalises the values it signs (and only those) before hashing, and writes them normalised.
Verification hashes the stored bytes, so files signed by other tools verify as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from dsig.encoding.tags import tag_str
from dsig.encoding.values import (
    element_vr,
    is_deferred,
    is_sequence,
    le_value,
    sequence_items,
    stored,
)
from dsig.encoding.walk import Walks

#: The VRs DCMTK holds as DcmByteString (and DcmCharString) subclasses.
STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
     "UR", "UT"}
)  # fmt: skip
_WHITESPACE = b" \t\n\v\f\r"


def dcmtk_string(value: bytes, vr: str) -> bytes:
    """``value`` (a stored string value of ``vr``) as DCMTK reads, hashes and writes it."""
    if vr == "UI":
        value = bytes(b for b in value if b not in _WHITESPACE)
        pad = b"\x00"
    else:
        pad = b" "
    value = value.rstrip(pad + b"\x00")
    return value + pad if len(value) % 2 else value


def normalise_for_signing(
    level: Dataset, tags: Sequence[int], ancestors: Sequence[Dataset] = ()
) -> list[str]:
    """Normalise, in place, the string values the MAC of ``tags`` at ``level`` will cover
    (items of signed sequences included); returns where values changed, e.g.
    ``(0008,0008)`` or ``(0040,0275)[0](0040,0007)``."""
    touched: list[str] = []
    walks = Walks()  # one walk per item: a fresh one per element was quadratic in item size
    for tag in sorted(set(tags)):
        if tag in level:
            _normalise(level, tag, tuple(ancestors), tag_str(tag), touched, walks)
    return touched


def _normalise(
    level: Dataset,
    tag: int,
    ancestors: tuple[Dataset, ...],
    where: str,
    touched: list[str],
    walks: Walks,
) -> None:
    vr = element_vr(level, tag, ancestors)
    if is_sequence(level, tag, vr):
        inside = (level, *ancestors)
        for n, item in enumerate(sequence_items(level, tag)):
            # signability is decided before any value of the item is replaced (values only:
            # VRs, tags and sequences stay, so the walk's answers stay right)
            walk = walks.of(item, inside)
            for inner in sorted(int(t) for t in item.keys()):
                if walk.signable(inner):
                    _normalise(item, inner, inside, f"{where}[{n}]{tag_str(inner)}", touched,
                               walks)  # fmt: skip
        return
    if vr not in STRING_VRS:
        return
    elem = stored(level, tag, keep_deferred=False)
    if is_deferred(elem):  # pragma: no cover - stored() with keep_deferred=False loads it
        return
    current = le_value(elem, vr)
    fixed = dcmtk_string(current, vr)
    raw_value = elem.value if isinstance(elem, RawDataElement) else None
    if fixed == current and (raw_value is None or bytes(raw_value) == fixed):
        return
    if fixed != current:
        touched.append(where)
    little = getattr(elem, "is_little_endian", True) if isinstance(elem, RawDataElement) else True
    implicit = bool(getattr(elem, "is_implicit_VR", False))
    level._dict[BaseTag(tag)] = RawDataElement(
        BaseTag(tag), vr, len(fixed), fixed, 0, implicit, little
    )


__all__ = ["STRING_VRS", "dcmtk_string", "normalise_for_signing"]
