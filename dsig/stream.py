"""The MAC byte stream of PS3.3 C.12.1.1.3.1.1, fed to a hash without being assembled.

Rules (verified byte for byte against ``dcmsign +d``): explicit VR little endian whatever the
file's encoding; sequences, items and encapsulated fragments without lengths; the sequence
delimiter always; unsignable elements left out at every depth; the signature item's own
elements (minus certificate, signature and timestamp) appended after the data elements.
"""

from __future__ import annotations

import io
import queue
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, cast

from pydicom.datadict import dictionary_VR, private_dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.tag import BaseTag

from dsig.blob import Blob, source_blob
from dsig.errors import DicomFormatError

ITEM_TAG = b"\xfe\xff\x00\xe0"
SEQ_DELIM = b"\xfe\xff\xdd\xe0"
UNDEFINED = 0xFFFFFFFF

#: VRs whose explicit-VR header has 2 reserved bytes and a 32-bit length.
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
#: Bytes per swapped unit for binary VRs (big endian -> little endian).
_SWAP_WIDTH = {
    "US": 2, "SS": 2, "OW": 2, "AT": 2,
    "UL": 4, "SL": 4, "FL": 4, "OF": 4, "OL": 4,
    "FD": 8, "OD": 8, "SV": 8, "UV": 8, "OV": 8,
}  # fmt: skip
_TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT"}
)
#: Elements of the signature item that are not part of the MAC (C.12.1.1.3.1.2).
SIGNATURE_ITEM_EXCLUDED = frozenset({0x04000115, 0x04000120, 0x04000305, 0x04000310})

# 'US or SS' tags whose VR follows Pixel Representation (same list pydicom and DCMTK use).
_PIXEL_REP_TAGS = frozenset(
    {
        0x00189810, 0x00221452, 0x00280104, 0x00280105, 0x00280106, 0x00280107,
        0x00280108, 0x00280109, 0x00280110, 0x00280111, 0x00280120, 0x00280121,
        0x00281101, 0x00281102, 0x00281103, 0x00283002, 0x00409211, 0x00409216,
        0x00603004, 0x00603006,
    }
)  # fmt: skip

#: Receives stream chunks: a hash update, a dump file write, ...
Sink = Callable[[bytes | memoryview], object]

#: Top-level values larger than this stay in the file when read (pydicom ``defer_size``) and are
#: streamed from it in chunks by the MAC encoder and the writer: memory does not grow with
#: Pixel Data. Nested items are never deferred by pydicom; deflated files are read whole.
DEFER_SIZE = 256 * 1024
#: Read size for streamed values (a multiple of every swap width).
CHUNK_SIZE = 1 << 20


def is_signable_tag(tag: int) -> bool:
    """Tag-based exclusions of C.12.1.1.3.1.1 (group lengths, groups < 0008, FFFA, ...)."""
    group, element = tag >> 16, tag & 0xFFFF
    return not (
        element == 0
        or tag == 0x00080001
        or group < 0x0008
        or group == 0xFFFA
        or tag == 0x4FFE0001
        or tag == 0xFFFCFFFC
        or group == 0xFFFE
    )


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


# --- values left in the file ----------------------------------------------------------------


def is_deferred(elem: RawDataElement | DataElement) -> bool:
    """A raw element whose value pydicom left in the file (read with ``defer_size``)."""
    return isinstance(elem, RawDataElement) and elem.value is None and elem.length != 0


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
    return vr in _SWAP_WIDTH


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


_KNOWN_VRS = LONG_VRS | frozenset(_SWAP_WIDTH) | _TEXT_VRS | {"OB", "UI", "AT", "SQ"}


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


def contains_un(items: Sequence[Dataset], ancestors: Sequence[Dataset]) -> bool:
    """True if any element inside (recursively) has VR UN: the whole sequence is unsignable."""
    walks = Walks()
    return any(walks.of(item, ancestors).contains_un() for item in items)


def is_signable(level: Dataset, tag: int, ancestors: Sequence[Dataset] = ()) -> bool:
    """Full C.12.1.1.3.1.1 rule: tag rules, no UN, no sequence containing UN."""
    return Walks().of(level, ancestors).signable(tag)


# --- one walk per level ------------------------------------------------------------------------


class WalkEntry(NamedTuple):
    """One element of a level, as the MAC rules see it."""

    tag: int
    #: pydicom's own key object (a BaseTag): looking its element up with it skips the
    #: Python-level ``BaseTag.__eq__`` that a plain int key costs on every probe.
    key: BaseTag
    elem: RawDataElement | DataElement
    vr: str
    sequence: bool


