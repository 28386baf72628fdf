"""Create a study manifest: a signed Key Object Selection Document (PS3.17 Annex W) that
lists every instance of one study with the MAC of its content (and, for signed instances,
their intact signatures)."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import PersonName

from dsig import __version__
from dsig.encoding.charsets import decode_text, python_encodings
from dsig.encoding.read_options import DEFAULT_READ, ReadOptions
from dsig.encoding.values import element_vr, raw_text, stored
from dsig.encoding.writer import Encoding, save, write_dataset_file
from dsig.errors import DicomFormatError, DsigError, OutputError
from dsig.manifest.mac import mac_transfer_syntax, reference_mac, signable_tags
from dsig.manifest.model import (
    EVIDENCE_SEQUENCE,
    KOS_SOP_CLASS,
    MANIFEST_PURPOSE,
    MANIFEST_TITLE,
    Manifest,
    Reference,
    SignatureReference,
    evidence_sequence,
)
from dsig.manifest.scan import candidate_files, examine, map_files
from dsig.operations.signer import SignedInfo, SignOptions, add_signature, check_algorithm_policy
from dsig.results import Indication
from dsig.signature.model import SIGNATURE, find_signatures, raw_bytes
from dsig.signature.profiles import Profile
from tokens.api import KeyProvider
from tokens.digest import HashAlgorithm
from tokens.faults import BadInputError


class StudySelectionError(DsigError, BadInputError):
    """The inputs hold several studies (and none was chosen) or not the chosen one."""


@dataclass(frozen=True)
class CreateOptions:
    """How to build the manifest. ``study_uid`` picks one study when the inputs hold several."""

    mac: HashAlgorithm = HashAlgorithm.SHA256
    profile: Profile = Profile.NONE
    study_uid: str | None = None
    #: Weak algorithms accepted (pki's names), as for :class:`dsig.SignOptions`.
    allow_weak: Sequence[str] = ()
    #: Files never read as instances (the manifest being written, when it lies in the study).
    exclude: Sequence[Path] = ()
    #: Content, instance creation and signature date/time; None = now (local, with offset).
    at: dt.datetime | None = None
    #: Worker processes reading and hashing the instances (forked; 1 = this process).
    jobs: int = 1
    #: How the instances are read (dcmsign's input options).
    read: ReadOptions = DEFAULT_READ


@dataclass(frozen=True)
class Skipped:
    """A file that is not part of the manifest, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class CreatedManifest:
    """A signed manifest not yet written (:func:`save_manifest` writes it)."""

    dataset: Dataset = field(repr=False)
    manifest: Manifest
    signature: SignedInfo
    #: SOP Instance UID -> the file its reference was computed from.
    paths: tuple[tuple[str, str], ...]
    skipped: tuple[Skipped, ...]
    #: Things the user should know: instances whose signature does not verify (referenced
    #: by MAC only), instances that disagree on the patient.
    warnings: tuple[str, ...] = ()


#: Patient and General Study attributes the KOS copies from the instances (Type 2 ones are
#: written empty when the instances lack them).
_PATIENT_STUDY = (
    (0x00080005, False),  # Specific Character Set: how the copied values are encoded
    (0x00080020, True),  # Study Date
    (0x00080030, True),  # Study Time
    (0x00080050, True),  # Accession Number
    (0x00080090, True),  # Referring Physician's Name
    (0x00081030, False),  # Study Description
    (0x00100010, True),  # Patient's Name
    (0x00100020, True),  # Patient ID
    (0x00100021, False),  # Issuer of Patient ID
    (0x00100030, True),  # Patient's Birth Date
    (0x00100032, False),  # Patient's Birth Time
    (0x00100040, True),  # Patient's Sex
    (0x00200010, True),  # Study ID
)
_WAVEFORM_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.9."
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


