"""The vocabulary of trust decisions, shared with :mod:`dsig` reports."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography import x509


class TrustIndication(enum.Enum):
    """Outcome of the second verification phase for one signer certificate."""

    VALID = "VALID"
    INVALID = "INVALID"
    INDETERMINATE = "INDETERMINATE"
    NOT_CHECKED = "NOT_CHECKED"


@dataclass(frozen=True)
class TrustFinding:
    """One stable finding code (e.g. ``CERT_EXPIRED``) with a human message."""

    code: str
    message: str
    note: bool = False  # informational: does not change the indication


@dataclass(frozen=True)
class TrustResult:
    """Verdict on a signer certificate at a moment, with the path that was found."""

    indication: TrustIndication
    findings: tuple[TrustFinding, ...] = ()
    chain: tuple[x509.Certificate, ...] = ()
    validated_at: dt.datetime | None = None
    details: dict[str, str] = field(default_factory=dict)

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
        out.update(self.details)
        return out


def _finding_json(finding: TrustFinding) -> dict[str, object]:
    out: dict[str, object] = {"code": finding.code, "message": finding.message}
    if finding.note:
        out["note"] = True
    return out


#: Every finding code the trust module emits, with its meaning. The list is the contract.
FINDING_CODES: dict[str, str] = {
    "TRUST_NOT_CHECKED": "no trust store was given, so the signer was not validated",
    "NO_TRUSTED_PATH": "no certificate path from the signer to a configured trust anchor",
    "CERT_EXPIRED": "a certificate of the path had expired at the validation moment",
    "CERT_NOT_YET_VALID": "a certificate of the path was not yet valid at the validation moment",
    "CERT_REVOKED": "a certificate of the path was revoked at or before the validation moment",
    "REVOCATION_UNAVAILABLE": "revocation status could not be established (note under soft-fail)",
    "REVOKED_AFTER_MOMENT": "note: a certificate was revoked, but only after the validation moment",
    "KEY_USAGE": "signer lacks digitalSignature/nonRepudiation (or a required EKU), "
    "or an issuer lacks keyCertSign",
    "BASIC_CONSTRAINTS": "an issuer is not a CA, or a path length constraint is exceeded",
    "WEAK_ALGORITHM": "weak hash (MD5, SHA-1) or small key (RSA/DSA < 2048 bits) in the path",
    "CERT_SIGNATURE_INVALID": "a certificate's signature does not verify with its issuer's key",
    "NAME_CONSTRAINTS": "a certificate violates a name constraint of an issuer",
    "CERT_POLICY": "the certificate policy processing of the path failed",
    "PATH_INVALID": "the path failed validation for another RFC 5280 reason (message says which)",
    "VALIDATION_ERROR": "the validator failed unexpectedly; no decision could be made",
}


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