class LevelWalk:
    """One data-set level walked once, for everything verification asks of it: each element's
    VR (as :func:`element_vr` resolves it), whether it is a sequence, its items, whether it is
    signable. Built in one pass over the level; an element pydicom has since converted in
    place (a raw sequence parsed) is looked at again. The level must not otherwise change
    while the walk is used (verification and encoding only read).

    A VR that cannot be resolved (a malformed element) is raised when a caller reaches that
    element, as if it were resolved then: the same error, at the same point of each check.
    """

    __slots__ = (
        "_contains_un", "_failures", "_items", "_signable", "_sorted", "_walks", "ancestors",
        "by_tag", "child_ancestors", "entries", "level",
    )  # fmt: skip

    def __init__(self, walks: Walks, level: Dataset, ancestors: tuple[Dataset, ...]) -> None:
        self.level = level
        self.ancestors = ancestors
        #: The ancestors of this level's sequence items.
        self.child_ancestors = (level, *ancestors)
        self._walks = walks
        #: The elements in the level's own order (the file's), then by tag.
        self.entries: list[WalkEntry] = []
        self.by_tag: dict[int, WalkEntry] = {}
        self._failures: dict[int, Exception] = {}
        self._sorted: list[WalkEntry] | None = None
        self._signable: dict[int, bool] = {}
        self._items: dict[int, list[Dataset]] = {}
        self._contains_un: bool | None = None
        for key in list(level._dict):
            entry = self._resolve(int(key), key)
            self.entries.append(entry)
            self.by_tag[entry.tag] = entry

    def _resolve(self, tag: int, key: BaseTag) -> WalkEntry:
        level = self.level
        elem = level._dict[key]
        vr = elem.VR
        try:
            if vr is None or " or " in vr:
                vr = element_vr(level, key, self.ancestors)
            if vr == "UN":
                sequence = is_sequence(level, key, vr)
                # is_sequence may have parsed a raw sequence, replacing the element.
                elem = stored(level, key, keep_deferred=True)
            else:
                sequence = vr == "SQ"
        except Exception as e:  # raised by check() when a caller reaches this element
            self._failures[tag] = e
            return WalkEntry(tag, key, elem, "", False)
        if not sequence:  # a sequence's signability needs its items: found when asked
            self._signable[tag] = vr != "UN" and is_signable_tag(tag)
        return WalkEntry(tag, key, elem, str(vr), sequence)

    def check(self, entry: WalkEntry) -> WalkEntry:
        """``entry`` as it is now: its resolution error raised, re-resolved if pydicom has
        replaced the element since."""
        if self._failures or self.level._dict.get(entry.key) is not entry.elem:
            return self._recheck(entry)
        return entry

    def _recheck(self, entry: WalkEntry) -> WalkEntry:
        if entry.tag in self._failures:
            raise self._failures[entry.tag]
        if self.level._dict.get(entry.key) is not entry.elem:
            entry = self.by_tag[entry.tag] = self._resolve(entry.tag, entry.key)
            self._sorted = None
            self._signable.pop(entry.tag, None)
            if entry.tag in self._failures:
                raise self._failures[entry.tag]
        return entry

    def failed(self, tag: int) -> bool:
        """The element's VR could not be resolved (:meth:`check` raises why)."""
        return tag in self._failures

    def entry(self, tag: int) -> WalkEntry:
        """The entry of a present element (KeyError otherwise)."""
        return self.check(self.by_tag[tag])

    def has(self, tag: int) -> bool:
        """The element is present at this level."""
        return tag in self.by_tag

    def in_tag_order(self) -> list[WalkEntry]:
        """The entries by ascending tag."""
        if self._sorted is None:
            self._sorted = sorted(self.by_tag.values())
        return self._sorted

    def items(self, entry: WalkEntry) -> list[Dataset]:
        """The items of a sequence element (parsed once)."""
        items = self._items.get(entry.tag)
        if items is None:
            items = self._items[entry.tag] = sequence_items(self.level, entry.key)
        return items

    def item_walks(self, entry: WalkEntry) -> list[LevelWalk]:
        """Walks of the items of a sequence element."""
        return [self._walks.of(item, self.child_ancestors) for item in self.items(entry)]

    def signable(self, tag: int) -> bool:
        """:func:`is_signable` of an element of this level."""
        known = self._signable.get(tag)
        if known is None:
            known = self._signable[tag] = self._is_signable(tag)
        return known

    def _is_signable(self, tag: int) -> bool:
        if not is_signable_tag(tag):
            return False
        entry = self.entry(tag)
        if entry.sequence:
            return not any(walk.contains_un() for walk in self.item_walks(entry))
        return entry.vr != "UN"

    def contains_un(self) -> bool:
        """:func:`contains_un` of this level as a sequence item: an element (recursively) of
        VR UN, searched in the level's own order (the same element ends the search)."""
        if self._contains_un is None:
            self._contains_un = self._find_un()
        return self._contains_un

    def _find_un(self) -> bool:
        for entry in self.entries:
            entry = self.check(entry)
            if entry.sequence:
                if any(walk.contains_un() for walk in self.item_walks(entry)):
                    return True
            elif entry.vr == "UN":
                return True
        return False


