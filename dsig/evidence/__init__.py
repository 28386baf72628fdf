"""RFC 4998 Evidence Record Syntax: long-term proof that files existed, unchanged, at a time.

Python API (the ``dsig evidence`` commands are a thin layer over it):

- :func:`create_evidence` - records for a study (one timestamp for all files);
- :func:`verify_file_evidence` / :func:`verify_evidence` - check a record against its data;
- :func:`renew_evidence` - timestamp renewal, or hash-tree renewal with ``rehash``;
- :func:`status_evidence` - which records are due for renewal, per :class:`AlgorithmLifetimes`.

The RFC 4998 layers (:mod:`~dsig.evidence.asn1`, :mod:`~dsig.evidence.hashtree`,
:mod:`~dsig.evidence.record`, :mod:`~dsig.evidence.verify`) know nothing of DICOM;
:mod:`~dsig.evidence.naming` names records after SOP Instance UIDs.
"""

from __future__ import annotations

from dsig.evidence.algorithms import DEFAULT_LIFETIMES, SOURCES, AlgorithmLifetimes
from dsig.evidence.hook import EvidenceReport
from dsig.evidence.record import Record, RecordError, parse
from dsig.evidence.stamping import EvidenceError, StampSettings
from dsig.evidence.store import (
    CreateSummary,
    RenewSummary,
    StatusRow,
    create_evidence,
    find_record,
    renew_evidence,
    status_evidence,
    verify_file_evidence,
)
from dsig.evidence.validation import ValidationData
from dsig.evidence.verify import (
    EVIDENCE_FINDING_CODES,
    EvidenceResult,
    EvidenceStatus,
    StampResult,
    verify_evidence,
)

__all__ = [
    "DEFAULT_LIFETIMES",
    "EVIDENCE_FINDING_CODES",
    "SOURCES",
    "AlgorithmLifetimes",
    "CreateSummary",
    "EvidenceError",
    "EvidenceReport",
    "EvidenceResult",
    "EvidenceStatus",
    "Record",
    "RecordError",
    "RenewSummary",
    "StampResult",
    "StampSettings",
    "StatusRow",
    "ValidationData",
    "create_evidence",
    "find_record",
    "parse",
    "renew_evidence",
    "status_evidence",
    "verify_evidence",
    "verify_file_evidence",
]
