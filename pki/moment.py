"""A signer-claimed validation moment (``--at signing-time``) proves nothing by itself.

The Digital Signature DateTime is chosen by whoever holds the key: after a key compromise,
anyone can claim an earlier time. So a revocation dated after the claimed time does not let
the signer pass, unless a certified timestamp proves the signature existed before it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from pki.results import TrustFinding, TrustIndication, TrustResult

_KEY_COMPROMISE = frozenset({"keyCompromise", "cACompromise", "aACompromise"})


def at_claimed_time(
    claimed: TrustResult, claimed_at: dt.datetime, proven: TrustResult | None = None
) -> TrustResult:
    """The verdict for a signer validated at its own claimed signing time.

    ``claimed`` is the evaluation at ``claimed_at``; ``proven`` the evaluation at the
    certified time of a valid timestamp, if the signature has one. A certificate revoked
    after the claimed time makes the result INDETERMINATE (``REVOKED_AFTER_CLAIMED_TIME``),
    INVALID for a key compromise (``CERT_REVOKED``), unless ``proven`` is VALID: then the
    timestamp, not the claim, decides. Otherwise a ``MOMENT_CLAIMED`` note says the time is
    claimed, not proven.
    """
    later = [c for c in claimed.revocation if c.status == "revoked-later"]
    if later and proven is not None and proven.indication is TrustIndication.VALID:
        return proven
    findings = [f for f in claimed.findings if not (later and f.code == "REVOKED_AFTER_MOMENT")]
    indication = claimed.indication
    for check in later:
        when = check.revoked_at.isoformat() if check.revoked_at else "after it"
        reason = check.reason or "unspecified"
        text = (
            f"{check.certificate} (serial {check.serial}) was revoked {when} (reason {reason}), "
            f"after the claimed signing time {claimed_at.isoformat()}; no certified timestamp "
            "proves the signature older than the revocation"
        )
        if check.reason in _KEY_COMPROMISE:
            findings.insert(0, TrustFinding("CERT_REVOKED", text))
            indication = TrustIndication.INVALID
        else:
            findings.insert(0, TrustFinding("REVOKED_AFTER_CLAIMED_TIME", text))
            if indication is TrustIndication.VALID:
                indication = TrustIndication.INDETERMINATE
    findings.append(
        TrustFinding(
            "MOMENT_CLAIMED",
            f"validated at the signing time the signer claims, {claimed_at.isoformat()}: "
            "claimed, not proven (a certified timestamp would prove it)",
            note=True,
        )
    )
    details = {**claimed.details, "moment_source": "claimed-signing-time"}
    return dataclasses.replace(
        claimed, indication=indication, findings=tuple(findings), details=details
    )
