"""DICOM element values as stored: VR resolution (implicit, ambiguous and private VRs as
DCMTK resolves them), values left in the file and read back in chunks, and explicit VR little
endian encoding of headers and values. No signature rules here."""

from __future__ import annotations

import io
import queue
import struct
import threading
from collections.abc import Iterator, Sequence
from typing import cast

from pydicom.datadict import dictionary_VR, private_dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.tag import BaseTag

from dsig.errors import DicomFormatError

ITEM_TAG = b"\xfe\xff\x00\xe0"
SEQ_DELIM = b"\xfe\xff\xdd\xe0"
UNDEFINED = 0xFFFFFFFF

#: VRs whose explicit-VR header has 2 reserved bytes and a 32-bit length.
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
#: Bytes per swapped unit for binary VRs (big endian -> little endian).
SWAP_WIDTH = {
    "US": 2, "SS": 2, "OW": 2, "AT": 2,
    "UL": 4, "SL": 4, "FL": 4, "OF": 4, "OL": 4,
    "FD": 8, "OD": 8, "SV": 8, "UV": 8, "OV": 8,
}  # fmt: skip
_TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT"}
)

# 'US or SS' tags whose VR follows Pixel Representation (same list pydicom and DCMTK use).
_PIXEL_REP_TAGS = frozenset(
    {
        0x00189810, 0x00221452, 0x00280104, 0x00280105, 0x00280106, 0x00280107,
        0x00280108, 0x00280109, 0x00280110, 0x00280111, 0x00280120, 0x00280121,
        0x00281101, 0x00281102, 0x00281103, 0x00283002, 0x00409211, 0x00409216,
        0x00603004, 0x00603006,
    }
)  # fmt: skip

#: Top-level values larger than this stay in the file when read (pydicom ``defer_size``) and are
#: streamed from it in chunks by the MAC encoder and the writer: memory does not grow with
#: Pixel Data. Nested items are never deferred by pydicom; deflated files are read whole.
DEFER_SIZE = 256 * 1024
#: Read size for streamed values (a multiple of every swap width).
CHUNK_SIZE = 1 << 20


# --- values left in the file ----------------------------------------------------------------


def is_deferred(elem: RawDataElement | DataElement) -> bool:
    """A raw element whose value pydicom left in the file (read with ``defer_size``)."""
    return isinstance(elem, RawDataElement) and elem.value is None and elem.length != 0


def deferred_values(ds: Dataset) -> list[RawDataElement]:
    """The elements of ``ds`` (this level only) whose values are still in the file."""
    return [e for e in ds._dict.values() if isinstance(e, RawDataElement) and is_deferred(e)]


def source_path(levels: Sequence[Dataset]) -> str:
    """The file a deferred value lives in: ``filename`` of the root (the last level given)."""
    for ds in reversed(levels):
        name = getattr(ds, "filename", None)
        if isinstance(name, str) and name:
            return name
    raise DicomFormatError("a value was left in the file, but the data set has no file name")


def read_range(
    fp: io.RawIOBase | io.BufferedIOBase, offset: int, length: int, *, reuse: bool = True
) -> Iterator[bytes | memoryview]:
    """``length`` bytes at ``offset`` in chunks. ``reuse``: views into one buffer, each valid
    only until the next chunk is asked for (hashing); otherwise fresh ``bytes`` per chunk."""
    if length >= READ_AHEAD_MIN:
        yield from _read_ahead(fp, offset, length, reuse=reuse)
        return
    fp.seek(offset)
    buf = bytearray(min(CHUNK_SIZE, length)) if reuse else bytearray()
    view = memoryview(buf)
    remaining = length
    while remaining > 0:
        want = min(CHUNK_SIZE, remaining)
        if reuse:
            got = fp.readinto(view[:want])
            chunk: bytes | memoryview = view[:got]
        else:
            chunk = fp.read(want)
            got = len(chunk)
        if not got:
            raise DicomFormatError(
                f"truncated: {remaining} bytes missing at byte {offset + length - remaining} "
                "(did the file change while it was read?)"
            )
        remaining -= got
        yield chunk


