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
    "REVOCATION_UNAVAILABLE": "a certificate publishes revocation information but its status "
    "could not be established from --crl/--ocsp or --online (note under soft-fail)",
    "REVOKED_AFTER_MOMENT": "note: a certificate was revoked, but only after the validation moment",
    "REVINFO_FUTURE_DATED": "note: a supplied CRL or OCSP response dated in the future (beyond "
    "pki.revocation.FUTURE_SKEW) was ignored, as a fetched one is refused",
    "KEY_USAGE": "signer lacks digitalSignature/nonRepudiation, or an issuer lacks keyCertSign",
    "EXTENDED_KEY_USAGE": "signer's extended key usage does not allow document signing "
    "(documentSigning, anyExtendedKeyUsage, or what the policy accepts), or lacks a required EKU",
    "SIGNER_IS_CA": "the signer certificate is a CA certificate: CA certificates never sign DICOM",
    "MOMENT_CLAIMED": "note: validated at the signer-claimed signing time, which is not proven",
    "REVOKED_AFTER_CLAIMED_TIME": "revoked after the signer-claimed signing time, with no "
    "certified timestamp before the revocation: the claim cannot be relied on",
    "OFFERED_CERTS_LIMITED": "note: certificates offered by the file beyond the limit were ignored",
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
