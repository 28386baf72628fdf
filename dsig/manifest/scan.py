"""Find the instances of a study among files and directories, one at a time.

Each instance is read with :func:`dsig.encoding.reader.read_dicom` (large values stay in the file)
and handed to the caller before the next one is read, so a study of any size is processed
in bounded memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydicom.dataset import Dataset

from dsig.encoding.limits import LimitExceededError
from dsig.encoding.read_options import DEFAULT_READ, ReadOptions
from dsig.encoding.reader import read_dicom
from dsig.encoding.values import raw_text
from dsig.errors import DicomFormatError
from dsig.operations.batch import has_dicm_prefix

#: Media Storage Directory (DICOMDIR): an index of the files, not an instance of the study.
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

R = TypeVar("R")


@dataclass(frozen=True)
class Found:
    """One file: its data set, or why it was skipped (``skipped``) or could not be read
    (``error``)."""

    path: Path
    dataset: Dataset | None = None
    skipped: str | None = None
    error: str | None = None


def candidate_files(
    paths: Iterable[Path], exclude: Iterable[Path] = ()
) -> Iterator[tuple[Path, bool]]:
    """(file, named explicitly) for files named and every file below directories named
    (sorted; symlinked directories not followed); ``exclude`` files are left out."""
    excluded = {_key(p) for p in exclude}
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    full = Path(root, name)
                    if full.is_file() and _key(full) not in excluded:
                        yield full, False
        elif _key(path) not in excluded:
            yield path, True


def scan(paths: Iterable[Path], exclude: Iterable[Path] = ()) -> Iterator[Found]:
    """Every file as a :class:`Found` (see :func:`examine`), one at a time."""
    for path, explicit in candidate_files(paths, exclude):
        yield examine(path, explicit)


def examine(path: Path, explicit: bool = True, read: ReadOptions = DEFAULT_READ) -> Found:
    """Read one file (as ``read`` says). Files found in directories (not ``explicit``) that do
    not parse as DICOM, and DICOMDIR files, are skipped; a DICOM file that cannot be read is an
    ``error``. A file without the DICM prefix counts as DICOM when it parses (as the verifier's
    walk decides), so a study written without preambles is not silently left out."""
    prefixed = explicit or has_dicm_prefix(str(path))
    try:
        ds = read_dicom(path, read=read)
    except LimitExceededError as e:
        return Found(path, error=_unprefixed(str(e), path))
    except DicomFormatError as e:
        if not prefixed and not _dicom_by_default(path, read):
            return Found(path, skipped=f"not a DICOM file ({_unprefixed(str(e), path)})")
        return Found(path, error=_unprefixed(str(e), path))
    if DICOMDIR_SOP_CLASS in (raw_text(ds, 0x00080016), raw_text(ds.file_meta, 0x00020002)):
        return Found(path, skipped="a DICOMDIR, not an instance")
    missing = [
        name
        for tag, name in (
            (0x0020000D, "Study Instance UID"),
            (0x0020000E, "Series Instance UID"),
            (0x00080016, "SOP Class UID"),
            (0x00080018, "SOP Instance UID"),
        )
        if not raw_text(ds, tag)
    ]
    if missing:
        return Found(path, error=f"no {', '.join(missing)}: not an instance of a study")
    return Found(path, dataset=ds)


def _dicom_by_default(path: Path, read: ReadOptions) -> bool:
    """Whether a file ``read`` refuses is DICOM all the same, as the verifier's walk decides
    (it parses, preamble or not, read the default way): then it is an unreadable instance
    (a bare data set under read mode file), not a file to skip."""
    if read == DEFAULT_READ:
        return False
    try:
        read_dicom(path)
    except LimitExceededError:
        return True
    except DicomFormatError:
        return False
    return True


def _unprefixed(message: str, path: Path) -> str:
    """``message`` without the reader's leading ``path: ``: the report names the file once."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def map_files(
    fn: Callable[[tuple[Path, bool]], R], candidates: Sequence[tuple[Path, bool]], jobs: int
) -> Iterator[R]:
    """``fn`` over the candidates in order: in ``jobs`` forked worker processes when there is
    more than one of each (``fn`` must not raise for bad input: results carry it)."""
    if jobs > 1 and len(candidates) > 1:
        from dsig.operations.batch import forked_map

        yield from forked_map(fn, candidates, jobs, expected=())
    else:
        yield from map(fn, candidates)


def _key(path: Path) -> str:
    try:
        return str(path.resolve())
    except OSError:
        return str(path.absolute())
