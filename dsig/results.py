"""Verification results and their JSON form (the ``--json`` contract documented in the README)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pki.codes import FindingCode as FindingCode
from pki.codes import Phase as Phase
from pki.codes import meanings
from pki.results import NOT_CHECKED, TrustIndication, TrustResult
from pki.results import Indication as Indication  # the one verdict enum, defined in pki

if TYPE_CHECKING:  # dsig.evidence is a layer above the results
    from dsig.evidence.hook import EvidenceReport

_RANK = {Indication.VALID: 0, Indication.INDETERMINATE: 1, Indication.INVALID: 2}

#: ``{code: meaning}`` of the verifier's own codes (a view of :class:`FindingCode`, kept for
#: callers; the trust codes are ``pki.FINDING_CODES``).
FINDING_CODES: dict[str, str] = meanings(
    Phase.INPUT,
    Phase.INTEGRITY,
    Phase.PROFILE,
    also=(FindingCode.TRUST_NOT_CHECKED, FindingCode.SIGNING_TIME_OUTSIDE_VALIDITY),
)


#: Findings that fail an intact signature when raised with severity "error" (policy, not
#: integrity: the MAC matched, but the verifier was told not to accept this, or the
#: signature's certified timestamp is broken).
POLICY_FAILURES = frozenset({FindingCode.WEAK_ALGORITHM, FindingCode.TIMESTAMP_INVALID})
#: Findings that make an intact signature at best INDETERMINATE when raised as "error".
INDETERMINATE_FAILURES = frozenset({FindingCode.TIMESTAMP_INDETERMINATE})


def worst(*indications: Indication) -> Indication:
    """INVALID > INDETERMINATE > VALID."""
    return max(indications, key=lambda i: _RANK.get(i, 0))


@dataclass(frozen=True, init=False)
class Finding:
    """One observation about a signature, with a stable code.

    ``code`` is given as a :class:`FindingCode` or its string and stored as the member, so an
    unknown code fails where it is raised, not in a report consumer. ``option`` (and its
    ``value``) names the verification option keyword that changes the outcome, as on
    :class:`~dsig.errors.DsigError`: messages never name CLI flags, a front end adds its own.
    """

    code: FindingCode
    message: str
    severity: str = "error"  # "error" decides the indication, "warning" only informs
    option: str | None = None
    value: str | None = None

    def __init__(
        self,
        code: str,
        message: str,
        severity: str = "error",
        *,
        option: str | None = None,
        value: str | None = None,
    ) -> None:
        object.__setattr__(self, "code", FindingCode.of(code))
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "severity", severity)
        object.__setattr__(self, "option", option)
        object.__setattr__(self, "value", value)

    def to_json(self) -> dict[str, str]:
        """JSON form."""
        return {"code": self.code.value, "message": self.message, "severity": self.severity}


@dataclass(frozen=True, slots=True)
class PurposeReport:
    """The Digital Signature Purpose Code of a signature, as stored (empty when absent)."""

    code: str
    scheme: str
    meaning: str

    @property
    def number(self) -> int | None:
        """The code as a number (PS3.16 CID 7007 codes are digits), else None."""
        return int(self.code) if self.code.isdigit() else None

    def to_json(self) -> dict[str, str]:
        """JSON form (the ``purpose`` object)."""
        return {"code": self.code, "scheme": self.scheme, "meaning": self.meaning}


@dataclass(frozen=True, slots=True)
class TokenDetails:
    """What a decoded timestamp token states besides its time, TSA and hash."""

    policy: str
    serial: int
    accuracy_seconds: float | None = None
    tsa_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The additive fields of the ``timestamp`` object (absent ones left out)."""
        out: dict[str, Any] = {"policy": self.policy, "serial": self.serial}
        if self.accuracy_seconds is not None:
            out["accuracy_seconds"] = self.accuracy_seconds
        if self.tsa_name:
            out["tsa_name"] = self.tsa_name
        return out