#: Values at least this long are read by a second thread while the first one hashes: reads
#: and SHA-256 both release the GIL, so reading costs no wall time (about 20% otherwise).
READ_AHEAD_MIN = 16 * CHUNK_SIZE
_RING = 3


def _read_ahead(
    fp: io.RawIOBase | io.BufferedIOBase, offset: int, length: int, *, reuse: bool
) -> Iterator[bytes | memoryview]:
    """:func:`read_range` with a reader thread filling a ring of buffers ahead of the caller.
    A chunk's buffer goes back to the reader when the caller asks for the next chunk
    (``reuse=False``: fresh ``bytes`` per chunk, at most ``_RING`` read ahead)."""
    bufs = [bytearray(CHUNK_SIZE) for _ in range(_RING)] if reuse else []
    fresh: list[bytes] = [b""] * _RING
    free: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    full: queue.SimpleQueue[tuple[int, int] | BaseException] = queue.SimpleQueue()
    for i in range(_RING):
        free.put(i)

    def reader() -> None:
        try:
            fp.seek(offset)
            remaining = length
            while remaining > 0:
                i = free.get()
                if i is None:  # the caller stopped early
                    return
                want = min(CHUNK_SIZE, remaining)
                if reuse:
                    got = fp.readinto(memoryview(bufs[i])[:want]) or 0
                else:
                    fresh[i] = fp.read(want) or b""
                    got = len(fresh[i])
                full.put((i, got))
                if not got:
                    return
                remaining -= got
        except BaseException as e:  # handed to the caller, raised there
            full.put(e)

    thread = threading.Thread(target=reader, name="dsig-read-ahead", daemon=True)
    thread.start()
    remaining = length
    try:
        while remaining > 0:
            item = full.get()
            if isinstance(item, BaseException):
                raise item
            i, got = item
            if not got:
                raise DicomFormatError(
                    f"truncated: {remaining} bytes missing at byte "
                    f"{offset + length - remaining} (did the file change while it was read?)"
                )
            remaining -= got
            if reuse:
                yield memoryview(bufs[i])[:got]
            else:
                chunk, fresh[i] = fresh[i], b""
                yield chunk
            free.put(i)
    finally:
        free.put(None)
        thread.join()


def file_fragments(
    fp: io.RawIOBase | io.BufferedIOBase, start: int, end: int, tag: int
) -> Iterator[tuple[int, int]]:
    """(offset, length) of each item of an encapsulated value that starts at ``start`` in the
    file, by walking the item headers only; ``end`` is the file size."""
    pos = start
    while True:
        fp.seek(pos)
        head = fp.read(8)
        if len(head) < 8:
            raise DicomFormatError(f"truncated encapsulated value in {tag:08X}")
        group, element, length = struct.unpack("<HHI", head)
        if (group, element) == (0xFFFE, 0xE0DD):
            return
        if (group, element) != (0xFFFE, 0xE000) or length == UNDEFINED:
            raise DicomFormatError(
                f"malformed encapsulated value in {tag:08X} at byte {pos - start}"
            )
        if pos + 8 + length > end:
            raise DicomFormatError(f"truncated encapsulated value in {tag:08X}")
        yield pos + 8, length
        pos += 8 + length


def swaps(vr: str) -> bool:
    """Binary VRs whose values change between little and big endian."""
    return vr in SWAP_WIDTH


def pad_byte(vr: str) -> bytes:
    """The byte that pads an odd-length value of ``vr`` to even length."""
    return b" " if vr in _TEXT_VRS else b"\x00"


# --- element views -------------------------------------------------------------------------


def stored(ds: Dataset, tag: int, *, keep_deferred: bool = False) -> RawDataElement | DataElement:
    """The element as stored: pydicom keeps unconverted RawDataElements until asked (its type
    hints say DataElement); we read raw bytes to hash values exactly as they are in the file."""
    # Hot path (many lookups per element): pydicom's element dict is keyed by int tags, and
    # get_item would convert the key with Tag() on every call. Absent and deferred elements
    # take pydicom's own path.
    elem = ds._dict.get(cast("BaseTag", tag))
    if elem is None or (
        not keep_deferred and isinstance(elem, RawDataElement) and elem.value is None
    ):
        return cast("RawDataElement | DataElement", ds.get_item(tag, keep_deferred=keep_deferred))
    return elem


