"""The study manifest as data: the references a Key Object Selection Document lists, parsed
from and written to its Current Requested Procedure Evidence Sequence (PS3.3 C.17.2)."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from dsig.encoding.tags import tag_str
from dsig.encoding.values import raw_text
from dsig.errors import DicomFormatError
from dsig.signature.model import (
    DATA_ELEMENTS_SIGNED,
    MAC_ALGORITHM,
    MAC_TRANSFER_SYNTAX,
    SIGNATURE,
    SIGNATURE_UID,
    raw_bytes,
    raw_tags,
    sequence_datasets,
)

KOS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
#: PS3.17 Annex W: the document title of a manifest (CID 7010).
MANIFEST_TITLE = ("113035", "DCM", "Signed Complete Acquisition Content")
#: Purpose of the manifest's signature: (14, ASTM-sigpurpose, "Source Signature").
MANIFEST_PURPOSE = 14

EVIDENCE_SEQUENCE = 0x0040A375
REFERENCED_SERIES_SEQUENCE = 0x00081115
REFERENCED_SOP_SEQUENCE = 0x00081199
REFERENCED_SOP_CLASS = 0x00081150
REFERENCED_SOP_INSTANCE = 0x00081155
REFERENCED_SIGNATURE_SEQUENCE = 0x04000402
REFERENCED_MAC_SEQUENCE = 0x04000403
MAC = 0x04000404
STUDY_INSTANCE_UID = 0x0020000D
SERIES_INSTANCE_UID = 0x0020000E
SOP_CLASS_UID = 0x00080016
SOP_INSTANCE_UID = 0x00080018
CONCEPT_NAME_CODE_SEQUENCE = 0x0040A043


@dataclass(frozen=True)
class SignatureReference:
    """A signature of the referenced instance, pinned by its UID and value (0400,0402)."""

    uid: str
    signature: bytes


@dataclass(frozen=True)
class Reference:
    """One instance the manifest lists, with what pins its content."""

    study_uid: str
    series_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    #: Referenced SOP Instance MAC Sequence (0400,0403); None when only signatures pin it.
    mac_algorithm: str | None = None
    mac_transfer_syntax: str | None = None
    signed_tags: tuple[int, ...] = ()
    mac: bytes | None = None
    signatures: tuple[SignatureReference, ...] = ()


@dataclass(frozen=True)
class Manifest:
    """What a manifest file says: its own identity and its references, in file order."""

    sop_instance_uid: str
    study_uid: str
    references: tuple[Reference, ...]

    @property
    def series_count(self) -> int:
        """Distinct referenced series."""
        return len({r.series_uid for r in self.references})


def is_manifest(ds: Dataset) -> bool:
    """A Key Object Selection Document titled "Signed Complete Acquisition Content"."""
    if raw_text(ds, SOP_CLASS_UID) != KOS_SOP_CLASS or CONCEPT_NAME_CODE_SEQUENCE not in ds:
        return False
    try:
        items = sequence_datasets(ds, CONCEPT_NAME_CODE_SEQUENCE)
    except DicomFormatError:
        return False
    if len(items) != 1:
        return False
    code = items[0]
    return (raw_text(code, 0x00080100), raw_text(code, 0x00080102)) == MANIFEST_TITLE[:2]


def manifest_note(ds: Dataset) -> str | None:
    """For ``dsig verify``: one line saying ``ds`` is a study manifest and what it lists
    (None when it is not one)."""
    if not is_manifest(ds):
        return None
    try:
        manifest = read_manifest(ds)
    except DicomFormatError as e:
        return f"a study manifest, but malformed: {e}"
    return (
        f"a study manifest of study {manifest.study_uid}: {len(manifest.references)} "
        f"instance reference(s) in {manifest.series_count} series "
        "(check the instances with: dsig manifest verify MANIFEST STUDY_DIR)"
    )


def read_manifest(ds: Dataset) -> Manifest:
    """Parse a manifest's references. Raises DicomFormatError when it is not a manifest or a
    reference is malformed (no UID, neither a MAC nor a signature reference)."""
    if not is_manifest(ds):
        raise DicomFormatError(
            "not a study manifest (a Key Object Selection Document titled "
            f"({', '.join(MANIFEST_TITLE[:2])}, {MANIFEST_TITLE[2]!r}))"
        )
    refs: list[Reference] = []
    seen: set[str] = set()
    for study in _items(ds, EVIDENCE_SEQUENCE):
        study_uid = _required(study, STUDY_INSTANCE_UID, "Study Instance UID")
        for series in _items(study, REFERENCED_SERIES_SEQUENCE):
            series_uid = _required(series, SERIES_INSTANCE_UID, "Series Instance UID")
            for item in _items(series, REFERENCED_SOP_SEQUENCE):
                ref = _reference(item, study_uid, series_uid)
                if ref.sop_instance_uid in seen:
                    raise DicomFormatError(
                        f"the manifest lists SOP Instance {ref.sop_instance_uid} twice"
                    )
                seen.add(ref.sop_instance_uid)
                refs.append(ref)
    studies = {r.study_uid for r in refs}
    if len(studies) > 1:
        raise DicomFormatError(f"the manifest references {len(studies)} studies, not one")
    return Manifest(
        sop_instance_uid=raw_text(ds, SOP_INSTANCE_UID) or "",
        study_uid=raw_text(ds, STUDY_INSTANCE_UID) or "",
        references=tuple(refs),
    )


def _items(ds: Dataset, tag: int) -> list[Dataset]:
    return sequence_datasets(ds, tag) if tag in ds else []


def _required(ds: Dataset, tag: int, name: str) -> str:
    value = raw_text(ds, tag)
    if not value:
        raise DicomFormatError(f"a manifest reference has no {name} {tag_str(tag)}")
    return value


def _reference(item: Dataset, study_uid: str, series_uid: str) -> Reference:
    sop_class = _required(item, REFERENCED_SOP_CLASS, "Referenced SOP Class UID")
    sop_instance = _required(item, REFERENCED_SOP_INSTANCE, "Referenced SOP Instance UID")
    signatures = tuple(
        SignatureReference(
            _required(sig, SIGNATURE_UID, "Digital Signature UID"), raw_bytes(sig, SIGNATURE) or b""
        )
        for sig in _items(item, REFERENCED_SIGNATURE_SEQUENCE)
    )
    macs = _items(item, REFERENCED_MAC_SEQUENCE)
    if len(macs) > 1:
        raise DicomFormatError(f"reference {sop_instance}: more than one MAC item")
    if not macs and not signatures:
        raise DicomFormatError(
            f"reference {sop_instance} carries neither a MAC (0400,0403) nor a signature "
            "reference (0400,0402)"
        )
    if not macs:
        return Reference(study_uid, series_uid, sop_class, sop_instance, signatures=signatures)
    mac_item = macs[0]
    mac = raw_bytes(mac_item, MAC)
    if not mac:
        raise DicomFormatError(f"reference {sop_instance}: the MAC (0400,0404) is missing")
    return Reference(
        study_uid,
        series_uid,
        sop_class,
        sop_instance,
        mac_algorithm=_required(mac_item, MAC_ALGORITHM, "MAC Algorithm"),
        mac_transfer_syntax=_required(mac_item, MAC_TRANSFER_SYNTAX, "MAC Transfer Syntax"),
        signed_tags=tuple(raw_tags(mac_item, DATA_ELEMENTS_SIGNED)),
        mac=mac,
        signatures=signatures,
    )


def evidence_sequence(study_uid: str, references: list[Reference]) -> DicomSequence:
    """The Current Requested Procedure Evidence Sequence listing ``references`` under their
    series (series and instances in the order given)."""
    by_series: dict[str, list[Reference]] = {}
    for ref in references:
        by_series.setdefault(ref.series_uid, []).append(ref)
    study = Dataset()
    series_items = []
    for series_uid, refs in by_series.items():
        series = Dataset()
        series.add_new(SERIES_INSTANCE_UID, "UI", series_uid)
        series.add_new(REFERENCED_SOP_SEQUENCE, "SQ", DicomSequence([_sop_item(r) for r in refs]))
        series_items.append(series)
    study.add_new(REFERENCED_SERIES_SEQUENCE, "SQ", DicomSequence(series_items))
    study.add_new(STUDY_INSTANCE_UID, "UI", study_uid)
    return DicomSequence([study])


def _sop_item(ref: Reference) -> Dataset:
    item = Dataset()
    item.add_new(REFERENCED_SOP_CLASS, "UI", ref.sop_class_uid)
    item.add_new(REFERENCED_SOP_INSTANCE, "UI", ref.sop_instance_uid)
    if ref.signatures:
        sigs = []
        for sig in ref.signatures:
            entry = Dataset()
            entry.add_new(SIGNATURE_UID, "UI", sig.uid)
            entry.add_new(SIGNATURE, "OB", sig.signature)
            sigs.append(entry)
        item.add_new(REFERENCED_SIGNATURE_SEQUENCE, "SQ", DicomSequence(sigs))
    if ref.mac is not None:
        mac = Dataset()
        mac.add_new(MAC_TRANSFER_SYNTAX, "UI", ref.mac_transfer_syntax)
        mac.add_new(MAC_ALGORITHM, "CS", ref.mac_algorithm)
        mac.add_new(DATA_ELEMENTS_SIGNED, "AT", list(ref.signed_tags))
        mac.add_new(MAC, "OB", ref.mac)
        item.add_new(REFERENCED_MAC_SEQUENCE, "SQ", DicomSequence([mac]))
    return item
