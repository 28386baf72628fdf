"""``dsig verify --evidence DIR``: a file's evidence record as proof of existence.

A PROVEN record shows the file's stored bytes, signatures included, existed at its proven
time: that time then serves as a certified validation moment for the file's signatures, as
a certified timestamp does (a signer revoked or expired since is VALID when it was good
then). A broken record (the file or the record changed) fails the file; a missing or
unprovable one is a warning and the signatures are judged as without it. A PROVEN record
whose last timestamp lost its value unrenewed (RENEWAL_DUE) proves, with that warning.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsig.results import Finding
from pki.evaluator import PolicyEvaluator
from pki.results import TrustEvaluator

if TYPE_CHECKING:  # loaded only when a record is checked
    from dsig.evidence.verify import EvidenceResult


@dataclass(frozen=True, slots=True)
class EvidenceReport:
    """The ``evidence`` object of a file's report: its record as checked (``result``), or
    ``message`` saying why none was found (status MISSING, ``record`` None)."""

    record: str | None
    result: EvidenceResult | None = None
    message: str | None = None

    @property
    def status(self) -> str:
        """PROVEN, BROKEN, NOT_PROVABLE or MISSING."""
        return "MISSING" if self.result is None else self.result.status.value

    def to_json(self) -> dict[str, Any]:
        """JSON form: ``status``, ``record`` and ``message``, or the record's check."""
        if self.result is None:
            return {"status": "MISSING", "record": self.record, "message": self.message}
        return {"record": self.record, **self.result.to_json()}


@dataclass(frozen=True, slots=True)
class EvidenceCheck:
    """What the file's record proves: ``proven_time`` (None: nothing), the ``evidence``
    object of the report, and the file-level finding to add (None when PROVEN, unless the
    record needs attention: RENEWAL_DUE as a warning)."""

    proven_time: dt.datetime | None
    report: EvidenceReport
    finding: Finding | None


def check_evidence(
    path: Path, evidence: Path, tsa_trust: TrustEvaluator | None, at: dt.datetime | None
) -> EvidenceCheck:
    """Find and verify the record of ``path`` in ``evidence`` (directory or record file).

    The TSAs are validated with ``tsa_trust``'s policy (``--tsa-trust-store``, else the
    trust store); ``at`` is the verification moment (None: now)."""
    from dsig.evidence.stamping import EvidenceError
    from dsig.evidence.store import find_record, verify_file_evidence
    from dsig.evidence.verify import EvidenceStatus

    policy = tsa_trust.policy if isinstance(tsa_trust, PolicyEvaluator) else None
    try:
        record = find_record(evidence, path)
        result = verify_file_evidence(path, record, tsa_trust=policy, at=at)
    except EvidenceError as e:
        missing = EvidenceReport(None, message=str(e))
        return EvidenceCheck(None, missing, Finding("EVIDENCE_MISSING", str(e), "warning"))
    report = EvidenceReport(str(record), result)
    status = result.status
    if status is EvidenceStatus.PROVEN and result.proven_time is not None:
        due = next((m for code, m in result.findings if code == "RENEWAL_DUE"), None)
        warning = None
        if due is not None:
            warning = Finding("RENEWAL_DUE", f"evidence record {record.name}: {due}", "warning")
        return EvidenceCheck(result.proven_time, report, warning)
    why = "; ".join(f"{code}: {message}" for code, message in result.findings) or status.value
    if status is EvidenceStatus.BROKEN:
        message = f"evidence record {record.name} is broken ({why})"
        return EvidenceCheck(None, report, Finding("EVIDENCE_BROKEN", message, "error"))
    message = f"evidence record {record.name} proves nothing ({why})"
    return EvidenceCheck(None, report, Finding("EVIDENCE_NOT_PROVABLE", message, "warning"))


__all__ = ["EvidenceCheck", "EvidenceReport", "check_evidence"]