@dataclass(frozen=True, slots=True)
class TimestampReport:
    """A signature's certified timestamp as checked: the ``timestamp`` object of the JSON
    report, plus the certified time when valid. ``token`` is None when it did not decode."""

    indication: Indication  # VALID / INVALID / INDETERMINATE
    time: dt.datetime | None
    tsa: str | None
    hash_algorithm: str | None
    findings: tuple[Finding, ...] = ()
    token: TokenDetails | None = None
    tsa_trust: TrustResult | None = None

    @property
    def valid(self) -> bool:
        """Usable as a certified moment."""
        return self.indication is Indication.VALID and self.time is not None

    def to_json(self) -> dict[str, Any]:
        """JSON form (``indication``, ``time``, ``tsa``, ``hash_algorithm``, ``findings``...)."""
        out: dict[str, Any] = {
            "indication": self.indication.value,
            "time": self.time.isoformat() if self.time else None,
            "tsa": self.tsa,
            "hash_algorithm": self.hash_algorithm,
            "findings": [f.to_json() for f in self.findings],
        }
        if self.token is not None:
            out.update(self.token.to_json())
        if self.tsa_trust is not None:
            out["tsa_trust"] = self.tsa_trust.to_json()
        return out


@dataclass(frozen=True, slots=True)
class SignatureResult:
    """Everything found out about one signature (frozen: the verifier builds it by copying,
    callers only ever see it complete)."""

    uid: str
    location: str
    mac_id: int | None = None
    mac_algorithm: str | None = None
    mac_transfer_syntax: str | None = None
    datetime: str | None = None
    signer: str | None = None
    purpose: PurposeReport | None = None
    integrity: Indication = Indication.INDETERMINATE
    trust: TrustResult = NOT_CHECKED
    timestamp: TimestampReport | None = None
    profiles: tuple[str, ...] = ()
    signed_tags: tuple[str, ...] = ()
    unsigned_tags: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    trust_required: bool = True

    @property
    def indication(self) -> Indication:
        """Worst of integrity and (when required) trust."""
        result = self.integrity
        if self.trust_required:
            trust = {
                TrustIndication.VALID: Indication.VALID,
                TrustIndication.INVALID: Indication.INVALID,
                TrustIndication.INDETERMINATE: Indication.INDETERMINATE,
                TrustIndication.NOT_CHECKED: Indication.INDETERMINATE,
            }[self.trust.indication]
            result = worst(result, trust)
        if any(f.severity == "error" and f.code in POLICY_FAILURES for f in self.findings):
            result = worst(result, Indication.INVALID)
        if any(f.severity == "error" and f.code in INDETERMINATE_FAILURES for f in self.findings):
            result = worst(result, Indication.INDETERMINATE)
        return result

    def to_json(self) -> dict[str, Any]:
        """JSON form (schema in the README)."""
        return {
            "uid": self.uid,
            "location": self.location,
            "mac_id": self.mac_id,
            "mac_algorithm": self.mac_algorithm,
            "mac_transfer_syntax": self.mac_transfer_syntax,
            "datetime": self.datetime,
            "signer": self.signer,
            "purpose": self.purpose.to_json() if self.purpose is not None else None,
            "integrity": self.integrity.value,
            "trust": self.trust.to_json(),
            "timestamp": self.timestamp.to_json() if self.timestamp is not None else None,
            "profiles": list(self.profiles),
            "signed_tags": list(self.signed_tags),
            "unsigned_tags": list(self.unsigned_tags),
            "findings": [f.to_json() for f in self.findings],
            "indication": self.indication.value,
        }


