"""What a signature is about to cover, shown to the signer before she confirms (and before the
PIN is asked): patient, study, modality, SOP class, element count, profile, purpose, signer."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from cryptography import x509
from pydicom.dataset import Dataset
from pydicom.uid import UID

from dsig.encoding.tags import ROOT, ItemPath, format_location
from dsig.operations.signer import SignOptions, tags_to_be_signed
from dsig.signature.purposes import SIGNATURE_PURPOSES


@dataclass(frozen=True)
class SignerSummary:
    """The signer certificate as a physician checks it: who, and valid when."""

    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime

    @classmethod
    def of(cls, cert: x509.Certificate) -> SignerSummary:
        """Summarise ``cert``."""
        return cls(
            cert.subject.rfc4514_string(),
            cert.issuer.rfc4514_string(),
            cert.not_valid_before_utc,
            cert.not_valid_after_utc,
        )

    def valid_at(self, when: dt.datetime) -> bool:
        """True when ``when`` lies in the validity period."""
        return self.not_before <= when <= self.not_after


@dataclass(frozen=True)
class SigningPreview:
    """One file's signature-to-be. Text fields are as stored (None when absent)."""

    patient_name: str | None
    patient_id: str | None
    study_date: str | None
    study_description: str | None
    modality: str | None
    sop_class: str | None
    sop_class_name: str | None
    location: str
    covered_count: int
    profile: str
    purpose: int | None
    purpose_meaning: str | None
    signer: SignerSummary | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (datetimes as ISO 8601)."""
        data = asdict(self)
        if self.signer is not None:
            data["signer"]["not_before"] = self.signer.not_before.isoformat()
            data["signer"]["not_after"] = self.signer.not_after.isoformat()
        return data

    def lines(self, now: dt.datetime | None = None) -> list[str]:
        """Human-readable lines; control characters in DICOM values are escaped."""
        now = now or dt.datetime.now(dt.UTC)
        sop = _show(self.sop_class)
        if self.sop_class_name:
            sop = f"{_show(self.sop_class_name)} ({sop})"
        where = f" in {self.location}" if self.location else ""
        purpose = "none"
        if self.purpose is not None:
            purpose = f"{self.purpose} {self.purpose_meaning or '(unknown code)'}"
        out = [
            f"  patient:     {_show(self.patient_name)}  ID {_show(self.patient_id)}",
            f"  study:       {_show(self.study_date)}  {_show(self.study_description)}",
            f"  modality:    {_show(self.modality)}   SOP class: {sop}",
            f"  covers:      {self.covered_count} elements{where}",
            f"  profile:     {self.profile}   purpose: {purpose}",
        ]
        if self.signer is None:
            out.append("  signer:      (certificate not readable before login)")
        else:
            s = self.signer
            state = "" if s.valid_at(now) else "  NOT VALID NOW"
            out.append(f"  signer:      {_show(s.subject)}")
            out.append(
                f"  valid:       {s.not_before.date().isoformat()} to "
                f"{s.not_after.date().isoformat()}{state}  (issuer {_show(s.issuer)})"
            )
        return out


def preview_signing(
    ds: Dataset,
    options: SignOptions,
    *,
    location: ItemPath = ROOT,
    certificate: x509.Certificate | None = None,
) -> SigningPreview:
    """What :func:`dsig.operations.signer.add_signature` would sign in ``ds`` (not modified).

    Raises what add_signature raises for the tag choice (TagError, LocationError, ...).
    """
    covered = tags_to_be_signed(ds, options, location=location)
    sop_class = _text(ds, "SOPClassUID")
    name = UID(sop_class).name if sop_class else None
    return SigningPreview(
        patient_name=_text(ds, "PatientName"),
        patient_id=_text(ds, "PatientID"),
        study_date=_text(ds, "StudyDate"),
        study_description=_text(ds, "StudyDescription"),
        modality=_text(ds, "Modality"),
        sop_class=sop_class,
        sop_class_name=name if name and name != sop_class else None,
        location=format_location(location),
        covered_count=len(covered),
        profile=options.profile.value,
        purpose=options.purpose,
        purpose_meaning=SIGNATURE_PURPOSES.get(options.purpose)
        if options.purpose is not None
        else None,
        signer=SignerSummary.of(certificate) if certificate is not None else None,
    )


def _text(ds: Dataset, keyword: str) -> str | None:
    try:
        value = ds.get(keyword)
    except Exception:  # a malformed value must not stop the preview: show it as absent
        return None
    if value is None or value == "":
        return None
    return str(value)


def _show(value: str | None) -> str:
    """Escape control characters: a crafted value must not forge lines on the terminal."""
    if value is None:
        return "-"
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in value)
