"""Read DICOM files strictly: anything truncated or malformed becomes a DicomFormatError.

The file meta header's transfer syntax governs how the data set is read (unless the caller
chose another with :class:`~dsig.encoding.read_options.ReadOptions`): pydicom's habit of switching
between implicit and explicit VR when the first bytes look like the other encoding is turned
off while dsig reads, so a data set either parses cleanly in that encoding or is malformed.
Parser limits (elements, depth, inflated size) are enforced while pydicom parses, not after.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import io
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from pydicom import config
from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pydicom.valuerep import VR as PYDICOM_VR

from dsig.encoding._pydicom_reader import (
    StrictDataset,
    StrictFileDataset,
    private_filereader,
)
from dsig.encoding.blob import Blob, blob_of, source_blob
from dsig.encoding.charsets import python_encodings
from dsig.encoding.limits import DEFAULT_LIMITS, LimitExceededError, ParseLimits, WorkBudget
from dsig.encoding.read_options import DEFAULT_READ, ReadOptions
from dsig.encoding.tags import tag_str
from dsig.encoding.values import DEFER_SIZE, UNDEFINED, file_fragments, is_deferred, iter_fragments
from dsig.encoding.walk import Walks
from dsig.errors import DicomFormatError, DsigError


class DuplicateElementError(DicomFormatError):
    """The same tag twice in one data set or item: readers disagree on which one counts
    (pydicom keeps the last, DCMTK the first), so a signature could cover a value that another
    viewer never shows. Refused as malformed."""


@dataclass(frozen=True)
class Layout:
    """How the file was read, and the bytes around the data set that no signature covers."""

    #: Transfer syntax named by the file meta header ("" when there is none).
    meta_transfer_syntax: str
    #: The encoding the data set was read in.
    implicit: bool
    little: bool
    deflated: bool
    has_preamble: bool
    has_meta: bool
    #: Bytes after the last element of the data set (zero padding, or a short tail).
    trailing_bytes: int = 0

    @property
    def transfer_syntax(self) -> str:
        """The transfer syntax the data set was read in."""
        if self.deflated:
            return str(DeflatedExplicitVRLittleEndian)
        return _syntax_for(self.implicit, self.little)


def _syntax_for(implicit: bool, little: bool) -> str:
    if implicit:
        return str(ImplicitVRLittleEndian)
    return str(ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


class _ParseState:
    """The read in progress (a context variable): budget, top-level file object, tail."""

    def __init__(self, limits: ParseLimits, top: Any, input_bytes: int) -> None:
        self.budget = WorkBudget(limits, input_bytes)
        self.limits = limits
        self.top = top
        self.depth = 0
        self.top_end: int | None = None
        self.padding_at: int | None = None


_STATE: contextvars.ContextVar[_ParseState | None] = contextvars.ContextVar(
    "dsig_parse_state", default=None
)


def _guard_elements(generator: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """Wrap the reader's per-level element generator (each call reads one data set or item):
    refuse duplicate tags, count elements and depth against the limits as they are parsed,
    refuse a VR switch inside explicit VR data, parse sequences of defined length now (through
    this same reader, not pydicom's later), and find where the top-level data set ends
    (trailing zero padding is not an element)."""

    @functools.wraps(generator)
    def elements(fp: Any, implicit: bool, little: bool, *args: Any) -> Iterator[Any]:
        state = _STATE.get()
        if state is None:  # only read_dicom drives this reader
            raise RuntimeError("dsig's reader used outside read_dicom")
        encoding = args[2] if len(args) > 2 else default_encoding
        top = fp is state.top and state.depth == 0
        state.depth += 1
        state.budget.spend_item()  # the item (or data set) itself
        if state.depth > state.limits.max_depth:
            raise LimitExceededError(
                f"parser limit: sequences nested deeper than {state.limits.max_depth} "
                "levels (ParseLimits.max_depth)"
            )
        seen: set[int] = set()
        try:
            for elem in generator(fp, implicit, little, *args):
                tag = int(elem.tag)
                if top and tag == 0 and isinstance(elem, RawDataElement) and not elem.length:
                    state.padding_at = (elem.value_tell or 8) - 8
                    return  # zero bytes after the data set: padding, not an element
                if not implicit and elem.VR is None:
                    raise DicomFormatError(
                        f"element {tag_str(tag)} has no valid VR: the data set is not the "
                        "explicit VR its transfer syntax says (another reading may be chosen)",
                        option="read_xfer",
                    )
                state.budget.spend()
                if tag in seen:
                    raise DuplicateElementError(
                        f"element {tag_str(tag)} appears twice in one data set"
                    )
                seen.add(tag)
                if isinstance(elem, RawDataElement):
                    value = elem.value
                    if value is not None and elem.length != UNDEFINED and len(value) != elem.length:
                        # now, before a value (the character set) is used: pydicom reads short
                        raise DicomFormatError(
                            f"truncated: element {tag_str(tag)} has {len(value)} of "
                            f"{elem.length} bytes"
                        )
                    if tag == 0x00080005 and elem.value is not None:
                        encoding = _READER.convert_encodings(elem.value)
                    elif _is_defined_length_sequence(elem, implicit):
                        elem = _sequence_now(fp, elem, implicit, little, encoding)
                yield elem
                if top:
                    state.top_end = fp.tell()
        except EOFError as e:
            raise DicomFormatError(f"truncated: {e}") from None
        finally:
            state.depth -= 1

    return elements


def _is_defined_length_sequence(raw: RawDataElement, implicit: bool) -> bool:
    if raw.length in (0, UNDEFINED):
        return False
    if not implicit or raw.VR is not None:
        return raw.VR == "SQ"
    if raw.tag.is_private:  # its VR depends on the private creator: pydicom resolves it later
        return False
    try:
        return bool(dictionary_VR(raw.tag) == "SQ")
    except KeyError:
        return False


def _sequence_now(
    fp: Any, raw: RawDataElement, implicit: bool, little: bool, encoding: Any
) -> DataElement:
    """Parse a sequence of defined length from the file, with dsig's reader and its guards
    (pydicom would parse the raw value on first access, with its own reader)."""
    resume = fp.tell()
    fp.seek(raw.value_tell)
    sequence = _READER.read_sequence(fp, implicit, little, raw.length, encoding)
    fp.seek(resume)
    return DataElement(raw.tag, "SQ", sequence, raw.value_tell, validation_mode=config.IGNORE)


def _no_vr_switch(detect: Callable[..., bool]) -> Callable[..., bool]:
    """While dsig reads, the encoding is the one chosen (meta or ReadOptions), never the one
    pydicom guesses from the first element of a data set or item."""

    @functools.wraps(detect)
    def is_implicit(fp: Any, implicit_vr_is_assumed: bool, *args: Any, **kwargs: Any) -> bool:
        return implicit_vr_is_assumed

    return is_implicit


def _cp246_sequences(read_sequence: Callable[..., Any]) -> Callable[..., Any]:
    """An explicit-VR UN element of undefined length holds implicit VR little endian items
    (CP-246), as DCMTK reads it: pydicom would guess from the first bytes instead."""

    @functools.wraps(read_sequence)
    def read(fp: Any, implicit: bool, little: bool, *args: Any) -> Any:
        here = fp.tell()
        header = b""
        if here >= 12:  # the element header just read (absent when pydicom parses a value)
            fp.seek(here - (8 if implicit else 12))
            header = fp.read(4 if implicit else 6)
            fp.seek(here)
        try:
            if not implicit and header[4:6] == b"UN":
                return read_sequence(fp, True, True, *args)
            return read_sequence(fp, implicit, little, *args)
        except (LimitExceededError, RecursionError):
            raise
        except Exception as e:  # pydicom raises many kinds on a corrupt sequence: name it
            if len(header) < 4 or (isinstance(e, DsigError) and "is malformed (" in str(e)):
                raise
            group, elem = struct.unpack("<HH" if little else ">HH", header[:4])
            kind = "UN sequence (CP-246)" if header[4:6] == b"UN" else "sequence"
            raise DicomFormatError(
                f"{kind} {tag_str(group << 16 | elem)} is malformed ({type(e).__name__}: {e})"
            ) from None

    return read


#: An item of length zero, as its 8 header bytes (little and big endian).
_EMPTY_ITEM = {
    True: b"\xfe\xff\x00\xe0\x00\x00\x00\x00",
    False: b"\xff\xfe\xe0\x00\x00\x00\x00\x00",
}


def _count_empty_items(read_item: Callable[..., Any]) -> Callable[..., Any]:
    """A zero-length item never starts the element generator, so :func:`_guard_elements`
    cannot count it: count it here, before it is built, and build it without pydicom's
    per-item machinery (an item flood's cost is mostly that: 1 M empty items in 8 MB took
    1.5 s to refuse, issue 13)."""
    if getattr(read_item, "_dsig_guarded", False):
        return read_item

    @functools.wraps(read_item)
    def read(fp: Any, implicit: bool, little: bool, encoding: Any, offset: int = 0) -> Any:
        state = _STATE.get()
        here = fp.tell()
        if state is None or fp.read(8) != _EMPTY_ITEM[little]:
            fp.seek(here)
            return read_item(fp, implicit, little, encoding, offset)
        state.budget.spend_item(depth=state.depth)
        item = StrictDataset(parent_encoding=encoding)  # what read_sequence_item would build
        item.set_original_encoding(implicit, little, encoding)
        item.is_undefined_length_sequence_item = False
        item.seq_item_tell = here + offset
        return item

    read._dsig_guarded = True  # type: ignore[attr-defined]
    return read


#: dsig's private instance of pydicom's reader (see dsig.encoding._pydicom_reader): every level it
#: reads (the main data set, each item) goes through these guards; pydicom's own reader, used
#: by everyone else in the process, is untouched.
_READER = private_filereader()
_READER.data_element_generator = _guard_elements(_READER.data_element_generator)  # type: ignore[attr-defined]
_READER._is_implicit_vr = _no_vr_switch(_READER._is_implicit_vr)  # type: ignore[attr-defined]
_READER.read_sequence = _cp246_sequences(_READER.read_sequence)  # type: ignore[attr-defined]
_READER.convert_encodings = lambda value: python_encodings(value)[0]  # type: ignore[attr-defined]
_READER.read_sequence_item = _count_empty_items(_READER.read_sequence_item)  # type: ignore[attr-defined]


class _ReadView(io.RawIOBase):
    """A seekable read-only view of ``fp``; subclasses decide what ``read`` returns."""

    def __init__(self, fp: BinaryIO) -> None:
        super().__init__()
        self._fp = fp

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._fp.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fp.seek(offset, whence)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _HashingFile(_ReadView):
    """``fp`` that feeds every byte of the file, once and in order, into a SHA-256 as the
    parse reads it: the file's hash comes from the verification pass, not a second read.

    Backward seeks (pydicom peeks at tags) re-read bytes already hashed; a forward seek
    (a deferred value skipped) leaves a gap that is hashed, in chunks, before the next read
    past it. :meth:`hexdigest` hashes whatever the parse did not read."""

    _CHUNK = 1 << 20

    def __init__(self, fp: BinaryIO, size: int) -> None:
        super().__init__(fp)
        self._size = size
        self._hashed = 0
        self._sha = hashlib.sha256()

    def _hash_up_to(self, offset: int) -> None:
        if self._hashed >= offset:
            return
        back = self._fp.tell()  # the gap is read by seek and read (any seekable reader)
        self._fp.seek(self._hashed)
        while self._hashed < offset:
            data = self._fp.read(min(self._CHUNK, offset - self._hashed))
            if not data:
                break
            self._sha.update(data)
            self._hashed += len(data)
        self._fp.seek(back)

    def read(self, size: int | None = -1) -> bytes:
        at = self._fp.tell()
        if at > self._hashed:
            self._hash_up_to(at)
        data = self._fp.read(-1 if size is None else size)
        end = at + len(data)
        if end > self._hashed >= at:
            self._sha.update(memoryview(data)[self._hashed - at :])
            self._hashed = end
        return data

    def hexdigest(self) -> str:
        """SHA-256 of the whole file (the unread rest is hashed now)."""
        self._hash_up_to(self._size)
        return self._sha.hexdigest()


class _Window(_ReadView):
    """A read-only view of ``fp`` that ends at ``end`` (the file as pydicom may see it), with
    its own position: ``fp`` may be moved by others between reads (the meta header is read
    from it), which a buffer over this view must not notice."""

    def __init__(self, fp: BinaryIO, end: int, name: str) -> None:
        super().__init__(fp)
        self._end = end
        self._pos = fp.tell()
        self.name = name

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._end}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        left = max(0, self._end - self._pos)
        if size is None or size < 0 or size > left:
            size = left
        self._fp.seek(self._pos)
        data = self._fp.read(size)
        self._pos += len(data)
        return data


@dataclass(frozen=True)
class _Meta:
    preamble: bytes | None
    meta_start: int | None
    data_start: int
    transfer_syntax: str


def _locate(fp: BinaryIO, size: int, read: ReadOptions, path: str) -> _Meta:
    """Preamble, meta and data set offsets, by the file's first bytes and ``read.mode``."""
    fp.seek(0)
    head = fp.read(132)
    preamble = len(head) == 132 and head[128:132] == b"DICM"
    if (preamble or head[:2] == b"\x02\x00") and read.mode == "dataset":
        # dcmsign -f would parse the preamble and the meta as data set elements: refused here
        raise DicomFormatError(
            f"{path}: read mode dataset: the file has a file meta header "
            "(read it as a file, or auto)",
            option="read",
            value="file",
        )
    if preamble:
        where = _meta_at(fp, size, head[:128], 132, path)
    elif head[:2] == b"\x02\x00":  # meta without preamble: a file to DCMTK, +fo included
        where = _meta_at(fp, size, None, 0, path)
    elif read.mode == "file":
        raise DicomFormatError(f"{path}: read mode file: no file meta header (not a DICOM file)")
    else:
        if not _looks_like_dataset(head):
            raise DicomFormatError(f"{path}: not a DICOM file (no DICM prefix, no data set)")
        return _Meta(None, None, 0, "")
    if read.mode == "file" and not _known_syntax(where.transfer_syntax):
        # DCMTK's +fo: a meta header without a transfer syntax it knows is no file meta
        raise DicomFormatError(
            f"{path}: read mode file: the file meta header names no known transfer syntax "
            f"({where.transfer_syntax or 'no (0002,0010)'})"
        )
    return where


def _known_syntax(uid: str) -> bool:
    return bool(uid) and UID(uid).is_transfer_syntax


def _looks_like_dataset(head: bytes) -> bool:
    """A data set without preamble/meta starts with a group 0008 element (as dcmsign accepts)."""
    return len(head) >= 8 and head[:2] in (b"\x08\x00", b"\x00\x08")


def _meta_at(fp: BinaryIO, size: int, preamble: bytes | None, start: int, path: str) -> _Meta:
    """Walk group 0002 (always explicit VR little endian) to its end, however long it is:
    the transfer syntax is read wherever it sits, not within a fixed window."""
    pos, syntax = start, None
    while pos + 8 <= size:
        fp.seek(pos)
        header = fp.read(12)
        group, element = struct.unpack_from("<HH", header)
        if group != 0x0002:
            break
        vr = header[4:6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR", b"OL", b"OD", b"OF", b"OV"):
            if len(header) < 12:
                break
            length = struct.unpack_from("<I", header, 8)[0]
            value_at = pos + 12
        else:
            length = struct.unpack_from("<H", header, 6)[0]
            value_at = pos + 8
        if length == UNDEFINED or value_at + length > size:
            raise DicomFormatError(
                f"{path}: file meta element (0002,{element:04X}) runs past the end of the file"
            )
        if element == 0x0010:
            fp.seek(value_at)
            syntax = fp.read(min(length, 256)).decode("latin-1").strip("\x00 ")
        pos = value_at + length
    # No Transfer Syntax UID: the encoding is detected from the data set, as DCMTK does.
    return _Meta(preamble, start, pos, syntax or "")


#: Explicit VRs as 2 bytes (detecting the encoding of a data set).
_VR_BYTES = frozenset(str(vr.value).encode() for vr in PYDICOM_VR if len(str(vr.value)) == 2)


def detect_encoding(first: bytes) -> tuple[bool, bool]:
    """(implicit, little) from the first element's header, as DCMTK's -td/-t= detect it:
    the byte order whose group number is small, explicit if a valid VR follows the tag."""
    if len(first) < 6:
        return True, True
    little_group = struct.unpack_from("<H", first)[0]
    big_group = struct.unpack_from(">H", first)[0]
    little = not (big_group < little_group and big_group <= 0x00FF)
    implicit = first[4:6] not in _VR_BYTES
    return implicit, little


_UNCOMPRESSED = (ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian)


def _encoding(meta_ts: str, data_head: bytes, read: ReadOptions) -> tuple[bool, bool]:
    """(implicit, little) for the data set: ``read.xfer``, else the meta's syntax."""
    forced = {"little": (False, True), "big": (False, False), "implicit": (True, True)}
    if read.xfer in forced:
        return forced[read.xfer]
    if not _known_syntax(meta_ts) or (read.xfer == "detect" and meta_ts in _UNCOMPRESSED):
        # as DcmDataset::readUntilTag: an unknown syntax is detected; -td ignores the meta's
        # syntax only when it is uncompressed (a compressed one is kept)
        return detect_encoding(data_head)
    if meta_ts == ImplicitVRLittleEndian:
        return True, True
    if meta_ts == ExplicitVRBigEndian:
        return False, False
    return False, True  # explicit little, deflated, and every compressed syntax


def _inflate(fp: BinaryIO, start: int, limits: ParseLimits, path: str) -> bytes:
    """Inflate a deflated data set in bounded steps: refused as soon as it passes
    ``max_inflated_bytes`` (never a whole-buffer inflate of unknown size)."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    cap = limits.max_inflated_bytes
    fp.seek(start)
    try:
        while not inflater.eof:
            data = inflater.unconsumed_tail or fp.read(1 << 16)
            if not data:
                break
            out += inflater.decompress(data, max(1, min(1 << 20, cap + 1 - len(out))))
            if len(out) > cap:
                raise LimitExceededError(
                    f"{path}: parser limit: the deflated data set inflates to more than "
                    f"{cap} bytes (ParseLimits.max_inflated_bytes)"
                )
    except zlib.error as e:
        raise DicomFormatError(f"{path}: corrupt deflated data set ({e})") from None
    return bytes(out)


def read_dicom(
    path: str | os.PathLike[str] | Blob,
    limits: ParseLimits = DEFAULT_LIMITS,
    *,
    defer: bool = True,
    read: ReadOptions = DEFAULT_READ,
    file_sha256: bool = False,
    walks: Walks | None = None,
) -> FileDataset:
    """Read a DICOM Part 10 file (or a bare data set) and check that it is complete.

    ``read``: file format or data set, and the encoding (:class:`ReadOptions`; by default the
    meta header's transfer syntax). ``limits`` are enforced while parsing. ``defer``: top-level
    values over :data:`~dsig.encoding.values.DEFER_SIZE` bytes stay in the file (Pixel
    Data, waveforms);
    the MAC encoder and the writer stream them from it in chunks, so memory does not grow with
    the file. Deflated data sets are inflated (within ``limits.max_inflated_bytes``) and read
    from memory. The result carries ``dsig_layout`` (:class:`Layout`) and
    ``dsig_weighted_elements`` (for :class:`ParseLimits.max_work`); with ``file_sha256``
    also ``dsig_file_sha256``, the hex SHA-256 of the file, hashed as it is parsed. ``walks``:
    where the level walks of the completeness check are kept, for a verification of ``ds`` to
    reuse. ``path`` may be a :class:`~dsig.encoding.blob.Blob` (an object in storage): it is read by
    seeks and reads, large values left in it (``ds.dsig_blob``), never copied whole.
    """
    blob = blob_of(path)
    path = blob.name  # a URL stays one (Path would fold its "//")
    try:
        size = blob.size()
        fp = cast(BinaryIO, blob.open())
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise DicomFormatError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    hashing = _HashingFile(fp, size) if file_sha256 else None
    with fp:
        if hashing is not None:
            fp = cast(BinaryIO, hashing)
        where = _locate(fp, size, read, path)
        deflated = where.transfer_syntax == DeflatedExplicitVRLittleEndian and read.xfer in (
            "auto", "detect", "little"
        )  # fmt: skip
        source: Any
        if deflated:
            data = _inflate(fp, where.data_start, limits, path)
            source = io.BytesIO(data)
            source.name = str(path)
            start, end = 0, len(data)
        elif size <= DEFER_SIZE:
            # Small enough that no value can be left in the file: read from memory, where
            # pydicom's many small reads and tells cost no Python call each.
            fp.seek(0)
            source = io.BytesIO(fp.read(size))
            source.name = str(path)
            start, end = where.data_start, size
        else:
            # buffered: pydicom reads each header in a few small reads, one system call (or
            # one blob read) apiece on the raw file (an element flood paid ~5 us an element)
            source = io.BufferedReader(_Window(fp, size, str(path)), 1 << 16)
            start, end = where.data_start, size
        source.seek(start)
        implicit, little = _encoding(where.transfer_syntax, source.read(8), read)
        if deflated and implicit:
            raise DicomFormatError(f"{path}: a deflated data set must be explicit VR")
        layout = Layout(
            where.transfer_syntax, implicit, little, deflated,
            has_preamble=where.preamble is not None, has_meta=where.meta_start is not None,
        )  # fmt: skip
        ds = _parse(
            source, fp, path, where, layout, start, end, limits, defer and not deflated, size
        )
        ds.dsig_blob = blob
        if hashing is not None:
            try:
                ds.dsig_file_sha256 = hashing.hexdigest()
            except OSError as e:
                raise DicomFormatError(f"cannot read {path}: {e.strerror or e}") from None
    bound = size if not deflated else limits.max_inflated_bytes
    with _named_parse_errors(path):
        # A deflated data set may legitimately hold values longer than the file itself.
        budget = WorkBudget(limits, size)
        check_complete(ds, bound, budget=budget, walks=walks)
        ds.dsig_weighted_elements = budget.weighted  # for verify's ParseLimits.max_work
        ds.dsig_input_bytes = size  # and the work allowance that grows with it
    return ds


@contextlib.contextmanager
def _named_parse_errors(path: str) -> Iterator[None]:
    """Name ``path`` in a parse failure and turn pydicom's many exception kinds into ours."""
    try:
        yield
    except LimitExceededError as e:
        raise LimitExceededError(f"{path}: {e}") from None
    except DicomFormatError as e:
        raise DicomFormatError(f"{path}: {e}") from None
    except RecursionError:
        raise LimitExceededError(f"{path}: parser limit: sequences nested too deep") from None
    except Exception as e:  # pydicom raises many kinds on corrupt input
        raise DicomFormatError(f"{path}: malformed DICOM ({type(e).__name__}: {e})") from None


def _parse(
    source: Any,
    raw: BinaryIO,
    path: str,
    where: _Meta,
    layout: Layout,
    start: int,
    end: int,
    limits: ParseLimits,
    defer: bool,
    input_bytes: int,
) -> FileDataset:
    meta = FileMetaDataset()
    state = _ParseState(limits, source, input_bytes)
    token = _STATE.set(state)
    try:
        with _named_parse_errors(path):
            if where.meta_start is not None:  # from the file itself (``source`` may be inflated)
                raw.seek(where.meta_start)
                meta = _READER._read_file_meta_info(raw)
            source.seek(start)
            body = _READER.read_dataset(
                source, layout.implicit, layout.little, defer_size=DEFER_SIZE if defer else None
            )
    finally:
        _STATE.reset(token)
    if len(body) == 0:
        raise DicomFormatError(f"{path}: truncated or empty: the file holds no data set")
    last = state.padding_at if state.padding_at is not None else state.top_end or start
    layout = Layout(**{**layout.__dict__, "trailing_bytes": max(0, end - last)})
    used = layout.transfer_syntax
    if not where.transfer_syntax:
        meta.TransferSyntaxUID = UID(used)
    elif where.transfer_syntax != used and not layout.deflated and (
        where.transfer_syntax in (ImplicitVRLittleEndian, ExplicitVRLittleEndian,
                                  ExplicitVRBigEndian) or layout.implicit or not layout.little
    ):  # fmt: skip
        meta.TransferSyntaxUID = UID(used)  # --read-xfer chose another: say what was read
    ds = StrictFileDataset(str(path), body, where.preamble, meta, layout.implicit, layout.little)
    ds.set_original_encoding(layout.implicit, layout.little, body._character_set)
    # what the charset lookup corrected (StrictDataset._character_set), for the verifier
    ds._dsig_charset_notes = getattr(body, "_dsig_charset_notes", ())
    ds.dsig_layout = layout
    return ds


#: VRs as pydicom spells them (explicit ones, and the ambiguous ones of its dictionary).
_KNOWN_VRS = frozenset(str(vr.value) for vr in PYDICOM_VR)


def check_complete(
    ds: Dataset,
    file_size: int,
    ancestors: tuple[Dataset, ...] = (),
    *,
    budget: WorkBudget | None = None,
    walks: Walks | None = None,
) -> None:
    """Parse every sequence; check every value is whole (pydicom reads truncated values short).

    ``budget`` bounds nesting depth and the number of elements visited (ParseLimits).
    ``walks``: level walks to fill (and reuse), a fresh set otherwise.
    """
    budget = budget or WorkBudget(DEFAULT_LIMITS)
    walks = walks if walks is not None else Walks()
    walk = walks.of(ds, ancestors)
    budget.depth(len(ancestors))
    for entry in walk.entries:
        tag, elem = entry.tag, entry.elem
        budget.spend(depth=len(ancestors))
        if elem.VR is not None and elem.VR not in _KNOWN_VRS:
            raise DicomFormatError(
                f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) has an invalid VR {elem.VR!r}"
            )
        if isinstance(elem, RawDataElement) and elem.length not in (UNDEFINED, None):
            if elem.length > file_size:
                raise DicomFormatError(
                    f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) claims {elem.length} bytes, "
                    f"more than the whole file ({file_size})"
                )
        entry = walk.check(entry)
        if entry.sequence:
            for item in walk.items(entry):
                budget.spend_item()
                check_complete(item, file_size, walk.child_ancestors, budget=budget, walks=walks)
            continue
        elem = entry.elem
        if is_deferred(elem):
            assert isinstance(elem, RawDataElement)
            _check_deferred(elem, tag, ds, file_size)
        elif isinstance(elem, RawDataElement):
            value = elem.value
            if elem.length == UNDEFINED:
                for _ in iter_fragments(value or b"", tag):
                    pass
            elif value is not None and len(value) != elem.length:
                raise DicomFormatError(
                    f"truncated: element ({tag >> 16:04X},{tag & 0xFFFF:04X}) has "
                    f"{len(value)} of {elem.length} bytes"
                )


def _check_deferred(elem: RawDataElement, tag: int, ds: Dataset, file_size: int) -> None:
    """A value left in the file must end inside it (encapsulated: walk the item headers)."""
    start = elem.value_tell or 0
    if elem.length != UNDEFINED:
        if start + elem.length > file_size:
            raise DicomFormatError(
                f"truncated: element ({tag >> 16:04X},{tag & 0xFFFF:04X}) has "
                f"{max(0, file_size - start)} of {elem.length} bytes"
            )
        return
    with source_blob([ds]).open() as fp:
        for _ in file_fragments(fp, start, file_size, tag):
            pass
