"""The audit outputs from Python: verify_file -> audit_record -> csv_report / html_report."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from dsig.operations.audit_record import audit_record, iso_datetime
from dsig.operations.verifier import VerifyOptions, verify_dataset, verify_file
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


def test_file_identity_is_the_verified_read_decoded_without_warnings(
    tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    """The storage node's identity (UIDs, meta UIDs, Patient ID as Orthanc decodes it) comes
    from the verifier's read; the value is decoded, not converted in place, and an unknown
    character set is a note, not a pydicom warning."""
    from pydicom.dataelem import RawDataElement

    from dsig.encoding.reader import read_dicom
    from dsig.encoding.values import stored
    from dsig.results import FileIdentity
    from tests.helpers.rawdicom import EXPLICIT_LE, SC_CLASS, basic_dataset, meta, part10

    utf8 = tmp_path / "utf8.dcm"
    extra = [(0x00080005, "CS", b"ISO_IR 192"), (0x00100020, "LO", "Müller".encode())]
    utf8.write_bytes(part10(meta(EXPLICIT_LE, "1.2.3.9"), basic_dataset("1.2.3.8", extra=extra)))
    result = verify_file(utf8, VerifyOptions(integrity_only=True))
    ident = result.identity
    assert (ident.sop_class_uid, ident.sop_instance_uid, ident.series_instance_uid) == (
        SC_CLASS, "1.2.3.8", "1.2.3.8.2",
    )  # fmt: skip
    assert (ident.meta_sop_class_uid, ident.meta_sop_instance_uid) == (SC_CLASS, "1.2.3.9")
    assert ident.patient_id_text == "Müller"
    assert ident.patient_id == "Müller".encode().decode("latin-1")  # JSON: the stored text
    assert set(result.to_json()) >= {"sop_instance_uid", "patient_id"}
    assert "patient_id_text" not in result.to_json()  # the JSON contract is unchanged
    ds = read_dicom(utf8)
    assert FileIdentity.of(ds).patient_id_text == "Müller"
    assert isinstance(stored(ds, 0x00100020), RawDataElement)  # not converted in place
    odd = tmp_path / "odd.dcm"
    extra = [(0x00080005, "CS", b"NO_SUCH_SET "), (0x00100020, "LO", b"ID\xe942")]
    odd.write_bytes(part10(meta(EXPLICIT_LE, "1.2.3.7"), basic_dataset("1.2.3.7", extra=extra)))
    result = verify_file(odd, VerifyOptions(integrity_only=True))
    assert result.identity.patient_id_text == "ID\xe942"  # the default repertoire
    assert "CHARACTER_SET_CORRECTED" in {f.code for f in result.findings}
    assert [str(w.message) for w in recwarn] == []
    plain = dcmread(odd)  # a pydicom data set given to the API (pydicom's read warns itself)
    recwarn.clear()
    assert verify_dataset(plain, VerifyOptions(integrity_only=True)).identity == result.identity
    assert [str(w.message) for w in recwarn] == []  # the identity adds no warning
