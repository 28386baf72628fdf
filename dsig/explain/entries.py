"""How each element entered a signature's MAC stream: the stream encoder of
:mod:`dsig.signature.mac_stream` run element by element, so the byte counts and digests are the
real ones."""

from __future__ import annotations

import os
from collections.abc import Sequence

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from dsig.encoding.tags import tag_name, tag_str
from dsig.encoding.values import (
    LONG_VRS,
    UNDEFINED,
    element_vr,
    file_fragments,
    is_sequence,
    iter_fragments,
    sequence_items,
    source_path,
    stored,
    swaps,
)
from dsig.encoding.walk import Walks
from dsig.explain.model import StreamEntry
from dsig.signature.mac_stream import (
    SIGNATURE_ITEM_EXCLUDED,
    MacWriter,
    StreamEncoder,
    StreamOptions,
)
from tokens.digest import HashAlgorithm


def fragment_lengths(level: Dataset, tag: int, ancestors: Sequence[Dataset]) -> list[int] | None:
    """Item lengths of an encapsulated value (Basic Offset Table first), None when the
    element is not encapsulated."""
    elem = stored(level, tag, keep_deferred=True)
    if getattr(elem, "is_undefined_length", False) is False and not (
        isinstance(elem, RawDataElement) and elem.length == UNDEFINED
    ):
        return None
    if isinstance(elem, RawDataElement) and elem.value is None:  # still in the file
        with open(source_path((level, *ancestors)), "rb", buffering=0) as fp:
            size = os.fstat(fp.fileno()).st_size
            return [n for _, n in file_fragments(fp, elem.value_tell or 0, size, tag)]
    value = elem.value if isinstance(elem.value, bytes | bytearray) else b""
    return [len(f) for f in iter_fragments(value, tag)]


def describe_fragments(lengths: Sequence[int], *, old_format: bool) -> str:
    """'3 fragments hashed as stored, offset table included (12 bytes)'."""
    frames = len(lengths) - 1
    table = f"offset table included ({lengths[0]} bytes)" if lengths[0] else "empty offset table"
    if not lengths[0]:
        table += " included (item tag only)"
    lengths_rule = (
        "item tags and lengths (pre-3.5.4 DCMTK format)" if old_format else "item tags only"
    )
    return (
        f"{frames} fragment{'s' * (frames != 1)} hashed as stored, {table}; "
        f"{lengths_rule}, no element length, sequence delimiter"
    )


def _how(
    level: Dataset, tag: int, vr: str, ancestors: Sequence[Dataset], length: int, old: bool
) -> str:
    if is_sequence(level, tag, vr):
        n = len(sequence_items(level, tag))
        return (
            f"sequence of {n} item{'s' * (n != 1)}: header without length, each item's tag "
            "without length, its elements in tag order, sequence delimiter"
        )
    fragments = fragment_lengths(level, tag, ancestors)
    if fragments is not None:
        return describe_fragments(fragments, old_format=old)
    elem = stored(level, tag, keep_deferred=True)
    value_length = length - (12 if vr in LONG_VRS else 8)
    notes = []
    if isinstance(elem, RawDataElement):
        if elem.is_implicit_VR:
            notes.append("VR from the dictionary (file is implicit VR)")
        if not elem.is_little_endian and swaps(vr):
            notes.append("byte-swapped from big endian")
        if elem.length != UNDEFINED and elem.length % 2:
            notes.append("padded to even length")
    tail = f"; {', '.join(notes)}" if notes else ""
    return f"header (tag, {vr}, value length {value_length}) + value{tail}"


def entry_digest(
    level: Dataset,
    tag: int,
    ancestors: Sequence[Dataset],
    mac: HashAlgorithm,
    options: StreamOptions,
) -> tuple[int, str]:
    """(bytes, hex digest) of one element's part of the MAC stream."""
    hasher = mac.new()
    out = MacWriter([hasher.update])
    StreamEncoder(out, options).element(level, tag, ancestors)
    out.flush()
    return out.length, hasher.digest().hex()


def stream_entries(
    level: Dataset,
    signed: Sequence[int],
    item: Dataset,
    ancestors: Sequence[Dataset],
    mac: HashAlgorithm,
    options: StreamOptions,
) -> list[StreamEntry]:
    """One entry per element, in stream order: the signed elements present and signable,
    then the signature item's own elements."""
    entries: list[StreamEntry] = []
    walks = Walks()  # one walk per level, not one per tag
    signable = walks.of(level, ancestors).signable
    for tag in sorted(set(signed)):
        if tag not in level or not signable(tag):
            continue
        vr = element_vr(level, tag, ancestors)
        length, digest = entry_digest(level, tag, ancestors, mac, options)
        how = _how(level, tag, vr, ancestors, length, options.old_format)
        entries.append(StreamEntry(tag_str(tag), tag_name(tag), vr, how, length, digest))
    inner = (level, *ancestors)
    for tag in sorted(item.keys()):
        if tag in SIGNATURE_ITEM_EXCLUDED or not walks.of(item).signable(int(tag)):
            continue
        vr = element_vr(item, tag, inner)
        length, digest = entry_digest(item, tag, inner, mac, options)
        how = _how(item, tag, vr, inner, length, options.old_format)
        entries.append(
            StreamEntry(tag_str(tag), tag_name(tag), vr, how, length, digest, "signature item")
        )
    return entries