class Walks:
    """The :class:`LevelWalk` of every level of one data set, made once per level (and
    ancestors: a VR may depend on them). Lives for one verification or one MAC computation."""

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        self._levels: dict[tuple[int, ...], LevelWalk] = {}

    def of(self, level: Dataset, ancestors: Sequence[Dataset] = ()) -> LevelWalk:
        """The walk of ``level`` under ``ancestors`` (it keeps them alive, so ids stay valid)."""
        key = (id(level), *map(id, ancestors))
        walk = self._levels.get(key)
        if walk is None:
            walk = self._levels[key] = LevelWalk(self, level, tuple(ancestors))
        return walk


# --- encoding --------------------------------------------------------------------------------


_HEAD_SHORT = struct.Struct("<HH2sH")
_HEAD_LONG = struct.Struct("<HH2s2xI")
_HEAD_NO_LENGTH = struct.Struct("<HH2s2x")


def _header(tag: int, vr: str, length: int | None) -> bytes:
    code = vr.encode("ascii")
    if length is None:  # sequences and encapsulated data: no length at all
        return _HEAD_NO_LENGTH.pack(tag >> 16, tag & 0xFFFF, code)
    if vr in LONG_VRS:
        return _HEAD_LONG.pack(tag >> 16, tag & 0xFFFF, code, length)
    return _HEAD_SHORT.pack(tag >> 16, tag & 0xFFFF, code, length)


def _swap(value: bytes, width: int) -> bytes:
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
        if not elem.is_little_endian and vr in _SWAP_WIDTH:
            value = _swap(value, _SWAP_WIDTH[vr])
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
    width = _SWAP_WIDTH.get(vr)
    return _swap(value, width) if width else value


def header(tag: int, vr: str, length: int | None) -> bytes:
    """Explicit VR little endian element header; ``length=None`` for the MAC's length-less form."""
    return _header(tag, vr, length)


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
            self.out.write(_header(tag, "SQ", None))
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
        if not elem.is_little_endian and vr in _SWAP_WIDTH:
            value = _swap(value, _SWAP_WIDTH[vr])
        if len(value) & 1:
            value += pad_byte(vr)
        self.out.write(_header(tag, vr, len(value)) + value)

    def _deferred(self, elem: RawDataElement, tag: int, vr: str, blob: Blob) -> None:
        """A value still in the file: read it in chunks straight into the sinks."""
        out = self.out
        offset = elem.value_tell or 0
        with blob.open() as fp:
            if elem.length == UNDEFINED:
                out.write(_header(tag, "OB", None))
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
            swap = not elem.is_little_endian and vr in _SWAP_WIDTH
            if swap and length % _SWAP_WIDTH[vr]:
                raise DicomFormatError(
                    f"binary value of {length} bytes is not a multiple of {_SWAP_WIDTH[vr]}"
                )
            out.write(_header(tag, vr, length + (length & 1)))
            for chunk in read_range(fp, offset, length):
                out.write(_swap(bytes(chunk), _SWAP_WIDTH[vr]) if swap else chunk)
            if length & 1:
                out.write(pad_byte(vr))

    def _converted(self, elem: DataElement, tag: int, vr: str) -> None:
        if elem.is_undefined_length and vr in ("OB", "OW", "UN"):
            value = elem.value if isinstance(elem.value, bytes | bytearray) else b""
            self._encapsulated(value, tag, vr)
            return
        value = le_value(elem, vr)
        self.out.write(_header(tag, vr, len(value)))
        self.out.write(memoryview(value))

    def _encapsulated(self, value: bytes | bytearray | memoryview, tag: int, vr: str) -> None:
        # DCMTK holds every encapsulated value as an OB pixel sequence, even when the file
        # says OW (seen in pydicom's MR_small_jpeg_ls_lossless.dcm).
        self.out.write(_header(tag, "OB", None))
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
