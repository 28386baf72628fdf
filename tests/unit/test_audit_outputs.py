"""The audit outputs from Python: verify_file -> audit_record -> csv_report / html_report."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.data import get_testdata_file

from dsig.operations.audit_record import audit_record, iso_datetime
from dsig.operations.verifier import VerifyOptions, verify_file
from dsig.reports import csv_report
from dsig.reports.html_report import finding_groups, render

CT = Path(str(get_testdata_file("CT_small.dcm", download=False)))


def test_python_api_gives_identifiers_hash_and_a_csv_row() -> None:
    result = verify_file(CT, VerifyOptions(integrity_only=True, file_sha256=True))
    ds = dcmread(CT)
    data = result.to_json()
    assert data["sha256"] == hashlib.sha256(CT.read_bytes()).hexdigest()
    assert (data["sop_instance_uid"], data["study_instance_uid"], data["patient_id"]) == (
        ds.SOPInstanceUID, ds.StudyInstanceUID, ds.PatientID)  # fmt: skip
    assert verify_file(CT).to_json()["sha256"] is None  # hashing is asked for
    table = list(csv.reader(io.StringIO(csv_report.render([audit_record(data)]), newline="")))
    assert len(table) == 2 and table[1][:2] == [str(CT), "UNSIGNED"]
    assert table[1][5] == data["sha256"] and table[1][8:] == [""] * 14


def test_csv_cells_cannot_run_as_formulas() -> None:
    record = {"path": "=HYPERLINK(1)", "indication": "UNSIGNED", "patient_id": "@x\r\n"}
    row = next(csv_report.rows([record]))
    assert row[0] == "'=HYPERLINK(1)" and row[4] == "'@x\\r\\n"


def test_dicom_times_become_iso_8601() -> None:
    assert iso_datetime("20261203172800.5+0100") == "2026-12-03T17:28:00.500000+01:00"
    assert iso_datetime("not a time\n") == "not a time\n"  # as stored; escaped when shown
    assert iso_datetime("20261203172800") == "2026-12-03T17:28:00"  # no offset invented
    assert iso_datetime(None) == ""


def test_findings_are_grouped_by_cause_with_counts() -> None:
    records: list[dict[str, Any]] = [
        {"findings": ["UNSIGNABLE_CONTENT: a"], "signatures": [{"findings": ["MAC_MISMATCH: x"]}]},
        {"findings": [], "signatures": [{"findings": ["MAC_MISMATCH: y", "MAC_MISMATCH: z"]}]},
        {"error": "cannot read", "signatures": []},
    ]
    assert finding_groups(records) == [
        ("MAC_MISMATCH", 3, 2), ("ERROR", 1, 1), ("UNSIGNABLE_CONTENT", 1, 1)]  # fmt: skip
    doc = render({}, [], [])
    assert "Findings by cause" in doc and "Content-Security-Policy" in doc