@dataclass(frozen=True)
class FileIdentity:
    """Which object a file holds, for audit reports: its UIDs, the patient, the file's hash.

    Read with the data set the verifier judged (never re-read by another parser), so a
    storage node names and files an object by what was verified. Only the first four fields
    are in the JSON form; the others serve the storage node and the Orthanc service.
    """

    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    patient_id: str | None = None
    #: Hex SHA-256 of the file as read (``VerifyOptions.file_sha256``), else None.
    sha256: str | None = None
    sop_class_uid: str | None = None
    series_instance_uid: str | None = None
    #: Patient ID decoded in the data set's Specific Character Set (as Orthanc hashes it).
    patient_id_text: str | None = None
    #: Media Storage SOP Class and Instance UIDs of the File Meta (None without one).
    meta_sop_class_uid: str | None = None
    meta_sop_instance_uid: str | None = None

    @classmethod
    def of(cls, ds: Any) -> FileIdentity:
        """From a data set read by :func:`dsig.encoding.reader.read_dicom` (stored text,
        unconverted)."""
        from dsig.encoding.values import decoded_text, raw_text

        sha = getattr(ds, "dsig_file_sha256", None)
        meta = getattr(ds, "file_meta", None)
        return cls(
            sop_instance_uid=raw_text(ds, 0x00080018),
            study_instance_uid=raw_text(ds, 0x0020000D),
            patient_id=raw_text(ds, 0x00100020),
            sha256=sha if isinstance(sha, str) else None,
            sop_class_uid=raw_text(ds, 0x00080016),
            series_instance_uid=raw_text(ds, 0x0020000E),
            patient_id_text=decoded_text(ds, 0x00100020, "LO"),
            meta_sop_class_uid=raw_text(meta, 0x00020002) if meta is not None else None,
            meta_sop_instance_uid=raw_text(meta, 0x00020003) if meta is not None else None,
        )

    def to_json(self) -> dict[str, str | None]:
        """The additive fields of a file's JSON object."""
        return {
            "sop_instance_uid": self.sop_instance_uid,
            "study_instance_uid": self.study_instance_uid,
            "patient_id": self.patient_id,
            "sha256": self.sha256,
        }


@dataclass(frozen=True, slots=True)
class FileResult:
    """Result for one file: its signatures, or the error that stopped reading it (frozen)."""

    path: str
    signatures: tuple[SignatureResult, ...] = ()
    error: str | None = None
    findings: tuple[Finding, ...] = ()
    #: Top-level elements no valid main-level signature covers (any VR), and bytes after the
    #: data set; filled for signed files.
    uncovered: tuple[str, ...] = ()
    trailing_bytes: int = 0
    #: ``dsig verify --evidence``: the file's evidence record as checked (status, proven
    #: time, renewals, findings, record path); None without ``--evidence``.
    evidence: EvidenceReport | None = None
    identity: FileIdentity = FileIdentity()

    @property
    def indication(self) -> Indication:
        """ERROR, UNSIGNED, or the worst signature/requirement outcome."""
        if self.error is not None:
            return Indication.ERROR
        result = Indication.VALID
        if not self.signatures:
            result = Indication.UNSIGNED
        else:
            result = worst(*(s.indication for s in self.signatures))
        if any(f.severity == "error" for f in self.findings):
            result = Indication.INVALID
        return result

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "path": self.path,
            "indication": self.indication.value,
            "error": self.error,
            "findings": [f.to_json() for f in self.findings],
            "uncovered": list(self.uncovered),
            "trailing_bytes": self.trailing_bytes,
            "signatures": [s.to_json() for s in self.signatures],
            **({"evidence": self.evidence.to_json()} if self.evidence is not None else {}),
            **self.identity.to_json(),
        }


_Noted = TypeVar("_Noted", SignatureResult, FileResult)


def with_findings(result: _Noted, *found: Finding) -> _Noted:
    """``result`` with ``found`` added after its findings. The verifier builds each result
    as the frozen type itself, step by step by copying: the field list lives here once."""
    return dataclasses.replace(result, findings=(*result.findings, *found)) if found else result


def exit_code(files: Iterable[FileResult]) -> int:
    """0 all valid (or unsigned without requirement); 1 invalid; 4 errors; 3 indeterminate."""
    return exit_code_for(f.indication for f in files)


def exit_code_for(file_indications: Iterable[Indication]) -> int:
    """:func:`exit_code` from the file indications alone (batch runs keep no FileResults)."""
    indications = set(file_indications)
    if Indication.INVALID in indications:
        return 1
    if Indication.ERROR in indications:
        return 4
    if Indication.INDETERMINATE in indications:
        return 3
    return 0
