"""The DICOM glue of evidence: a record is named after the SOP Instance UID of its file.

Non-DICOM files (no ``DICM`` prefix, or no usable UID) are named after their path relative to
the input root, with ``/`` written as ``_`` (``study/sub/report.txt`` given as ``study``:
``sub_report.txt.ers``; given as a file: ``report.txt.ers``). The root is not in the record,
so a record is looked up under every name the file could have had (:func:`candidate_names`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

RECORD_SUFFIX = ".ers"
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def sop_instance_uid(path: Path) -> str | None:
    """SOP Instance UID (0008,0018) of a DICOM Part 10 file, else None (never raises)."""
    try:
        with open(path, "rb") as fp:
            head = fp.read(132)
        if len(head) < 132 or head[128:132] != b"DICM":
            return None
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[(0x0008, 0x0018)])
        uid = str(
            ds.get("SOPInstanceUID", "") or ds.file_meta.get("MediaStorageSOPInstanceUID", "")
        )
    except Exception:  # pydicom raises many types on odd files: the file is just "not DICOM"
        return None
    uid = uid.strip("\x00 ")
    return uid if len(uid) <= 64 and _UID.match(uid) else None


def record_name(path: Path, relative: Path) -> str:
    """``<SOP Instance UID>.ers`` for DICOM, else the relative path flattened plus ``.ers``."""
    uid = sop_instance_uid(path)
    if uid is not None:
        return uid + RECORD_SUFFIX
    return relative.as_posix().replace("/", "_") + RECORD_SUFFIX


def candidate_names(path: Path) -> list[str]:
    """The names ``path``'s record may have, shortest first: its UID name for DICOM, else its
    name flattened with one more parent directory each (any of them may have been the root)."""
    uid = sop_instance_uid(path)
    if uid is not None:
        return [uid + RECORD_SUFFIX]
    parts = Path(os.path.abspath(path)).parts[1:]  # ".." folded, symlinks kept as walked
    return ["_".join(parts[i:]) + RECORD_SUFFIX for i in range(len(parts) - 1, -1, -1)]
