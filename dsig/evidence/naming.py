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
    """SOP Instance UID (0008,0018) of a DICOM Part 10 file as ``dsig verify`` reports it,
    else None (never raises for bad input).

    Read with dsig's own reader and :class:`~dsig.results.FileIdentity`, as the verifier and
    the storage node do: another parser (pydicom switches VR on a polyglot) may see another
    data set, and so another UID, than the one verified. The File Meta's Media Storage SOP
    Instance UID stands in when the data set has none.
    """
    try:
        with open(path, "rb") as fp:
            head = fp.read(132)
    except OSError:
        return None
    if len(head) < 132 or head[128:132] != b"DICM":
        return None
    from dsig.encoding.reader import read_dicom
    from dsig.errors import DsigError
    from dsig.results import FileIdentity

    try:
        identity = FileIdentity.of(read_dicom(path))
    except DsigError:  # not readable as DICOM (malformed, over a limit): named by its path
        return None
    uid = (identity.sop_instance_uid or identity.meta_sop_instance_uid or "").strip("\x00 ")
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
