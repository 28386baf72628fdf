"""``dsig verify --csv FILE``: one row per signature, for spreadsheets and audit tooling.

A file without a signature, a file that could not be read and a file skipped as not DICOM
each get one row with the signature columns empty, so every file of the run is accounted
for. Values are made printable (:func:`dsig.safe_text.printable`: one value, one line) and a
cell that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``) starts with ``'``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from dsig.safe_text import printable

#: The columns, in order (the ``--csv`` contract, documented in the README).
FILE_COLUMNS = ("path", "file_indication", "sop_instance_uid", "study_instance_uid",
                "patient_id", "sha256", "file_error", "file_findings")  # fmt: skip
SIGNATURE_COLUMNS = ("signature_index", "signature_uid", "signature_indication", "signer",
                     "purpose", "signature_datetime", "timestamp", "mac_algorithm",
                     "integrity", "trust", "chain", "revocation", "location",
                     "signature_findings")  # fmt: skip
COLUMNS = FILE_COLUMNS + SIGNATURE_COLUMNS

#: Joins the values of a multi-valued cell (findings, chain certificates).
SEPARATOR = " | "
_FORMULA_STARTS = ("=", "+", "-", "@")


def _cell(value: object) -> str:
    if isinstance(value, list | tuple):
        value = SEPARATOR.join(printable(v) for v in value)
    text = printable(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def rows(records: Iterable[dict[str, Any]], skipped: Iterable[str] = ()) -> Iterator[list[str]]:
    """The data rows for audit records (:func:`dsig.operations.audit_record.audit_record`), then
    one row per skipped path."""
    for rec in records:
        head = [
            rec.get("path"), rec.get("indication"), rec.get("sop_instance_uid"),
            rec.get("study_instance_uid"), rec.get("patient_id"), rec.get("sha256"),
            rec.get("error"), rec.get("findings") or [],
        ]  # fmt: skip
        sigs = rec.get("signatures") or []
        if not sigs:
            yield [_cell(v) for v in head] + [""] * len(SIGNATURE_COLUMNS)
        for n, sig in enumerate(sigs, 1):
            values = (
                n, sig.get("uid"), sig.get("indication"), sig.get("signer"),
                sig.get("purpose"), sig.get("datetime"), sig.get("timestamp"), sig.get("mac"),
                sig.get("integrity"), sig.get("trust"), sig.get("chain") or [],
                sig.get("revocation"), sig.get("location"), sig.get("findings") or [],
            )  # fmt: skip
            yield [_cell(v) for v in head] + [_cell(v) for v in values]
    from dsig.operations.batch import NOT_DICOM

    for path in skipped:
        head = [path, "SKIPPED", "", "", "", "", NOT_DICOM, ""]
        yield [_cell(v) for v in head] + [""] * len(SIGNATURE_COLUMNS)


def render(records: Iterable[dict[str, Any]], skipped: Iterable[str] = ()) -> str:
    """The whole CSV document (header row first; RFC 4180 quoting, CRLF line ends)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows(records, skipped))
    return buf.getvalue()


def write(path: Path, records: Iterable[dict[str, Any]], skipped: Iterable[str] = ()) -> None:
    """Write the CSV atomically (a temp file renamed over ``path``), a batch of rows at a time;
    the caller checked ``path`` first (:func:`dsig.files.outputs.check_output_path`)."""
    from dsig.encoding.writer import atomic_output

    with atomic_output(path) as fp:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for row in rows(records, skipped):
            writer.writerow(row)
            if buf.tell() >= 1 << 16:
                fp.write(buf.getvalue().encode("utf-8"))
                buf.seek(0)
                buf.truncate()
        fp.write(buf.getvalue().encode("utf-8"))


__all__ = ["COLUMNS", "FILE_COLUMNS", "SEPARATOR", "SIGNATURE_COLUMNS", "render", "rows", "write"]
