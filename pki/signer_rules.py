"""What a certificate must be to sign DICOM: key usage, extended key usage, not a CA.

The same rules serve verification (:func:`pki.evaluate_chain`), ``dsig sign``'s refusal of
certificates that can never verify, and ``dsig cert check``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509

from pki.certs import describe
from pki.policy import SIGNING_EKUS, SIGNING_KEY_USAGE
from pki.results import TrustFinding

if TYPE_CHECKING:
    from pki.policy import TrustPolicy

_KU_ATTR = {
    "digital_signature": "digital_signature",
    "non_repudiation": "content_commitment",
    "key_encipherment": "key_encipherment",
    "data_encipherment": "data_encipherment",
    "key_agreement": "key_agreement",
    "key_cert_sign": "key_cert_sign",
    "crl_sign": "crl_sign",
}


@dataclass(frozen=True)
class SignerRules:
    """The signer-certificate part of a :class:`~pki.TrustPolicy`.

    - ``key_usage``: with a KeyUsage extension, at least one of these (empty: no rule).
    - ``signing_eku``: with an ExtendedKeyUsage extension, at least one of these dotted
      OIDs (empty: no rule). Default: documentSigning (RFC 9336) or anyExtendedKeyUsage.
    - ``required_eku``: dotted OIDs the signer must all list (a site's own requirement).
    - ``allow_ca_signer``: let a CA certificate sign (never by default).
    """

    key_usage: frozenset[str] = SIGNING_KEY_USAGE
    signing_eku: frozenset[str] = SIGNING_EKUS
    required_eku: frozenset[str] = frozenset()
    allow_ca_signer: bool = False

    @classmethod
    def of(cls, policy: TrustPolicy) -> SignerRules:
        """The signer rules a trust policy holds."""
        return cls(
            policy.key_usage, policy.signing_eku, policy.extended_key_usage, policy.allow_ca_signer
        )


def signer_findings(leaf: x509.Certificate, rules: SignerRules) -> list[TrustFinding]:
    """KEY_USAGE / EXTENDED_KEY_USAGE / SIGNER_IS_CA findings for a signer certificate."""
    out: list[TrustFinding] = []
    who = describe(leaf)
    try:
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None  # RFC 5280 4.2.1.3: no extension means no restriction
    if ku is not None and rules.key_usage:
        if not any(getattr(ku, _KU_ATTR[name]) for name in rules.key_usage):
            wanted = " or ".join(sorted(rules.key_usage))
            out.append(TrustFinding("KEY_USAGE", f"{who}: key usage lacks {wanted}"))
    try:
        have: set[str] | None = {
            oid.dotted_string
            for oid in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        }
    except x509.ExtensionNotFound:
        have = None  # no EKU extension: no restriction (RFC 5280 4.2.1.12)
    if have is not None and rules.signing_eku and not have & rules.signing_eku:
        out.append(
            TrustFinding(
                "EXTENDED_KEY_USAGE",
                f"{who}: extended key usage {', '.join(sorted(have)) or '(empty)'} does not "
                f"allow document signing (accepted: {', '.join(sorted(rules.signing_eku))})",
            )
        )
    missing = sorted(rules.required_eku - (have or set()))
    if missing:
        out.append(
            TrustFinding(
                "EXTENDED_KEY_USAGE", f"{who}: extended key usage lacks {', '.join(missing)}"
            )
        )
    if not rules.allow_ca_signer:
        try:
            is_ca = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if is_ca:
            out.append(
                TrustFinding("SIGNER_IS_CA", f"{who} is a CA certificate: CAs never sign DICOM")
            )
    return out


def validity_findings(
    cert: x509.Certificate,
    at: dt.datetime,
    tolerance: dt.timedelta = dt.timedelta(0),
    *,
    role: str = "",
) -> list[TrustFinding]:
    """CERT_EXPIRED / CERT_NOT_YET_VALID for ``cert`` at ``at``; ``role`` ("trust anchor")
    starts the message."""
    who = f"{role} {describe(cert)}" if role else describe(cert)
    if at > cert.not_valid_after_utc + tolerance:
        return [
            TrustFinding("CERT_EXPIRED", f"{who} expired {cert.not_valid_after_utc.isoformat()}")
        ]
    if at < cert.not_valid_before_utc - tolerance:
        return [
            TrustFinding(
                "CERT_NOT_YET_VALID",
                f"{who} is valid only from {cert.not_valid_before_utc.isoformat()}",
            )
        ]
    return []


def check_signing_certificate(
    cert: x509.Certificate, *, at: dt.datetime, rules: SignerRules = SignerRules()
) -> list[TrustFinding]:
    """Why ``cert`` could never produce a signature that verifies VALID at ``at`` (empty: none
    found): validity, key usage, extended key usage, CA. Path and revocation are not checked
    here (``dsig cert check`` adds them with a trust store)."""
    return [*validity_findings(cert, at), *signer_findings(cert, rules)]
