"""Input paths: files as given, directories walked (sorted, so runs are reproducible)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from dsig.errors import InputError


def iter_inputs(
    paths: Iterable[str | os.PathLike[str]], *, recursive: bool
) -> Iterator[tuple[Path, Path]]:
    """(file, its path relative to the root given) for files and, when ``recursive``, every
    file under a directory. A directory without ``recursive`` raises :class:`InputError`."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            if not recursive:
                raise InputError(f"{path} is a directory (recursion not asked for)")
            for sub in sorted(p for p in path.rglob("*") if p.is_file()):
                yield sub, sub.relative_to(path)
        else:
            yield path, Path(path.name)
