"""Where the files of an audit come from: local paths or fsspec URLs (``s3://bucket/prefix``...).

Listing is lazy: an S3 prefix is read page by page (1,000 keys per request) and yielded as it
comes, so a prefix of millions of objects is never held in memory. Credentials and endpoint are
whatever the AWS SDK finds (``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ``~/.aws/config``...), never
arguments. ``file://`` URLs are plain local paths. fsspec and s3fs are the optional
``dsig[archive]`` extra: importing this module does not need them.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from dsig.errors import DsigError
from dsig.operations.batch import Candidate
from tokens.faults import BadEnvironmentError, BadInputError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Bytes per read when an object is copied to a worker's scratch file.
CHUNK = 1 << 20
EXTRA_HINT = "install the archive extra: pip install 'dsig[archive]'"


class ArchiveExtraMissingError(DsigError, BadEnvironmentError):
    """A URL or a Dask option was given but the ``dsig[archive]`` extra is not installed."""


class SourceError(DsigError, BadEnvironmentError):
    """A URL that cannot be listed or opened (unknown protocol, unreachable, denied)."""


class SourceUsageError(SourceError, BadInputError):
    """A source refused as given (a prefix without --recursive): a usage error."""


def is_url(path: str) -> bool:
    """``scheme://...`` (``file://`` included)."""
    return bool(_URL.match(path))


def is_remote(path: str) -> bool:
    """A URL that is not ``file://``: read through fsspec."""
    return is_url(path) and not path.lower().startswith("file://")


def local_path(path: str) -> Path:
    """The local path of a plain path or a ``file://`` URL."""
    if path.lower().startswith("file://"):
        return Path(unquote(urlsplit(path).path))
    return Path(path)


def filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """(fsspec filesystem, path inside it) for ``url``; one instance per protocol and process."""
    try:
        import fsspec
    except ImportError:
        raise ArchiveExtraMissingError(f"{url}: URLs need fsspec: {EXTRA_HINT}") from None
    try:
        fs, inner = fsspec.core.url_to_fs(url)
    except ImportError as e:
        raise ArchiveExtraMissingError(f"{url}: {e} ({EXTRA_HINT})") from None
    except ValueError as e:
        raise SourceUsageError(f"{url}: {e}") from None
    return fs, str(inner)


def _display(fs: AbstractFileSystem, inner: str) -> str:
    """The URL a listed object is reported as."""
    return str(fs.unstrip_protocol(inner))


def iter_candidates(paths: Iterable[str], recursive: bool) -> Iterator[Candidate]:
    """The files to verify, lazily: local ones as :func:`dsig.operations.batch.discover` finds them,
    remote ones named (explicit) or listed below a prefix (with ``recursive``)."""
    from dsig.operations.batch import discover

    for path in paths:
        if not is_remote(path):
            try:
                yield from discover([local_path(path)], recursive)
            except ValueError as e:
                raise SourceError(str(e)) from None
            continue
        fs, inner = filesystem(path)
        if _call(path, fs.isfile, inner):
            yield Candidate(path, explicit=True)
            continue
        if not recursive:
            if _call(path, fs.isdir, inner):
                raise SourceError(
                    f"{path} is a prefix (not listed without recursion)", option="recursive"
                )
            raise SourceError(f"{path}: no such object or prefix")
        for name, size in _listing(fs, inner, path):
            yield Candidate(_display(fs, name), explicit=False, size=size)