@dataclass(frozen=True)
class _Record:
    """What one file contributes (made in a worker process; pickled back)."""

    path: str
    study_uid: str = ""
    reference: Reference | None = None
    value_type: str = ""
    copied: Dataset | None = None  # patient/study attributes, for the first instance
    skipped: str | None = None
    error: str | None = None
    warning: str | None = None


@dataclass
class _Study:
    first: Dataset  # the copied attributes only (a small data set)
    references: list[Reference] = field(default_factory=list)
    value_types: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)


def create_manifest(
    paths: Sequence[Path],
    key: KeyProvider,
    options: CreateOptions = CreateOptions(),
    *,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now().astimezone(),
) -> CreatedManifest:
    """Reference every instance of one study found in ``paths`` and sign the manifest.

    Raises StudySelectionError (several studies and no ``study_uid``, or not found),
    DicomFormatError (a DICOM file cannot be read, a SOP Instance UID twice), SigningError.
    """
    check_algorithm_policy(options.mac, key.certificate, options.allow_weak)
    studies: dict[str, _Study] = {}
    counts: dict[str, int] = {}
    skipped: list[Skipped] = []
    warnings: list[str] = []
    candidates = list(candidate_files(paths, options.exclude))

    def record(candidate: tuple[Path, bool]) -> _Record:
        return _file_record(*candidate, options)

    for rec in map_files(record, candidates, options.jobs):
        if rec.error is not None:
            raise DicomFormatError(rec.error)
        if rec.skipped is not None:
            skipped.append(Skipped(rec.path, rec.skipped))
            continue
        counts[rec.study_uid] = counts.get(rec.study_uid, 0) + 1
        if rec.reference is None:  # another study than the one chosen
            skipped.append(Skipped(rec.path, f"another study ({rec.study_uid})"))
            continue
        study = studies.get(rec.study_uid)
        if study is None:
            assert rec.copied is not None
            study = studies[rec.study_uid] = _Study(rec.copied)
        _add(study, rec)
        if rec.warning:
            warnings.append(rec.warning)
        patient = _patient(rec.copied)
        if patient != _patient(study.first):
            warnings.append(
                f"{rec.path}: patient {patient} differs from the study's first instance "
                f"({_patient(study.first)})"
            )
    if options.study_uid is not None and options.study_uid not in studies:
        raise StudySelectionError(f"no instance of study {options.study_uid} in the inputs")
    if not studies:
        raise StudySelectionError("no DICOM instance found in the inputs")
    if len(studies) > 1:
        listing = "; ".join(f"{uid} ({n} instance(s))" for uid, n in sorted(counts.items()))
        raise StudySelectionError(
            f"the inputs hold {len(studies)} studies: {listing}; choose one by its UID",
            option="study",
            value="UID",
        )
    study_uid, study = next(iter(studies.items()))
    moment = options.at or clock()
    ds = _kos(study_uid, study, moment)
    signed = add_signature(
        ds,
        key,
        SignOptions(
            mac=options.mac,
            profile=options.profile,
            purpose=MANIFEST_PURPOSE,
            at=moment,
            mac_transfer_syntax=str(ExplicitVRLittleEndian),
            allow_weak=tuple(options.allow_weak),
        ),
    )
    manifest = Manifest(str(ds.SOPInstanceUID), study_uid, tuple(study.references))
    return CreatedManifest(
        ds, manifest, signed, tuple(study.paths.items()), tuple(skipped), tuple(warnings)
    )


def _patient(attributes: Dataset | None) -> str:
    """Patient ID and name, to compare instances of one study (as stored: the bytes are
    decoded here, never by pydicom's conversion, which warns on stderr for invalid ones)."""
    if attributes is None:
        return "?"
    charset = raw_text(attributes, 0x00080005)
    encodings = python_encodings(charset.split("\\") if charset else None)[0]
    shown = []
    for tag, vr in ((0x00100020, "LO"), (0x00100010, "PN")):
        value = stored(attributes, tag).value if tag in attributes else b""
        raw = value.original_string if isinstance(value, PersonName) else value
        if isinstance(raw, str):  # a value made here, not read
            shown.append(raw.rstrip("\x00 "))
        else:
            shown.append(decode_text(bytes(raw or b""), encodings, vr)[0].rstrip("\x00 "))
    return f"ID {shown[0]!r}, name {shown[1]!r}"


