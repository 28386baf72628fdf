""":func:`check_certificate`: a signer certificate judged alone (``dsig cert check``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509

from pki.chain import evaluate_chain
from pki.policy import TrustPolicy
from pki.results import NOT_CHECKED, TrustIndication, TrustResult
from pki.signer_rules import SignerRules, check_signing_certificate


def check_certificate(
    cert: x509.Certificate,
    policy: TrustPolicy | None,
    *,
    at: dt.datetime,
    extra_certs: Sequence[x509.Certificate] = (),
) -> TrustResult:
    """What :func:`evaluate_chain` says of ``cert`` at ``at``; without a policy only the
    signer rules and validity are checked, so the best outcome is INDETERMINATE
    (``TRUST_NOT_CHECKED``: no path to an anchor was looked for)."""
    if policy is not None:
        return evaluate_chain(cert, policy, at=at, extra_certs=extra_certs)
    problems = check_signing_certificate(cert, at=at, rules=SignerRules())
    if problems:
        return TrustResult(TrustIndication.INVALID, tuple(problems), validated_at=at)
    return TrustResult(TrustIndication.INDETERMINATE, NOT_CHECKED.findings, validated_at=at)