def _call(url: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except (OSError, PermissionError) as e:
        raise SourceError(f"{url}: {e}") from None
    except Exception as e:  # botocore raises its own kinds (no credentials, bad endpoint)
        raise SourceError(f"{url}: {type(e).__name__}: {e}") from None


def _listing(fs: AbstractFileSystem, inner: str, url: str) -> Iterator[tuple[str, int | None]]:
    """(name, size) of the objects below ``inner``, a page at a time for S3, a directory at
    a time else (size None: asked when the object is opened)."""
    try:
        protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
        if "s3" in protocols and hasattr(fs, "_iterdir"):
            yield from _s3_pages(fs, inner)
            return
        for root, dirs, files in fs.walk(inner):
            dirs.sort()
            for name in sorted(files):
                yield f"{root.rstrip('/')}/{name}", None
    except DsigError:
        raise
    except Exception as e:
        raise SourceError(f"{url}: listing failed: {type(e).__name__}: {e}") from None


def _s3_pages(fs: Any, inner: str) -> Iterator[tuple[str, int | None]]:
    """(key, size) below ``bucket/prefix`` in key order, from paginated ListObjectsV2 (no
    delimiter),
    bridged from s3fs's async iterator onto its event loop one key at a time."""
    from fsspec.asyn import sync

    bucket, _, key = inner.partition("/")
    prefix = key.rstrip("/") + "/" if key else ""
    pages = fs._iterdir(bucket, delimiter="", prefix=prefix)

    async def following() -> Any:
        try:
            return await pages.__anext__()
        except StopAsyncIteration:
            return None

    while (info := sync(fs.loop, following)) is not None:
        name = str(info["name"])
        if info.get("type") == "file" and not name.endswith("/"):  # not a "folder" marker
            size = info.get("size")
            yield name, int(size) if isinstance(size, int) else None


#: Objects up to this size are fetched whole in one GET (the reader reads such a file from
#: memory anyway: :data:`dsig.signature.mac_stream.DEFER_SIZE`).
SMALL = 256 * 1024


class ObjectBlob:
    """An object read through fsspec for :func:`dsig.encoding.reader.read_dicom`: a small one
    fetched whole once (one GET), a large one read by seeks and ranged GETs through one fsspec file
    with a read-ahead cache of :data:`CHUNK` bytes, shared by every :meth:`open` (the prefix
    check, the parse and each large value the MAC stream reads). A large value the verifier
    does not need (Pixel Data no signature covers) is never transferred; one it needs is
    streamed in chunks. Memory is bounded and nothing is written to disk. Close it (``with``)
    to release the file."""

    def __init__(self, url: str, size: int | None = None) -> None:
        self.url = url
        self._size = size
        self._whole: bytes | None = None
        self._file: Any = None
        self._fs: AbstractFileSystem | None = None
        self._inner = ""

    def __enter__(self) -> ObjectBlob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def name(self) -> str:
        """The URL (results name the object by it)."""
        return self.url

    def _where(self) -> tuple[AbstractFileSystem, str]:
        if self._fs is None:
            self._fs, self._inner = filesystem(self.url)
        return self._fs, self._inner

    def size(self) -> int:
        """From the listing when it gave one, else one HEAD request."""
        if self._size is None:
            fs, inner = self._where()
            self._size = int(_io(fs.size, inner))
        return self._size

    def open(self) -> io.RawIOBase | io.BufferedIOBase:
        """A seekable reader of the object with its own position (OSError when it cannot be
        read)."""
        fs, inner = self._where()
        size = self.size()
        if size <= SMALL:
            if self._whole is None:  # start and end given: s3fs asks no HEAD first
                self._whole = bytes(_io(fs.cat_file, inner, start=0, end=size))
            return io.BytesIO(self._whole)
        if self._file is None:
            self._file = _io(fs.open, inner, "rb", block_size=CHUNK, cache_type="readahead",
                             size=size)  # fmt: skip
        return _View(self._file, size)

    def close(self) -> None:
        """Release the shared file."""
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None
        self._whole = None


class _View(io.RawIOBase):
    """One reader of a shared fsspec file: its own position, seeks the file before each read;
    closing it leaves the file open (readers of one blob take turns, never overlap)."""

    def __init__(self, file: Any, size: int) -> None:
        super().__init__()
        self._file = file
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), max(0, self._size - self._pos))
        if want <= 0:
            return 0
        self._file.seek(self._pos)
        data = _io(self._file.read, want)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _io(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(...)`` with what botocore raises besides OSError as an OSError (the reader turns
    OSError into one line for the file)."""
    try:
        return fn(*args, **kwargs)
    except OSError:
        raise
    except Exception as e:
        raise OSError(f"{type(e).__name__}: {e}") from None


def read_head(url: str, size: int) -> bytes:
    """The first ``size`` bytes of an object (one ranged GET)."""
    fs, inner = filesystem(url)
    return bytes(fs.cat_file(inner, start=0, end=size))


@contextlib.contextmanager
def local_copy(url: str) -> Iterator[Path]:
    """The object at ``url`` copied, in :data:`CHUNK` reads, to a scratch file removed on exit.

    The reader reopens a file by name for the meta header and for each large (deferred) value,
    so a path is what it needs; the copy keeps memory bounded whatever the object's size.
    Raises :class:`SourceError` when the object cannot be read."""
    fs, inner = filesystem(url)
    fd, name = tempfile.mkstemp(prefix="dsig-object-", suffix=".dcm")
    try:
        try:
            with os.fdopen(fd, "wb") as out, fs.open(inner, "rb", block_size=CHUNK) as src:
                shutil.copyfileobj(src, out, CHUNK)
        except Exception as e:
            raise SourceError(f"cannot read {url}: {type(e).__name__}: {e}") from None
        yield Path(name)
    finally:
        os.unlink(name)


@contextlib.contextmanager
def readable(path: str) -> Iterator[Path]:
    """A local path for ``path``: itself (or a ``file://`` URL's path), or a scratch copy of a
    remote object (:func:`local_copy`), for commands that read one file by name."""
    if not is_remote(path):
        yield local_path(path)
        return
    with local_copy(path) as scratch:
        yield scratch


__all__ = [
    "ArchiveExtraMissingError",
    "ObjectBlob",
    "SourceError",
    "SourceUsageError",
    "is_remote",
    "is_url",
    "iter_candidates",
    "local_copy",
    "local_path",
    "read_head",
    "readable",
]