def _file_record(path: Path, explicit: bool, options: CreateOptions) -> _Record:
    found = examine(path, explicit, options.read)
    where = str(path)
    if found.error is not None:
        return _Record(where, error=f"{where}: {found.error}")
    if found.dataset is None:
        return _Record(where, skipped=found.skipped or "")
    ds = found.dataset
    study_uid = raw_text(ds, 0x0020000D) or ""
    if options.study_uid is not None and study_uid != options.study_uid:
        return _Record(where, study_uid=study_uid)
    try:
        reference, broken = _reference(ds, options.mac)
        warning = None
        if broken:
            warning = (
                f"{where}: signature(s) {', '.join(broken)} do not verify: the instance is "
                "referenced by its MAC only"
            )
        return _Record(
            where,
            study_uid=study_uid,
            reference=reference,
            value_type=_value_type(ds),
            copied=_copied_attributes(ds),
            warning=warning,
        )
    except DsigError as e:
        return _Record(where, error=f"{where}: {e}")


def _add(study: _Study, rec: _Record) -> None:
    assert rec.reference is not None
    sop_uid = rec.reference.sop_instance_uid
    if sop_uid in study.paths:
        raise DicomFormatError(
            f"SOP Instance UID {sop_uid} is in two files: {study.paths[sop_uid]} and {rec.path}"
        )
    study.references.append(rec.reference)
    study.paths[sop_uid] = rec.path
    study.value_types[sop_uid] = rec.value_type


def _reference(ds: Dataset, mac: HashAlgorithm) -> tuple[Reference, list[str]]:
    """The reference, and the UIDs of main-level signatures that do not verify."""
    tags = signable_tags(ds)
    value, _missing = reference_mac(ds, tags, mac)
    intact, broken = _signatures(ds)
    reference = Reference(
        study_uid=raw_text(ds, 0x0020000D) or "",
        series_uid=raw_text(ds, 0x0020000E) or "",
        sop_class_uid=raw_text(ds, 0x00080016) or "",
        sop_instance_uid=raw_text(ds, 0x00080018) or "",
        mac_algorithm=mac.value,
        mac_transfer_syntax=mac_transfer_syntax(ds),
        signed_tags=tags,
        mac=value,
        signatures=intact,
    )
    return reference, broken


def _value_type(ds: Dataset) -> str:
    """The TID 2010 content item type for an instance."""
    if (raw_text(ds, 0x00080016) or "").startswith(_WAVEFORM_CLASS_PREFIX):
        return "WAVEFORM"
    if any(t in ds for t in _PIXEL_TAGS):
        return "IMAGE"
    return "COMPOSITE"


def _signatures(ds: Dataset) -> tuple[tuple[SignatureReference, ...], list[str]]:
    """(the main-level signatures whose MAC and signature verify now, UIDs of the others).
    Trust is the instance signer's business; the manifest pins the signature value."""
    if not any(not ref.path for ref in find_signatures(ds)):
        return (), []
    from dsig.operations.verifier import VerifyOptions, verify_dataset

    result = verify_dataset(ds, VerifyOptions(integrity_only=True))
    intact = {
        s.uid for s in result.signatures if not s.location and s.integrity is Indication.VALID
    }
    main = [ref for ref in find_signatures(ds) if not ref.path]
    return (
        tuple(
            SignatureReference(ref.uid, raw_bytes(ref.item, SIGNATURE) or b"")
            for ref in main
            if ref.uid in intact
        ),
        [ref.uid for ref in main if ref.uid not in intact],
    )


