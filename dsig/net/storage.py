"""Files of the storage node: modes, directories, and placing an object without replacing one.

Objects are placed with ``link(2)`` (never ``rename``): it fails when the name exists, so two
objects claiming one name can never replace each other, whatever the timing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import struct
import uuid
from pathlib import Path

#: Mode of files the node creates (objects, reports, audit log) unless configured.
DEFAULT_FILE_MODE = 0o600


def directory_mode(file_mode: int) -> int:
    """The mode of directories for files of ``file_mode``: an x bit wherever r is set."""
    mode = file_mode & 0o777
    for read, execute in ((0o400, 0o100), (0o040, 0o010), (0o004, 0o001)):
        if mode & read:
            mode |= execute
    return mode | 0o700


def make_directory(path: Path, mode: int) -> None:
    """Create ``path`` and missing parents with exactly ``mode`` (existing ones untouched)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode)
            os.chmod(directory, mode)  # mkdir applies the umask


def create_exclusive(path: Path, mode: int) -> int:
    """A new file (fails if ``path`` exists) with exactly ``mode``; its descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    os.fchmod(fd, mode)
    return fd


def fsync_directory(directory: Path) -> None:
    """Make a new name in ``directory`` durable (best effort: not every filesystem can)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def place(src: Path, dst: Path, mode: int) -> None:
    """Give the fsync'ed file ``src`` the new name ``dst`` and remove ``src``.

    Raises :class:`FileExistsError` if ``dst`` exists (it is never replaced). Across
    filesystems the bytes are copied to a temporary file beside ``dst`` first.
    """
    link_new(src, dst, mode)
    src.unlink(missing_ok=True)


def link_new(src: Path, dst: Path, mode: int) -> None:
    """Give ``src`` the additional new name ``dst`` (a copy across filesystems), durably;
    :class:`FileExistsError` if ``dst`` exists. ``src`` stays."""
    try:
        os.link(src, dst)
    except OSError as e:
        if isinstance(e, FileExistsError) or e.errno not in (18, 1, 95):  # EXDEV EPERM ENOTSUP
            raise
        _copy_then_link(src, dst, mode)
    fsync_directory(dst.parent)


def _copy_then_link(src: Path, dst: Path, mode: int) -> None:
    tmp = dst.parent / f".{uuid.uuid4().hex}.dsig-tmp"
    fd = create_exclusive(tmp, mode)
    try:
        with src.open("rb") as fin, os.fdopen(fd, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        os.link(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def write_new(path: Path, data: bytes, mode: int) -> None:
    """Write a new durable file at ``path`` (never replacing one)."""
    tmp = path.parent / f".{uuid.uuid4().hex}.dsig-tmp"
    fd = create_exclusive(tmp, mode)
    try:
        with os.fdopen(fd, "wb") as fp:
            fp.write(data)
            fp.flush()
            os.fsync(fp.fileno())
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_directory(path.parent)


def content_digest(path: Path) -> str | None:
    """SHA-256 of a stored object's transfer syntax and data set (its File Meta Information
    apart, which also names the sending AE): equal digests mean the same object received
    twice. None when the file has no File Meta group length to find the data set by."""
    try:
        with path.open("rb") as fp:
            head = fp.read(144)
            if len(head) < 144 or head[128:132] != b"DICM" or head[132:136] != b"\x02\x00\x00\x00":
                return None
            (meta_length,) = struct.unpack("<I", head[140:144])
            meta = fp.read(meta_length)
            digest = hashlib.sha256(transfer_syntax_of(meta).encode() + b"\0")
            while chunk := fp.read(1 << 20):
                digest.update(chunk)
            return digest.hexdigest()
    except OSError:
        return None


def transfer_syntax_of(meta: bytes) -> str:
    """The (0002,0010) value in explicit VR little endian File Meta bytes ('' if absent)."""
    pos = 0
    while pos + 8 <= len(meta):
        group, element = struct.unpack("<HH", meta[pos : pos + 4])
        vr = meta[pos + 4 : pos + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR", b"OD", b"OF", b"OL", b"OV"):
            (length,) = struct.unpack("<I", meta[pos + 8 : pos + 12])
            start = pos + 12
        else:
            (length,) = struct.unpack("<H", meta[pos + 6 : pos + 8])
            start = pos + 8
        if (group, element) == (0x0002, 0x0010):
            return meta[start : start + length].rstrip(b"\0 ").decode("ascii", "replace")
        pos = start + length
    return ""


__all__ = [
    "DEFAULT_FILE_MODE",
    "content_digest",
    "create_exclusive",
    "directory_mode",
    "fsync_directory",
    "link_new",
    "make_directory",
    "place",
    "transfer_syntax_of",
    "write_new",
]
