"""The vocabulary of trust decisions, shared with :mod:`dsig` reports."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography import x509

from pki.codes import FindingCode, Phase, meanings


class Indication(enum.StrEnum):
    """The one verdict vocabulary: per signature VALID / INVALID / INDETERMINATE, per file also
    UNSIGNED and ERROR, per trust evaluation also NOT_CHECKED (dsig re-exports it)."""

    VALID = "VALID"
    INVALID = "INVALID"
    INDETERMINATE = "INDETERMINATE"
    UNSIGNED = "UNSIGNED"
    ERROR = "ERROR"
    NOT_CHECKED = "NOT_CHECKED"


#: The former name of the trust verdict, kept for callers.
TrustIndication = Indication


@dataclass(frozen=True, init=False)
class TrustFinding:
    """One stable finding code (e.g. ``CERT_EXPIRED``) with a human message.

    ``code`` is given as a :class:`FindingCode` or its string and stored as the member, so
    an unknown code fails where it is raised, not in a report consumer.
    """

    code: FindingCode
    message: str
    note: bool = False  # informational: does not change the indication
    #: The option keyword that changes the outcome (a front end adds its spelling).
    option: str | None = None

    def __init__(
        self, code: str, message: str, note: bool = False, *, option: str | None = None
    ) -> None:
        object.__setattr__(self, "code", FindingCode.of(code))
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "note", note)
        object.__setattr__(self, "option", option)


@dataclass(frozen=True)
class RevocationCheck:
    """How the revocation status of one certificate of the path was (or was not) established.

    ``status``: ``good``, ``revoked``, ``revoked-later`` (after the validation moment),
    ``unknown`` (OCSP said so), ``unavailable`` (publishes revocation info that could not be
    had), ``not-published`` (no CRL distribution point, no OCSP responder, nothing supplied)
    or ``not-checked`` (revocation off). ``source``: ``crl``/``ocsp`` with ``supplied`` or
    ``fetched``; ``detail`` says why when nothing was used.
    """

    certificate: str
    serial: str
    status: str
    source: str | None = None
    detail: str = ""
    revoked_at: dt.datetime | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, object]:
        """One entry of ``trust.revocation``."""
        out: dict[str, object] = {
            "certificate": self.certificate,
            "serial": self.serial,
            "status": self.status,
            "source": self.source,
        }
        if self.detail:
            out["detail"] = self.detail
        if self.revoked_at is not None:
            out["revoked_at"] = self.revoked_at.isoformat()
        if self.reason:
            out["reason"] = self.reason
        return out

    def describe(self) -> str:
        """Short human form: ``CN=x: good (ocsp fetched)``."""
        how = f" ({self.source})" if self.source else (f" ({self.detail})" if self.detail else "")
        return f"{self.certificate}: {self.status}{how}"


@dataclass(frozen=True)
class TrustResult:
    """Verdict on a signer certificate at a moment, with the path that was found.

    ``chain``: the path, signer first. A certificate cryptography refuses (given as DER, e.g.
    with inherited DSA parameters) is there as a view with those parameters filled in: read
    its names, extensions and key, never embed it (its DER and signature are not the issued
    ones). ``revocation``: one :class:`RevocationCheck` per certificate of the path below the
    anchor; ``policies``: the certificate policies the path was accepted under (dotted OIDs).
    """

    indication: TrustIndication
    findings: tuple[TrustFinding, ...] = ()
    chain: tuple[x509.Certificate, ...] = ()
    validated_at: dt.datetime | None = None
    details: dict[str, str] = field(default_factory=dict)
    revocation: tuple[RevocationCheck, ...] = ()
    policies: tuple[str, ...] = ()

    def revocation_line(self) -> str:
        """What was and wasn't checked for revocation, in one line ('' when not evaluated)."""
        return "; ".join(c.describe() for c in self.revocation)

    def to_json(self) -> dict[str, object]:
        """The ``trust`` object of the JSON report."""
        out: dict[str, object] = {
            "indication": self.indication.value,
            "findings": [_finding_json(f) for f in self.findings],
        }
        if self.validated_at is not None:
            out["validated_at"] = self.validated_at.isoformat()
        if self.chain:
            out["chain"] = [c.subject.rfc4514_string() for c in self.chain]
        if self.revocation:
            out["revocation"] = [c.to_json() for c in self.revocation]
        if self.chain and self.indication is TrustIndication.VALID:
            out["accepted_policies"] = list(self.policies)
        out.update(self.details)
        return out


def _finding_json(finding: TrustFinding) -> dict[str, object]:
    out: dict[str, object] = {"code": finding.code.value, "message": finding.message}
    if finding.note:
        out["note"] = True
    return out


#: ``{code: meaning}`` of the trust codes (a view of :class:`FindingCode`, kept for callers).
FINDING_CODES: dict[str, str] = meanings(Phase.TRUST, also=(FindingCode.WEAK_ALGORITHM,))


NOT_CHECKED = TrustResult(
    TrustIndication.NOT_CHECKED,
    (TrustFinding("TRUST_NOT_CHECKED", "no trust store given: the signer was not validated"),),
)


class TrustEvaluator(Protocol):
    """Decides whether a signer certificate deserves trust at a moment."""

    def evaluate(
        self,
        leaf: x509.Certificate,
        *,
        at: dt.datetime,
        extra_certs: Sequence[x509.Certificate] = (),
        certified_time: bool = False,
    ) -> TrustResult:
        """Validate ``leaf`` (path, validity at ``at``, key usage, revocation).

        ``certified_time``: ``at`` comes from a certified timestamp, so a revocation dated
        after it passes with a ``REVOKED_AFTER_MOMENT`` note.
        """
        ...