def element_vr(level: Dataset, tag: int, ancestors: Sequence[Dataset] = ()) -> str:
    """The VR of an element as DCMTK sees it, resolving implicit and ambiguous VRs."""
    elem = stored(level, tag, keep_deferred=True)
    vr = elem.VR
    if vr is not None and " or " not in vr:
        return str(vr)
    return _resolve_vr(tag, vr, level, ancestors, elem)


def _resolve_vr(
    tag: int,
    vr: str | None,
    level: Dataset,
    ancestors: Sequence[Dataset],
    elem: RawDataElement | DataElement,
) -> str:
    if vr is None:
        if tag & 0xFFFF == 0:
            return "UL"  # group lengths, public or private (not all are in the dictionary)
        if tag >> 16 & 1:
            return _implicit_private_vr(level, tag)
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return "UN"
    if " or " not in vr:
        return vr
    if tag == 0x7FE00010 or vr == "OB or OW":
        length = elem.length if isinstance(elem, RawDataElement) else None
        return "OB" if length == UNDEFINED else "OW"
    if vr == "US or SS":
        if tag in _PIXEL_REP_TAGS:
            return "SS" if _pixel_representation(level, ancestors) == 1 else "US"
        return "US"
    # 'US or OW', 'US or SS or OW' (LUT data) are OW in implicit VR, as DCMTK reads them.
    return "OW"


def _implicit_private_vr(level: Dataset, tag: int) -> str:
    """Implicit VR private data: private creators are LO; other elements take their VR from
    the private dictionary under their creator (as DCMTK's private.dic does), else UN."""
    element = tag & 0xFFFF
    if 0x0010 <= element <= 0x00FF:
        return "LO"
    if element < 0x1000:
        return "UN"
    creator_tag = (tag & 0xFFFF0000) | (element >> 8)
    if creator_tag not in level:
        return "UN"
    value = stored(level, creator_tag).value
    creator = (
        bytes(value).decode("latin-1").strip(" \x00")
        if isinstance(value, bytes | bytearray)
        else str(value or "").strip()
    )
    try:
        vr = private_dictionary_VR(tag, creator)
    except KeyError:
        return "UN"
    return vr if vr in _KNOWN_VRS else "UN"


_KNOWN_VRS = LONG_VRS | frozenset(SWAP_WIDTH) | _TEXT_VRS | {"OB", "UI", "AT", "SQ"}


def _pixel_representation(level: Dataset, ancestors: Sequence[Dataset]) -> int:
    for ds in (level, *ancestors):
        if 0x00280103 in ds:
            raw = stored(ds, 0x00280103, keep_deferred=True)
            value = raw.value
            if isinstance(value, bytes | bytearray) and len(value) >= 2:
                little = getattr(raw, "is_little_endian", True)
                return int(struct.unpack("<H" if little else ">H", value[:2])[0])
            if isinstance(value, int):
                return value
    return 0


def sequence_items(level: Dataset, tag: int) -> list[Dataset]:
    """The items of a sequence element (pydicom parses the raw value once)."""
    try:
        value = level[tag].value
    except Exception as e:
        raise DicomFormatError(f"malformed sequence {tag:08X}: {e}") from None
    if value is None:
        return []
    return list(value)


def is_sequence(level: Dataset, tag: int, vr: str) -> bool:
    """SQ elements, and UN of undefined length (an implicit VR sequence, as DCMTK reads it)."""
    if vr == "SQ":
        return True
    if vr == "UN":
        elem = stored(level, tag, keep_deferred=True)
        if isinstance(elem, RawDataElement) and elem.length == UNDEFINED:
            return level[tag].VR == "SQ"
    return False


# --- encoding --------------------------------------------------------------------------------


_HEAD_SHORT = struct.Struct("<HH2sH")
_HEAD_LONG = struct.Struct("<HH2s2xI")
_HEAD_NO_LENGTH = struct.Struct("<HH2s2x")


