"""Folder names made from sender-controlled IDs (``dsig serve --layout``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsig.net.layout import UNKNOWN, object_directory, safe_component

HOSTILE = [
    "..", ".", "../../etc", "/etc/passwd", "a/../../b", "C:\\Windows", "a\x00b", "a\nb",
    "\x1b[31mred", "~root", ".hidden", " ", "", "x" * 300, "$(rm -rf /)", "Müller", UNKNOWN,
]  # fmt: skip


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_ids_become_one_harmless_component(value: str, tmp_path: Path) -> None:
    name = safe_component(value)
    assert name and name not in (".", "..") and not name.startswith(".")
    assert len(name) <= 64
    assert all(c.isascii() and (c.isalnum() or c in "._^=+-") for c in name), name
    target = (tmp_path / name).resolve()
    assert target.parent == tmp_path.resolve()


def test_plain_ids_are_kept_and_changed_ones_never_collide() -> None:
    assert safe_component("PAT-001") == "PAT-001"
    assert safe_component("1.2.840.113619.2.55") == "1.2.840.113619.2.55"
    assert safe_component("Doe^John") == "Doe^John"
    variants = ["A/B", "A_B", "A\\B", "A B", "A\x00B", "", UNKNOWN, "x" * 100, "x" * 101]
    assert len({safe_component(v) for v in variants}) == len(variants)


def test_layouts(tmp_path: Path) -> None:
    ids = {"PatientID": "../p", "StudyInstanceUID": "1.2", "SeriesInstanceUID": ""}
    assert object_directory(tmp_path, "flat", ids) == tmp_path
    deep = object_directory(tmp_path, "patient-study-series", ids)
    assert deep.relative_to(tmp_path).parts[1:] == ("1.2", UNKNOWN)
    assert deep.resolve().is_relative_to(tmp_path.resolve())
    with pytest.raises(ValueError, match="layout must be"):
        object_directory(tmp_path, "by-date", ids)
