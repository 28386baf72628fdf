"""A study built from pydicom's samples for the manifest tests: several series, native, JPEG,
RLE, JPEG 2000 and ECG waveform instances, all given one patient and one Study Instance UID."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from tests.helpers.dicom_factory import sample

#: (series label, pydicom sample) for each instance of the study.
STUDY_LAYOUT: tuple[tuple[str, str], ...] = (
    ("ct", "CT_small.dcm"),
    ("ct", "CT_small.dcm"),
    ("mr", "MR_small.dcm"),
    ("mr", "MR_small_RLE.dcm"),
    ("jpeg", "JPEG-lossy.dcm"),
    ("j2k", "JPEG2000.dcm"),
    ("ecg", "waveform_ecg.dcm"),
)


@dataclass(frozen=True)
class Study:
    """Where the study was written and its identity."""

    directory: Path
    study_uid: str
    files: tuple[Path, ...]
    series: dict[str, str]


def build_study(
    directory: Path,
    *,
    layout: tuple[tuple[str, str], ...] = STUDY_LAYOUT,
    study_uid: str | None = None,
    patient: str = "Manifest^Test",
) -> Study:
    """Copies of the samples under ``directory/<series>/``, re-identified into one study."""
    study_uid = study_uid or str(generate_uid())
    series = {label: str(generate_uid()) for label, _name in layout}
    files = []
    for n, (label, name) in enumerate(layout, 1):
        ds = pydicom.dcmread(sample(name))
        uid = generate_uid()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series[label]
        ds.PatientName = patient
        ds.PatientID = "MANIFEST01"
        ds.InstanceNumber = n
        out = directory / label / f"{n:03d}.dcm"
        out.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(out)
        files.append(out)
    return Study(directory, study_uid, tuple(files), series)
