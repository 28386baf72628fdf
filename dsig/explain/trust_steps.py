"""The second phase (trust) of one signature as steps: moment, path, validity, key usage,
revocation, timestamp; read from the verifier's :class:`~pki.results.TrustResult`."""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from dsig.explain.model import Step, StepStatus
from dsig.results import Indication, SignatureResult, TimestampReport
from pki.results import TrustFinding, TrustIndication

#: Which trust step each trust finding belongs to.
TRUST_STEP_OF: dict[str, str] = {
    "NO_TRUSTED_PATH": "certificate path", "CERT_SIGNATURE_INVALID": "certificate path",
    "BASIC_CONSTRAINTS": "certificate path", "NAME_CONSTRAINTS": "certificate path",
    "CERT_POLICY": "certificate path", "PATH_INVALID": "certificate path",
    "VALIDATION_ERROR": "certificate path", "OFFERED_CERTS_LIMITED": "certificate path",
    "CERT_EXPIRED": "certificate validity", "CERT_NOT_YET_VALID": "certificate validity",
    "SIGNING_TIME_OUTSIDE_VALIDITY": "certificate validity",
    "MOMENT_CLAIMED": "validation moment",
    "KEY_USAGE": "key usage", "EXTENDED_KEY_USAGE": "key usage", "SIGNER_IS_CA": "key usage",
    "CERT_REVOKED": "revocation", "REVOCATION_UNAVAILABLE": "revocation",
    "REVOKED_AFTER_MOMENT": "revocation", "REVOKED_AFTER_CLAIMED_TIME": "revocation",
    "WEAK_ALGORITHM": "certificate path", "TRUST_NOT_CHECKED": "trust",
}  # fmt: skip

TRUST_ORDER = (
    "trust",
    "validation moment",
    "certificate path",
    "certificate validity",
    "key usage",
    "revocation",
)


def moment_reason(sig: SignatureResult, at: str | dt.datetime) -> str:
    """Why trust was judged at the moment it was."""
    ts = sig.timestamp
    stamped = ts is not None and ts.valid
    if isinstance(at, dt.datetime):
        return "the validation moment given"
    if at == "now":
        return "now (the validation moment asked for)"
    if at == "signing-time":
        return (
            "the signer-claimed Digital Signature DateTime (validation at signing time): not proven"
        )
    if stamped:
        return (
            "the certified time of the signature's valid timestamp: it proves the signature "
            "existed then, so later expiry or revocation does not count"
        )
    if ts is not None:
        return "now: the signature's timestamp is not valid, so it proves no earlier moment"
    return "now: no certified timestamp proves an earlier moment (a claimed DateTime is no proof)"


def _validity(cert: x509.Certificate, moment: dt.datetime | None) -> str:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    window = f"{start:%Y-%m-%d %H:%M:%S}Z to {end:%Y-%m-%d %H:%M:%S}Z"
    if moment is None:
        return f"{cert.subject.rfc4514_string()}: valid {window}"
    ok = start <= moment <= end
    verdict = "valid" if ok else ("expired" if moment > end else "not yet valid")
    return f"{cert.subject.rfc4514_string()}: {window}, {verdict} at the moment used"


def _key_usage(cert: x509.Certificate) -> str:
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        flags = [
            n
            for n, on in (
                ("digitalSignature", ku.digital_signature),
                ("nonRepudiation", ku.content_commitment),
                ("keyCertSign", ku.key_cert_sign),
                ("keyEncipherment", ku.key_encipherment),
            )
            if on
        ]
        text = "key usage " + (", ".join(flags) or "none of the signing bits")
    except x509.ExtensionNotFound:
        text = "no key usage extension (any use allowed)"
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        text += "; extended key usage " + ", ".join(
            getattr(o, "_name", o.dotted_string) for o in eku
        )
    except x509.ExtensionNotFound:
        pass  # no EKU: no restriction, nothing to show
    return text


def _status(findings: list[TrustFinding], indication: TrustIndication) -> StepStatus:
    if any(not f.note for f in findings):
        return StepStatus.FAILED if indication is not TrustIndication.VALID else StepStatus.WARNING
    return StepStatus.WARNING if findings else StepStatus.PASSED


def trust_steps(
    sig: SignatureResult, cert: x509.Certificate | None, at: str | dt.datetime
) -> list[Step]:
    """The trust steps in the order the trust module takes them."""
    trust = sig.trust
    if trust.indication is TrustIndication.NOT_CHECKED:
        return [
            Step(
                "trust",
                StepStatus.NOT_RUN if sig.trust_required else StepStatus.INFO,
                "not checked: no trust anchors given, so nothing says who the signer is"
                + ("" if sig.trust_required else " (integrity only)"),
            )
        ]
    by_step: dict[str, list[TrustFinding]] = {}
    for f in trust.findings:
        by_step.setdefault(TRUST_STEP_OF.get(f.code, "certificate path"), []).append(f)

    def lines(name: str) -> tuple[str, ...]:
        return tuple(f"{f.code}: {f.message}" for f in by_step.get(name, []))

    moment = trust.validated_at
    steps = [
        Step("validation moment", _status(by_step.get("validation moment", []), trust.indication),
             f"{moment.isoformat() if moment else 'unknown'}: {moment_reason(sig, at)}",
             lines("validation moment")),
    ]  # fmt: skip
    if trust.chain:
        path = " -> ".join(c.subject.rfc4514_string() for c in trust.chain)
        summary = f"found: {path} (a configured trust anchor)"
    else:
        summary = "no path from the signer to a configured trust anchor"
    steps.append(
        Step("certificate path", _status(by_step.get("certificate path", []), trust.indication)
             if trust.chain else StepStatus.FAILED, summary, lines("certificate path"))
    )  # fmt: skip
    certs = trust.chain or ((cert,) if cert is not None else ())
    steps.append(
        Step("certificate validity",
             _status(by_step.get("certificate validity", []), trust.indication),
             "each certificate at the moment used",
             tuple(_validity(c, moment) for c in certs) + lines("certificate validity"))
    )  # fmt: skip
    if cert is not None:
        steps.append(
            Step("key usage", _status(by_step.get("key usage", []), trust.indication),
                 f"signer: {_key_usage(cert)}", lines("key usage"))
        )  # fmt: skip
    rev = tuple(
        c.describe()
        + (f", revoked at {c.revoked_at.isoformat()}" if c.revoked_at else "")
        + (f" ({c.reason})" if c.reason else "")
        for c in trust.revocation
    )
    steps.append(
        Step("revocation", _status(by_step.get("revocation", []), trust.indication),
             "source and answer per certificate" if rev else "not evaluated",
             rev + lines("revocation"))
    )  # fmt: skip
    return steps


def timestamp_step(ts: TimestampReport | None) -> Step | None:
    """The certified timestamp, when the signature has one."""
    if ts is None:
        return None
    indication = ts.indication.value
    status = StepStatus.PASSED if ts.indication is Indication.VALID else StepStatus.FAILED
    details = tuple(f"{f.code.value}: {f.message}" for f in ts.findings)
    if ts.tsa_trust is not None:
        details += (f"TSA certificate trust: {ts.tsa_trust.indication.value}",)
    when = ts.time.isoformat() if ts.time else None
    return Step(
        "timestamp",
        status,
        f"{indication}: certified time {when} by {ts.tsa} ({ts.hash_algorithm} over the Signature)",
        details,
    )
