"""The MAC byte stream of PS3.3 C.12.1.1.3.1.1, fed to a hash without being assembled.

Rules (verified byte for byte against ``dcmsign +d``): explicit VR little endian whatever the
file's encoding; sequences, items and encapsulated fragments without lengths; the sequence
delimiter always; unsignable elements left out at every depth; the signature item's own
elements (minus certificate, signature and timestamp) appended after the data elements.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from dsig.encoding.blob import Blob, source_blob
from dsig.encoding.values import (
    ITEM_TAG,
    SEQ_DELIM,
    SWAP_WIDTH,
    UNDEFINED,
    file_fragments,
    header,
    iter_fragments,
    le_value,
    pad_byte,
    read_range,
    swap_bytes,
)
from dsig.encoding.walk import LevelWalk, WalkEntry, Walks
from dsig.errors import DicomFormatError

#: Elements of the signature item that are not part of the MAC (C.12.1.1.3.1.2).
SIGNATURE_ITEM_EXCLUDED = frozenset({0x04000115, 0x04000120, 0x04000305, 0x04000310})

#: Receives stream chunks: a hash update, a dump file write, ...
Sink = Callable[[bytes | memoryview], object]


@dataclass(frozen=True)
class StreamOptions:
    """How to encode: ``old_format`` = DCMTK < 3.5.4, which hashed fragment lengths."""

    old_format: bool = False


class MacWriter:
    """Collects small writes into one buffer and passes large values straight to the sinks."""

    _FLUSH_AT = 1 << 16

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self._sinks = tuple(sinks)
        self._buf = bytearray()
        self.length = 0

    def write(self, data: bytes | memoryview) -> None:
        """Append bytes to the stream."""
        self.length += len(data)
        if len(data) >= self._FLUSH_AT:
            self.flush()
            for sink in self._sinks:
                sink(data)
            return
        self._buf += data
        if len(self._buf) >= self._FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered bytes to the sinks."""
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            for sink in self._sinks:
                sink(data)


