"""Where an output may be written: never over an input, never over an existing file unless
the caller forces it, never onto a directory, a device or a pipe (``/dev/full``, ``/dev/sda``),
and, for ``--in-place``, through a symlink to the file it names.

The checks run before any work, so a long verification does not end in a refused report.
:func:`dsig.encoding.writer.atomic_output` then writes a temp file beside the target and renames it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from dsig.errors import OutputError
from tokens.faults import BadInputError


class OutputRefusedError(OutputError, BadInputError):
    """The output path is refused as given (an input, existing, a directory...): a usage
    error (CLI exit 2), not an operational one."""


def check_output_path(
    path: Path,
    *,
    inputs: Iterable[Path] = (),
    force: bool = False,
    what: str = "output",
    parent_must_exist: bool = True,
) -> None:
    """Refuse ``path`` as an output unless it is safe to create or (with ``force``) replace.

    Raises :class:`OutputRefusedError` when ``path`` is a directory, not a regular file, one of
    ``inputs`` (even with ``force``), or exists without ``force``; :class:`OutputError` when
    its directory is missing (unless not ``parent_must_exist``) or not writable.
    """
    try:
        st = os.stat(path)  # follows a symlink: what would the path's content be?
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise OutputError(f"{what} {path}: {e.strerror or e}") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise OutputRefusedError(f"{what} {path} is a directory: give a file name")
        if not stat.S_ISREG(st.st_mode):
            raise OutputRefusedError(
                f"{what} {path} is not a regular file (a device, pipe or socket): "
                "outputs are only written as files"
            )
        key = (st.st_dev, st.st_ino)
        for source in inputs:
            try:
                other = os.stat(source)
            except OSError:
                continue
            if (other.st_dev, other.st_ino) == key:
                raise OutputRefusedError(f"{what} {path} is an input file: it would be replaced")
        if not force:
            raise OutputRefusedError(
                f"{what} {path} exists: not replaced unless forced", option="force"
            )
    elif os.path.lexists(path) and not force:  # a dangling symlink
        raise OutputRefusedError(
            f"{what} {path} exists (a symlink): not replaced unless forced", option="force"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        if parent_must_exist:
            raise OutputError(f"cannot write {what} {path}: directory {parent} does not exist")
        return
    if not parent.is_dir():
        raise OutputError(f"cannot write {what} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {what} {path}: no permission to write in {parent}")


def in_place_target(path: Path) -> Path:
    """The file ``--in-place`` replaces: for a symlink, the file it finally points to (the
    link stays and names the signed file); otherwise ``path`` itself."""
    if not path.is_symlink():
        return path
    target = Path(os.path.realpath(path))
    if not target.is_file():
        raise OutputError(f"{path} is a symlink to {target}, which is not a regular file")
    return target


__all__ = ["OutputRefusedError", "check_output_path", "in_place_target"]
