"""Per-certificate account of revocation checking: what source was used, or why none was.

The path validator decides; this module reports, for every certificate of the path below
the anchor, which CRL or OCSP response (supplied or fetched) established its status, or why
its status is unknown, so that a VALID never hides an unchecked certificate.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Sequence

from cryptography import x509

from pki.certs import describe
from pki.policy import RevocationMode, TrustPolicy
from pki.results import RevocationCheck, TrustFinding
from pki.revocation import crl_find, declares_revinfo, ocsp_status

#: What a user can do when revocation status is unavailable (a front end adds its options:
#: the finding's ``option``).
REVOCATION_HINT = (
    "give its CRL or OCSP response, fetch them online, or decline the check (soft-fail or off)"
)
#: The option keyword of that hint: revocation material, online fetching, the mode.
REVOCATION_OPTION = "revocation_material"


def revocation_checks(
    chain: Sequence[x509.Certificate],
    policy: TrustPolicy,
    at: dt.datetime,
    seen_crls: Sequence[bytes] = (),
    seen_ocsps: Sequence[bytes] = (),
) -> tuple[RevocationCheck, ...]:
    """One :class:`RevocationCheck` per certificate of ``chain`` (leaf first) below the anchor."""
    mode = policy.revocation_mode
    crls = tuple(dict.fromkeys((*policy.crls, *seen_crls)))
    ocsps = tuple(dict.fromkeys((*policy.ocsp_responses, *seen_ocsps)))
    out: list[RevocationCheck] = []
    for cert, issuer in itertools.pairwise(chain):
        base = RevocationCheck(describe(cert), f"{cert.serial_number:x}", "not-checked")
        if mode is RevocationMode.OFF:
            out.append(dataclasses.replace(base, detail="declined (revocation off)"))
            continue
        out.append(_check(base, cert, issuer, policy, at, crls, ocsps))
    return tuple(out)


def _check(
    base: RevocationCheck,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    policy: TrustPolicy,
    at: dt.datetime,
    crls: Sequence[bytes],
    ocsps: Sequence[bytes],
) -> RevocationCheck:
    def revoked_check(source: str, revoked_at: dt.datetime, reason: str | None) -> RevocationCheck:
        later = revoked_at > at + policy.time_tolerance
        return dataclasses.replace(
            base, status="revoked-later" if later else "revoked", source=source,
            revoked_at=revoked_at, reason=reason,
        )  # fmt: skip

    status = ocsp_status(cert, issuer, ocsps)
    if status is not None:
        source = "ocsp " + ("supplied" if status.response in policy.ocsp_responses else "fetched")
        revoked = status.revoked
        if revoked is not None:
            return revoked_check(source, revoked.revoked_at, revoked.reason)
        return dataclasses.replace(
            base, status="unknown" if status.unknown else "good", source=source
        )
    der, entry = crl_find(cert, issuer, crls)
    if der is not None:
        source = "crl " + ("supplied" if der in policy.crls else "fetched")
        if entry is not None:
            return revoked_check(source, entry.revoked_at, entry.reason)
        return dataclasses.replace(base, status="good", source=source)
    if not declares_revinfo(cert):
        return dataclasses.replace(
            base, status="not-published", detail="publishes no CRL distribution point or OCSP"
        )
    why = (
        "could not be fetched"
        if policy.online
        else "no CRL or OCSP response given covers it, offline"
    )
    if policy.revocation_mode is RevocationMode.SOFT_FAIL:
        why += "; accepted under soft-fail"
    return dataclasses.replace(base, status="unavailable", detail=why)


def unavailable_hint(finding: TrustFinding) -> TrustFinding:
    """A REVOCATION_UNAVAILABLE decision, with what the user can do about it appended."""
    if finding.code != "REVOCATION_UNAVAILABLE" or finding.note:
        return finding
    if REVOCATION_HINT in finding.message:
        return finding
    message = f"{finding.message}; {REVOCATION_HINT}"
    return dataclasses.replace(finding, message=message, option=REVOCATION_OPTION)
