"""Where a stored object goes: flat, or Patient/Study/Series folders named safely.

The folder names come from the data set, that is from the sender: each one is reduced to a
safe path component (no separator, no traversal, no control or shell-special character, no
leading dot, at most 64 characters). A name that had to be changed gets a short hash of the
original value, so that two different IDs never share a folder ("A/B" and "A_B" do not).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

LAYOUTS = ("flat", "patient-study-series")

#: Kept as is; anything else becomes "_".
_SAFE = re.compile(r"[^A-Za-z0-9._^=+-]")
_MAX = 64
#: What an empty or missing ID becomes (a real ID equal to it is changed, hence hashed).
UNKNOWN = "UNKNOWN"


def safe_component(value: str) -> str:
    """``value`` as one harmless path component (never empty, never ``.`` or ``..``)."""
    stripped = value.strip(" \0")
    if not stripped:
        return UNKNOWN
    safe = _SAFE.sub("_", stripped)
    if safe.startswith("."):  # hidden names, "." and ".."
        safe = "_" + safe[1:]
    if safe == stripped and len(safe) <= _MAX and safe != UNKNOWN:
        return safe
    digest = hashlib.sha256(stripped.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{safe[: _MAX - 13]}-{digest}"


def object_directory(root: Path, layout: str, ids: Mapping[str, str]) -> Path:
    """The directory under ``root`` for an object with these data-set ``ids`` (PatientID,
    StudyInstanceUID, SeriesInstanceUID)."""
    if layout == "flat":
        return root
    if layout != "patient-study-series":
        raise ValueError(f"layout must be one of {LAYOUTS}")
    parts = (ids.get(k, "") for k in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID"))
    return root.joinpath(*map(safe_component, parts))


__all__ = ["LAYOUTS", "UNKNOWN", "object_directory", "safe_component"]
