"""replace_files: every path ends with its old content or its new one, and nothing is renamed
until every new content is written (a failure on the way leaves all paths as they were)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsig.encoding.writer import replace_files
from dsig.errors import OutputError


def test_all_replaced_with_their_modes(tmp_path: Path) -> None:
    paths = [tmp_path / f"r{i}.ers" for i in range(5)]
    for p in paths[:3]:
        p.write_bytes(b"old")
    paths[0].chmod(0o640)
    replace_files([(p, f"new {i}".encode()) for i, p in enumerate(paths)])
    assert [p.read_bytes() for p in paths] == [f"new {i}".encode() for i in range(5)]
    assert paths[0].stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)  # no temp file left


def test_a_failure_before_the_renames_leaves_every_path_old(tmp_path: Path) -> None:
    paths = [tmp_path / f"r{i}.ers" for i in range(3)]
    for p in paths:
        p.write_bytes(b"old")
    missing = tmp_path / "no-such-dir" / "r3.ers"  # its temp file cannot be made
    with pytest.raises(OutputError, match="cannot write to"):
        replace_files([*((p, b"new") for p in paths), (missing, b"new")])
    assert [p.read_bytes() for p in paths] == [b"old"] * 3
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)
