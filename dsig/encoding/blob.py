"""Where the bytes of a file being verified come from: a local file, or any other source of
seekable binary reads (an object in storage, see :mod:`dsig.archive.sources`).

The reader opens a blob once for the parse and again for each large value it left in place
(Pixel Data...) when the MAC stream or a completeness check needs it, so a blob is a name, a
size and a way to open it, not an open file."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from dsig.errors import DicomFormatError

#: What :meth:`Blob.open` returns: a seekable binary reader with ``readinto``.
Reader = io.RawIOBase | io.BufferedIOBase


@runtime_checkable
class Blob(Protocol):
    """A file to read by offset: ``open`` returns a new seekable binary reader each call."""

    @property
    def name(self) -> str:
        """The name results give the file (a path or a URL)."""
        ...

    def size(self) -> int:
        """Bytes in the file (raises OSError when it cannot be read)."""
        ...

    def open(self) -> Reader:
        """A seekable binary reader of the whole file (raises OSError)."""
        ...


@dataclass(frozen=True)
class LocalBlob:
    """A file on the local file system."""

    path: Path

    @property
    def name(self) -> str:
        """The path as given."""
        return str(self.path)

    def size(self) -> int:
        """``stat`` size."""
        return self.path.stat().st_size

    def open(self) -> Reader:
        """The file, unbuffered (the reader asks for what it needs in large reads)."""
        return open(self.path, "rb", buffering=0)


def blob_of(source: str | os.PathLike[str] | Blob) -> Blob:
    """``source`` itself, or a local path as a :class:`LocalBlob`."""
    if isinstance(source, Blob):
        return source
    return LocalBlob(Path(source))


def source_blob(levels: Sequence[Any]) -> Blob:
    """The blob a deferred value lives in: the root's (the last level given) ``dsig_blob``
    (set by :func:`dsig.encoding.reader.read_dicom`), else its ``filename``."""
    for ds in reversed(levels):
        blob = getattr(ds, "dsig_blob", None)
        if isinstance(blob, Blob):
            return blob
        name = getattr(ds, "filename", None)
        if isinstance(name, str) and name:
            return LocalBlob(Path(name))
    raise DicomFormatError("a value was left in the file, but the data set has no file name")
