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
            "findings": [{"code": f.code, "message": f.message} for f in self.findings],
        }
        if self.validated_at is not None:
            out["validated_at"] = self.validated_at.isoformat()
        if self.chain:
            out["chain"] = [c.subject.rfc4514_string() for c in self.chain]
        out.update(self.details)
        return out


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
    ) -> TrustResult:
        """Validate ``leaf`` (path, validity at ``at``, key usage, revocation)."""
        ...
