"""Inputs of ``dsig manifest`` and ``dsig evidence`` given as fsspec URLs (an object or a
prefix, ``s3://bucket/study/``): copied, a chunk at a time, into a private scratch directory
the commands read as local files, removed on exit.

Those commands hash every byte of every file (a manifest's MAC per instance, an evidence
record's hash tree), so the whole object is read anyway; a scratch copy keeps them unchanged.
What they print names the URL, not the scratch path (:meth:`Staged.shown`). A study is small
beside an archive: ``dsig verify`` streams objects instead
(:class:`~dsig.archive.sources.ObjectBlob`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsig.archive.sources import (
    CHUNK,
    SourceError,
    _call,
    _listing,
    filesystem,
    is_remote,
    local_path,
)


@dataclass
class Staged:
    """The inputs as local paths, and the scratch prefixes that stand for URLs."""

    paths: list[Path] = field(default_factory=list)
    #: (scratch prefix, URL it stands for), longest first.
    roots: list[tuple[str, str]] = field(default_factory=list)

    def shown(self, text: str) -> str:
        """``text`` with every scratch prefix replaced by its URL."""
        for local, url in self.roots:
            text = text.replace(local, url)
        return text

    def rewrite(self, obj: Any) -> Any:
        """A JSON-able value with :meth:`shown` applied to every string in it."""
        if isinstance(obj, str):
            return self.shown(obj)
        if isinstance(obj, list):
            return [self.rewrite(v) for v in obj]
        if isinstance(obj, dict):
            return {k: self.rewrite(v) for k, v in obj.items()}
        return obj


def _copy(fs: Any, inner: str, url: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(target, "wb") as out, fs.open(inner, "rb", block_size=CHUNK) as src:
            shutil.copyfileobj(src, out, CHUNK)
    except Exception as e:
        raise SourceError(f"cannot read {url}: {type(e).__name__}: {e}") from None


@contextlib.contextmanager
def staged(paths: Sequence[str]) -> Iterator[Staged]:
    """Local paths for ``paths``: plain paths and ``file://`` URLs as they are, a remote
    object as a scratch file of the same name, a remote prefix as a scratch directory holding
    every object below it (a study: the listing is read lazily, objects are copied in
    :data:`~dsig.archive.sources.CHUNK` reads). Raises :class:`SourceError`."""
    result = Staged()
    if not any(is_remote(p) for p in paths):
        result.paths = [local_path(p) for p in paths]
        yield result
        return
    scratch = tempfile.mkdtemp(prefix="dsig-stage-")  # mode 0700: private to this user
    try:
        for n, path in enumerate(paths):
            if not is_remote(path):
                result.paths.append(local_path(path))
                continue
            fs, inner = filesystem(path)
            root = Path(scratch, str(n))
            if _call(path, fs.isfile, inner):
                target = root / (inner.rstrip("/").rsplit("/", 1)[-1] or "object")
                _copy(fs, inner, path, target)
                result.paths.append(target)
                result.roots.append((str(target), path))
                continue
            base = inner.rstrip("/") + "/"
            found = False
            for name, _ in _listing(fs, inner, path):
                found = True
                rel = name[len(base) :]
                if any(part in ("", ".", "..") for part in rel.split("/")):  # never outside
                    raise SourceError(f"{path}: object key {name!r} is not a safe file name")
                _copy(fs, name, path, root / rel)
            if not found:
                raise SourceError(f"{path}: no such object or prefix")
            result.paths.append(root)
            result.roots.append((str(root), path.rstrip("/")))
        result.roots.sort(key=lambda r: -len(r[0]))
        yield result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def upload(local: Path, url: str) -> None:
    """Upload ``local`` to ``url`` (an object appears whole or not at all)."""
    fs, inner = filesystem(url)
    try:
        fs.put_file(os.fspath(local), inner)
    except Exception as e:
        raise SourceError(f"cannot write {url}: {type(e).__name__}: {e}") from None


#: Stores whose PUT replaces an object whole or not at all (a reader, or a run killed
#: mid-upload, sees the old object or the new one, never part of one). Other fsspec
#: filesystems (sftp, ftp, smb, webdav, ...) write a file in place, in pieces.
ATOMIC_REPLACE_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})


def replaces_atomically(url: str) -> bool:
    """Whether :func:`upload` to ``url`` replaces an existing object atomically."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme.lower() in ATOMIC_REPLACE_SCHEMES


def object_exists(url: str) -> bool:
    """Whether an object (or a prefix) is at ``url``."""
    fs, inner = filesystem(url)
    return bool(_call(url, fs.exists, inner))
