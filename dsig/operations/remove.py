"""Remove signatures: one by UID, or all of them at every level."""

from __future__ import annotations

from pydicom.dataset import Dataset

from dsig.encoding.values import sequence_items
from dsig.errors import SignatureNotFoundError
from dsig.signature.model import (
    DIGITAL_SIGNATURES_SEQUENCE,
    MAC_ID_NUMBER,
    MAC_PARAMETERS_SEQUENCE,
    find_signature,
    iter_levels,
    raw_ushort,
)


def remove_signature(ds: Dataset, uid: str) -> None:
    """Remove the signature with this UID and its MAC Parameters item if no other uses it."""
    ref = find_signature(ds, uid)
    del ref.level[DIGITAL_SIGNATURES_SEQUENCE].value[ref.index]
    _clean_level(ref.level)


def remove_all(ds: Dataset) -> int:
    """Remove every signature and MAC Parameters item, main level and nested; returns the count."""
    count = 0
    for level, _path, _anc in list(iter_levels(ds)):
        if DIGITAL_SIGNATURES_SEQUENCE in level:
            count += len(sequence_items(level, DIGITAL_SIGNATURES_SEQUENCE))
            del level[DIGITAL_SIGNATURES_SEQUENCE]
        if MAC_PARAMETERS_SEQUENCE in level:
            del level[MAC_PARAMETERS_SEQUENCE]
    if count == 0:
        raise SignatureNotFoundError("the file holds no signature to remove")
    return count


def _clean_level(level: Dataset) -> None:
    """Drop MAC Parameters items no signature at this level refers to, and empty sequences."""
    used = {
        raw_ushort(item, MAC_ID_NUMBER)
        for item in sequence_items(level, DIGITAL_SIGNATURES_SEQUENCE)
    }
    if MAC_PARAMETERS_SEQUENCE in level:
        params = level[MAC_PARAMETERS_SEQUENCE].value
        keep = [p for p in params if raw_ushort(p, MAC_ID_NUMBER) in used]
        if keep:
            level[MAC_PARAMETERS_SEQUENCE].value = keep
        else:
            del level[MAC_PARAMETERS_SEQUENCE]
    if not used:
        del level[DIGITAL_SIGNATURES_SEQUENCE]