def header(tag: int, vr: str, length: int | None) -> bytes:
    """Explicit VR little endian element header; ``length=None`` for the MAC's length-less form."""
    code = vr.encode("ascii")
    if length is None:  # sequences and encapsulated data: no length at all
        return _HEAD_NO_LENGTH.pack(tag >> 16, tag & 0xFFFF, code)
    if vr in LONG_VRS:
        return _HEAD_LONG.pack(tag >> 16, tag & 0xFFFF, code, length)
    return _HEAD_SHORT.pack(tag >> 16, tag & 0xFFFF, code, length)


def swap_bytes(value: bytes, width: int) -> bytes:
    """Reverse the byte order of each ``width``-byte unit."""
    if len(value) % width:
        raise DicomFormatError(f"binary value of {len(value)} bytes is not a multiple of {width}")
    if width == 2:
        arr = bytearray(value)
        arr[0::2], arr[1::2] = value[1::2], value[0::2]
        return bytes(arr)
    out = bytearray(len(value))
    for i in range(width):
        out[i::width] = value[width - 1 - i :: width]
    return bytes(out)


def _pad(value: bytes, vr: str) -> bytes:
    if len(value) % 2 == 0:
        return value
    return value + (b" " if vr in _TEXT_VRS else b"\x00")


def le_value(elem: RawDataElement | DataElement, vr: str) -> bytes:
    """Value bytes of a non-sequence element as explicit VR little endian, padded to even length."""
    if isinstance(elem, RawDataElement):
        value = elem.value or b""
        if not elem.is_little_endian and vr in SWAP_WIDTH:
            value = swap_bytes(value, SWAP_WIDTH[vr])
        return _pad(value, vr)
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    if elem.VR != vr:
        elem = DataElement(elem.tag, vr, elem.value)
    try:
        write_data_element(fp, elem)
    except (ValueError, TypeError, struct.error) as e:
        raise DicomFormatError(f"cannot encode element {elem.tag}: {e}") from None
    encoded = fp.getvalue()
    return encoded[12:] if vr in LONG_VRS else encoded[8:]


def to_big_endian(value: bytes, vr: str) -> bytes:
    """Little endian value bytes -> big endian (binary VRs only)."""
    width = SWAP_WIDTH.get(vr)
    return swap_bytes(value, width) if width else value


def iter_fragments(value: bytes | bytearray | memoryview, tag: int) -> Iterator[memoryview]:
    """Items of an encapsulated value (Basic Offset Table first), as views into ``value``."""
    view = memoryview(value)
    pos, end = 0, len(view)
    while pos + 8 <= end:
        group, element, length = struct.unpack_from("<HHI", view, pos)
        pos += 8
        if (group, element) == (0xFFFE, 0xE0DD):
            return
        if (group, element) != (0xFFFE, 0xE000) or length == UNDEFINED or pos + length > end:
            raise DicomFormatError(f"malformed encapsulated value in {tag:08X} at byte {pos - 8}")
        yield view[pos : pos + length]
        pos += length
    if pos != end:
        raise DicomFormatError(f"truncated encapsulated value in {tag:08X}")


def raw_text(ds: Dataset, tag: int) -> str | None:
    """Stored text of a string element (trailing padding removed), not converted in place."""
    if tag not in ds:
        return None
    elem = stored(ds, tag)
    value = elem.value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1").rstrip("\x00 ")
    if value is None:
        return ""
    return str(value).rstrip("\x00 ")


def decoded_text(ds: Dataset, tag: int, vr: str) -> str | None:
    """A string element of a top-level data set decoded in its Specific Character Set
    (trailing padding removed), without pydicom's warnings and not converted in place;
    undecodable bytes read as U+FFFD."""
    if tag not in ds:
        return None
    value = stored(ds, tag).value
    if isinstance(value, bytes | bytearray):
        from dsig.encoding.charsets import decode_text, python_encodings  # lazy: rarely needed

        # the level's own Specific Character Set, looked up without pydicom's warnings (a
        # plain pydicom data set's ``_character_set`` would warn); the verifier notes them
        charset = stored(ds, 0x00080005).value if 0x00080005 in ds else None
        encodings = python_encodings(charset)[0]
        return decode_text(bytes(value), encodings, vr)[0].rstrip("\x00 ")
    if value is None:
        return ""
    return str(value).rstrip("\x00 ")