def _copied_attributes(ds: Dataset) -> Dataset:
    out = Dataset()
    for tag, type2 in _PATIENT_STUDY:
        if tag in ds:  # the stored bytes, in the Specific Character Set copied with them
            out.add(DataElement(tag, element_vr(ds, tag), stored(ds, tag).value))
        elif type2:
            out.add(DataElement(tag, pydicom.datadict.dictionary_VR(tag), None))
    return out


def _kos(study_uid: str, study: _Study, moment: dt.datetime) -> Dataset:
    """The KOS data set (unsigned), encoded and read back so that the signature and the file
    are made from the same stored bytes."""
    ds = Dataset()
    ds.update(study.first)
    uid = generate_uid()
    date, time = moment.strftime("%Y%m%d"), moment.strftime("%H%M%S")
    ds.add_new(0x00080012, "DA", date)  # Instance Creation Date
    ds.add_new(0x00080013, "TM", time)
    ds.add_new(0x00080016, "UI", KOS_SOP_CLASS)
    ds.add_new(0x00080018, "UI", uid)
    ds.add_new(0x00080023, "DA", date)  # Content Date
    ds.add_new(0x00080033, "TM", time)
    ds.add_new(0x00080060, "CS", "KO")
    ds.add_new(0x00080070, "LO", "dsig")  # Manufacturer
    ds.add_new(0x00081111, "SQ", DicomSequence())  # Referenced Performed Procedure Step
    ds.add_new(0x00181020, "LO", f"dsig {__version__}")  # Software Versions
    ds.add_new(0x0020000D, "UI", study_uid)
    ds.add_new(0x0020000E, "UI", generate_uid())
    ds.add_new(0x00200011, "IS", "1")  # Series Number
    ds.add_new(0x00200013, "IS", "1")  # Instance Number
    ds.add_new(0x0040A040, "CS", "CONTAINER")
    ds.add_new(0x0040A043, "SQ", DicomSequence([_code(*MANIFEST_TITLE)]))
    ds.add_new(0x0040A050, "CS", "SEPARATE")
    template = Dataset()
    template.add_new(0x00080105, "CS", "DCMR")
    template.add_new(0x0040DB00, "CS", "2010")
    ds.add_new(0x0040A504, "SQ", DicomSequence([template]))
    ds.add_new(0x0040A730, "SQ", DicomSequence([_content_item(r, study) for r in study.references]))
    ds.add_new(EVIDENCE_SEQUENCE, "SQ", evidence_sequence(study_uid, study.references))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(KOS_SOP_CLASS)
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buf = io.BytesIO()
    write_dataset_file(ds, buf, Encoding(str(ExplicitVRLittleEndian)))
    buf.seek(0)
    return pydicom.dcmread(buf)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.add_new(0x00080100, "SH", value)
    code.add_new(0x00080102, "SH", scheme)
    code.add_new(0x00080104, "LO", meaning)
    return code


def _content_item(ref: Reference, study: _Study) -> Dataset:
    item = Dataset()
    item.add_new(0x0040A010, "CS", "CONTAINS")
    item.add_new(0x0040A040, "CS", study.value_types[ref.sop_instance_uid])
    sop = Dataset()
    sop.add_new(0x00081150, "UI", ref.sop_class_uid)
    sop.add_new(0x00081155, "UI", ref.sop_instance_uid)
    item.add_new(0x00081199, "SQ", DicomSequence([sop]))
    return item


def save_manifest(created: CreatedManifest, path: Path, *, force: bool = False) -> None:
    """Write the manifest to ``path`` atomically (explicit VR little endian); an existing
    file is replaced only with ``force``. Raises OutputError."""
    if path.exists() and not force:
        raise OutputError(f"output {path} exists: not replaced unless forced", option="force")
    if path.is_dir():
        raise OutputError(f"output {path} is a directory")
    save(created.dataset, path, Encoding(str(ExplicitVRLittleEndian)))


__all__ = [
    "CreateOptions",
    "CreatedManifest",
    "Skipped",
    "StudySelectionError",
    "create_manifest",
    "save_manifest",
]
