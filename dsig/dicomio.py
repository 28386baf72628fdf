"""Read DICOM files strictly: anything truncated or malformed becomes a DicomFormatError."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pydicom.filereader as pydicom_filereader
from pydicom import config
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import VR as PYDICOM_VR

from dsig.errors import DicomFormatError
from dsig.limits import (
    DEFAULT_LIMITS,
    LimitExceededError,
    ParseLimits,
    WorkBudget,
    check_inflated_size,
    deflated_data_offset,
)
from dsig.stream import (
    DEFER_SIZE,
    UNDEFINED,
    element_vr,
    file_fragments,
    is_deferred,
    is_sequence,
    iter_fragments,
    sequence_items,
    stored,
)

# Verification must see VRs exactly as stored: UN stays UN (C.12.1.1.3.1.1 excludes it), and
# values are never "fixed" on read.
config.replace_un_with_known_vr = False
config.settings.reading_validation_mode = config.IGNORE


class DuplicateElementError(DicomFormatError):
    """The same tag twice in one data set or item: readers disagree on which one counts
    (pydicom keeps the last, DCMTK the first), so a signature could cover a value that another
    viewer never shows. Refused as malformed."""


def _refuse_duplicates(generator: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """Wrap pydicom's per-level element generator: each call reads one data set or item."""
    if getattr(generator, "_dsig_refuses_duplicates", False):
        return generator

    @functools.wraps(generator)
    def elements(*args: Any, **kwargs: Any) -> Iterator[Any]:
        seen: set[int] = set()
        for elem in generator(*args, **kwargs):
            tag = int(elem.tag)
            if tag in seen:
                raise DuplicateElementError(
                    f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) appears twice in one data set"
                )
            seen.add(tag)
            yield elem

    elements._dsig_refuses_duplicates = True  # type: ignore[attr-defined]
    return elements


# pydicom's read_dataset keeps the last of duplicate tags silently; every level (the main data
# set, and each item, also when a sequence is parsed later) goes through this generator.
pydicom_filereader.data_element_generator = _refuse_duplicates(
    pydicom_filereader.data_element_generator
)


def read_dicom(
    path: Path, limits: ParseLimits = DEFAULT_LIMITS, *, defer: bool = True
) -> FileDataset:
    """Read a DICOM Part 10 file and check that it is complete (within ``limits``).

    ``defer``: top-level values over :data:`~dsig.stream.DEFER_SIZE` bytes stay in the file
    (Pixel Data, waveforms); the MAC encoder and the writer stream them from it in chunks, so
    memory does not grow with the file. Deflated files are inflated whole (a deflate stream
    cannot be sought into), so they are always read into memory.
    """
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DicomFormatError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        offset = deflated_data_offset(path)
        if offset is not None:
            check_inflated_size(path, offset, limits)
    except LimitExceededError as e:
        raise LimitExceededError(f"{path}: {e}") from None
    defer_size = DEFER_SIZE if defer and offset is None else None
    try:
        ds = pydicom.dcmread(path, defer_size=defer_size)
    except InvalidDicomError:
        ds = _read_bare_dataset(path, defer_size)
    except DuplicateElementError as e:
        raise DuplicateElementError(f"{path}: {e}") from None
    except (OSError, EOFError) as e:
        raise DicomFormatError(f"{path}: cannot read: {e}") from None
    except Exception as e:  # pydicom raises many kinds on corrupt input
        raise DicomFormatError(f"{path}: malformed DICOM ({type(e).__name__}: {e})") from None
    if "TransferSyntaxUID" not in ds.file_meta:
        raise DicomFormatError(f"{path}: no Transfer Syntax UID in the file meta information")
    if len(ds) == 0:
        raise DicomFormatError(f"{path}: truncated or empty: the file holds no data set")
    try:
        # A deflated data set may legitimately hold values longer than the file itself.
        bound = size if offset is None else limits.max_inflated_bytes
        budget = WorkBudget(limits)
        check_complete(ds, bound, budget=budget)
        ds.dsig_weighted_elements = budget.weighted  # for verify's ParseLimits.max_work
    except LimitExceededError as e:
        raise LimitExceededError(f"{path}: {e}") from None
    except DicomFormatError as e:
        raise DicomFormatError(f"{path}: {e}") from None
    except RecursionError:
        raise LimitExceededError(f"{path}: parser limit: sequences nested too deep") from None
    except Exception as e:
        raise DicomFormatError(f"{path}: malformed DICOM ({type(e).__name__}: {e})") from None
    return ds


def _looks_like_dataset(head: bytes) -> bool:
    """A data set without preamble/meta starts with a group 0008 element (as dcmsign accepts)."""
    return len(head) >= 8 and head[:2] in (b"\x08\x00", b"\x00\x08")


def _read_bare_dataset(path: Path, defer_size: int | None = None) -> FileDataset:
    with path.open("rb") as fp:
        head = fp.read(8)
    if not _looks_like_dataset(head):
        raise DicomFormatError(f"{path}: not a DICOM file (no DICM prefix, no data set)")
    try:
        ds = pydicom.dcmread(path, force=True, defer_size=defer_size)
    except Exception as e:
        raise DicomFormatError(f"{path}: malformed DICOM ({type(e).__name__}: {e})") from None
    implicit, little = ds.original_encoding
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit
            else ExplicitVRLittleEndian if little
            else ExplicitVRBigEndian
        )  # fmt: skip
    return ds


#: VRs as pydicom spells them (explicit ones, and the ambiguous ones of its dictionary).
_KNOWN_VRS = frozenset(str(vr.value) for vr in PYDICOM_VR)


def check_complete(
    ds: Dataset,
    file_size: int,
    ancestors: tuple[Dataset, ...] = (),
    *,
    budget: WorkBudget | None = None,
) -> None:
    """Parse every sequence; check every value is whole (pydicom reads truncated values short).

    ``budget`` bounds nesting depth and the number of elements visited (ParseLimits).
    """
    budget = budget or WorkBudget(DEFAULT_LIMITS)
    budget.depth(len(ancestors))
    for tag in ds.keys():
        budget.spend(depth=len(ancestors))
        elem = stored(ds, tag, keep_deferred=True)
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
        vr = element_vr(ds, tag, ancestors)
        if is_sequence(ds, tag, vr):
            for item in sequence_items(ds, tag):
                budget.spend()
                check_complete(item, file_size, (ds, *ancestors), budget=budget)
            continue
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
    name = getattr(ds, "filename", None)
    if not isinstance(name, str):
        raise DicomFormatError("a value was left in the file, but the data set has no file name")
    with open(name, "rb") as fp:
        for _ in file_fragments(fp, start, file_size, tag):
            pass