class StreamEncoder:
    """Encodes data-set levels into the MAC stream. ``walks``: the level walks to use (shared
    with the caller's checks); a fresh set otherwise."""

    def __init__(
        self, out: MacWriter, options: StreamOptions = StreamOptions(), walks: Walks | None = None
    ) -> None:
        self.out = out
        self.options = options
        self.walks = walks if walks is not None else Walks()

    def element(self, level: Dataset, tag: int, ancestors: Sequence[Dataset]) -> None:
        """Encode one element of ``level`` (the caller has checked it is signable)."""
        self.encode(self.walks.of(level, ancestors), tag)

    def encode(self, walk: LevelWalk, tag: int) -> None:
        """Encode one element of ``walk``'s level (the caller has checked it is signable)."""
        self.encode_entry(walk, walk.entry(tag))

    def encode_entry(self, walk: LevelWalk, entry: WalkEntry) -> None:
        """Encode one (checked) entry of ``walk``."""
        tag, _key, elem, vr, sequence = entry
        if sequence:
            self.out.write(header(tag, "SQ", None))
            for item in walk.item_walks(entry):
                self.out.write(ITEM_TAG)
                self.encode_level(item)
            self.out.write(SEQ_DELIM)
        elif isinstance(elem, RawDataElement):
            if elem.value is None and elem.length != 0:  # left in the file (is_deferred)
                self._deferred(elem, tag, vr, source_blob(walk.child_ancestors))
            else:
                self._raw(elem, tag, vr)
        else:
            self._converted(elem, tag, vr)

    def dataset(self, item: Dataset, ancestors: Sequence[Dataset]) -> None:
        """Every signable element of an item, in tag order."""
        self.encode_level(self.walks.of(item, ancestors))

    def encode_level(self, walk: LevelWalk) -> None:
        """Every signable element of ``walk``'s level, in tag order."""
        for entry in walk.in_tag_order():
            if walk.signable(entry.tag):
                self.encode_entry(walk, walk.check(entry))

    def _raw(self, elem: RawDataElement, tag: int, vr: str) -> None:
        value = elem.value or b""
        if elem.length == UNDEFINED:
            self._encapsulated(value, tag, vr)
            return
        # le_value(elem, vr), inlined: this runs for nearly every element.
        if not elem.is_little_endian and vr in SWAP_WIDTH:
            value = swap_bytes(value, SWAP_WIDTH[vr])
        if len(value) & 1:
            value += pad_byte(vr)
        self.out.write(header(tag, vr, len(value)) + value)

    def _deferred(self, elem: RawDataElement, tag: int, vr: str, blob: Blob) -> None:
        """A value still in the file: read it in chunks straight into the sinks."""
        out = self.out
        offset = elem.value_tell or 0
        with blob.open() as fp:
            if elem.length == UNDEFINED:
                out.write(header(tag, "OB", None))
                end = blob.size()
                for start, length in list(file_fragments(fp, offset, end, tag)):
                    if self.options.old_format:
                        out.write(ITEM_TAG + struct.pack("<I", length))
                    else:
                        out.write(ITEM_TAG)
                    for chunk in read_range(fp, start, length):
                        out.write(chunk)
                out.write(SEQ_DELIM)
                return
            length = elem.length
            swap = not elem.is_little_endian and vr in SWAP_WIDTH
            if swap and length % SWAP_WIDTH[vr]:
                raise DicomFormatError(
                    f"binary value of {length} bytes is not a multiple of {SWAP_WIDTH[vr]}"
                )
            out.write(header(tag, vr, length + (length & 1)))
            for chunk in read_range(fp, offset, length):
                out.write(swap_bytes(bytes(chunk), SWAP_WIDTH[vr]) if swap else chunk)
            if length & 1:
                out.write(pad_byte(vr))

    def _converted(self, elem: DataElement, tag: int, vr: str) -> None:
        if elem.is_undefined_length and vr in ("OB", "OW", "UN"):
            value = elem.value if isinstance(elem.value, bytes | bytearray) else b""
            self._encapsulated(value, tag, vr)
            return
        value = le_value(elem, vr)
        self.out.write(header(tag, vr, len(value)))
        self.out.write(memoryview(value))

    def _encapsulated(self, value: bytes | bytearray | memoryview, tag: int, vr: str) -> None:
        # DCMTK holds every encapsulated value as an OB pixel sequence, even when the file
        # says OW (seen in pydicom's MR_small_jpeg_ls_lossless.dcm).
        self.out.write(header(tag, "OB", None))
        for fragment in iter_fragments(value, tag):
            if self.options.old_format:
                self.out.write(ITEM_TAG + struct.pack("<I", len(fragment)))
            else:
                self.out.write(ITEM_TAG)
            self.out.write(fragment)
        self.out.write(SEQ_DELIM)


def write_mac_stream(
    level: Dataset,
    signed_tags: Sequence[int],
    signature_item: Dataset,
    sinks: Sequence[Sink],
    *,
    ancestors: Sequence[Dataset] = (),
    options: StreamOptions = StreamOptions(),
    walks: Walks | None = None,
) -> list[int]:
    """Feed the MAC stream of one signature to ``sinks``; returns the listed tags not present.
    ``walks``: level walks shared with the caller (a fresh set otherwise).

    Raises DicomFormatError when a listed element is present but not signable (DCMTK: the
    signature "contains attribute that is not signable").
    """
    out = MacWriter(sinks)
    enc = StreamEncoder(out, options, walks)
    walk = enc.walks.of(level, ancestors)
    missing = []
    for tag in sorted(set(signed_tags)):
        if not walk.has(tag):
            missing.append(tag)
            continue
        if not walk.signable(tag):
            raise UnsignableElementError(tag)
        enc.encode(walk, tag)
    # Signable as an item of its own, encoded under the level (DCMTK's reading of both).
    item_alone = enc.walks.of(signature_item)
    item_under_level = enc.walks.of(signature_item, walk.child_ancestors)
    for entry in item_alone.in_tag_order():
        if entry.tag in SIGNATURE_ITEM_EXCLUDED or not item_alone.signable(entry.tag):
            continue
        enc.encode(item_under_level, entry.tag)
    out.flush()
    return missing


class UnsignableElementError(DicomFormatError):
    """A Data Elements Signed entry names an element that cannot be signed (UN, ...)."""

    def __init__(self, tag: int) -> None:
        super().__init__(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) is not signable")
        self.tag = tag
