"""Certified timestamps of DICOM signatures (PS3.3 C.12.1.1.3.1.3, CMS_TSP).

What is timestamped is the value of Signature (0400,0120) as the signer produced it: the DER
pad byte is stripped for (EC)DSA, RSA uses the first k (modulus length) bytes. What is stored
in Certified Timestamp (0400,0310) is the DER TimeStampToken (a CMS ContentInfo), as DCMTK does;
a whole TimeStampResp is accepted on reading.

Built on asn1crypto (structures) and cryptography (signature checks); the TSA certificate
chain goes through :mod:`pki`. No pyHanko.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from cryptography import x509
from pydicom.dataset import Dataset

from dsig.encoding.values import raw_text
from dsig.errors import DicomFormatError, DsigError, SignatureNotFoundError
from dsig.results import (
    FileResult,
    Finding,
    Indication,
    SignatureResult,
    TimestampReport,
    TokenDetails,
)
from dsig.signature.model import (
    CERTIFIED_TIMESTAMP,
    TIMESTAMP_TYPE,
    SignatureRef,
    find_signature,
    find_signatures,
    raw_bytes,
    signature_value,
    signer_certificate,
    strip_der_pad,
)
from dsig.timestamp.rfc3161 import (
    MAX_CLOCK_SKEW,
    TimestampError,
    check_token,
    token_from_reply,
    weak_findings,
)
from pki.codes import Phase, meanings
from pki.results import TrustEvaluator, TrustIndication, TrustResult

if TYPE_CHECKING:
    from dsig.operations.verifier import VerifyOptions

#: The only Certified Timestamp Type PS3.3 defines.
CMS_TSP = "CMS_TSP"

#: Finding codes of the ``timestamp`` object in the JSON report (and signature findings).
TIMESTAMP_FINDING_CODES: dict[str, str] = meanings(
    Phase.TIMESTAMP
)  # a view of pki.codes.FindingCode


# ---------------------------------------------------------------------------------------------
# What is timestamped
# ---------------------------------------------------------------------------------------------


def timestamped_bytes(item: Dataset) -> bytes:
    """The Signature value of a signature item as the TSA must see it (pad byte removed)."""
    return signature_value(*signer_certificate(item))


#: Kept under its original name for callers of this module.
signature_bytes = signature_value


def insert_token(item: Dataset, token: bytes) -> None:
    """Store the DER TimeStampToken and CMS_TSP (outside the MAC: the signature stays valid).

    The writer pads the OB value to even length with 0x00, as DCMTK does.
    """
    item.add_new(TIMESTAMP_TYPE, "CS", CMS_TSP)
    item.add_new(CERTIFIED_TIMESTAMP, "OB", token)


# ---------------------------------------------------------------------------------------------
# Verification inside `dsig verify`
# ---------------------------------------------------------------------------------------------


#: The former name of :class:`~dsig.results.TimestampReport`, kept for callers.
TimestampResult = TimestampReport


def verify_item_timestamp(
    item: Dataset,
    *,
    trust: TrustEvaluator | None,
    at: dt.datetime,
    trust_required: bool = True,
    signing_time: dt.datetime | None = None,
    strict: bool = False,
    allow_weak: Sequence[str] = (),
) -> TimestampResult:
    """Check the Certified Timestamp of a signature item; ``trust`` validates the TSA chain.

    ``at`` is the moment for the TSA chain (now, or an explicit ``--at``). Without ``trust``
    the result is INDETERMINATE unless ``trust_required`` is false (integrity-only). Weak
    algorithms (MD5/SHA-1 imprint or TSA signature, short TSA key) follow the signature
    policy: WEAK_ALGORITHM warnings, or under ``strict`` errors (INVALID) unless
    ``allow_weak`` names them.
    """
    findings: list[tuple[str, str, str]] = []
    ts_type = raw_text(item, TIMESTAMP_TYPE)
    if ts_type is not None and ts_type != CMS_TSP:
        findings.append(("TIMESTAMP_TYPE", f"Certified Timestamp Type is {ts_type!r}", "warning"))
    try:
        data = timestamped_bytes(item)
        stored = raw_bytes(item, CERTIFIED_TIMESTAMP) or b""
        token = token_from_reply(strip_der_pad(stored))
    except (DsigError, DicomFormatError) as e:
        findings.append(("TIMESTAMP_MALFORMED", str(e), "error"))
        return TimestampReport(Indication.INVALID, None, None, None, _findings(findings))
    check = check_token(token, data, extra_certs=_trust_certs(trust))
    info = check.info
    for code, message in check.problems:
        findings.append((code, message, "error"))
    if info is None:
        return TimestampReport(Indication.INVALID, None, None, None, _findings(findings))
    findings.extend(weak_findings(info, strict=strict, allow_weak=allow_weak))
    tsa = info.signer.subject.rfc4514_string() if info.signer else info.tsa_name
    accuracy = info.accuracy.total_seconds() if info.accuracy is not None else None
    details = TokenDetails(info.policy, info.serial, accuracy, info.tsa_name)
    if signing_time is not None:
        slack = MAX_CLOCK_SKEW + (info.accuracy or dt.timedelta())
        if info.gen_time + slack < signing_time:
            findings.append(
                (
                    "TIMESTAMP_BEFORE_SIGNING_TIME",
                    f"certified time {info.gen_time.isoformat()} is before the claimed signing "
                    f"time {signing_time.isoformat()}",
                    "warning",
                )
            )
    errors = {c for c, _m, s in findings if s == "error"}
    if errors:
        # Without the TSA certificate nothing is proven either way: INDETERMINATE.
        only_missing = errors == {"TIMESTAMP_TSA_CERT_MISSING"}
        verdict = Indication.INDETERMINATE if only_missing else Indication.INVALID
        return TimestampReport(
            verdict, info.gen_time, tsa, info.hash_algorithm, _findings(findings), details
        )
    tsa_trust: TrustResult | None = None
    indication = Indication.VALID
    if trust is None or info.signer is None:
        if trust_required:
            indication = Indication.INDETERMINATE
            findings.append(
                (
                    "TIMESTAMP_TSA_NOT_CHECKED",
                    "no trust store: the TSA was not validated",
                    "warning",
                )
            )
    else:
        tsa_trust = trust.evaluate(info.signer, at=at, extra_certs=info.certificates)
        if tsa_trust.indication is TrustIndication.INVALID:
            indication = Indication.INVALID
        elif tsa_trust.indication is not TrustIndication.VALID:
            indication = Indication.INDETERMINATE
        if tsa_trust.indication is not TrustIndication.VALID:
            first = next((f for f in tsa_trust.findings if not f.note), None)
            reason = f"{first.code}: {first.message}" if first else tsa_trust.indication.value
            findings.append(("TIMESTAMP_TSA_UNTRUSTED", f"TSA chain: {reason}", "error"))
    return TimestampReport(
        indication, info.gen_time, tsa, info.hash_algorithm, _findings(findings), details, tsa_trust
    )


def _findings(found: Iterable[tuple[str, str, str]]) -> tuple[Finding, ...]:
    return tuple(Finding(code, message, severity) for code, message, severity in found)


def _trust_certs(trust: TrustEvaluator | None) -> tuple[x509.Certificate, ...]:
    """Certificates the trust configuration knows (a certReq=false token names its TSA only)."""
    policy = getattr(trust, "policy", None)
    if policy is None:
        return ()
    return (*getattr(policy, "trust_roots", ()), *getattr(policy, "intermediates", ()))


def signatures_to_stamp(
    ds: Dataset, uids: Iterable[str] | None, *, replace: bool
) -> list[SignatureRef]:
    """The signatures named by ``uids`` (None = all); without ``replace`` skip stamped ones
    when all are wanted and refuse an explicitly named stamped one."""
    refs = find_signatures(ds)
    if not refs:
        raise SignatureNotFoundError("the file has no signature")
    if uids is None:
        chosen = [r for r in refs if replace or CERTIFIED_TIMESTAMP not in r.item]
        return chosen
    out = []
    for uid in uids:
        ref = find_signature(ds, uid)
        if CERTIFIED_TIMESTAMP in ref.item and not replace:
            raise TimestampError(
                f"signature {uid} already has a timestamp (kept unless replacing is asked for)",
                option="replace",
            )
        out.append(ref)
    return out


# ---------------------------------------------------------------------------------------------
# Hooks called by dsig.operations.verifier
# ---------------------------------------------------------------------------------------------


def check_signature_timestamp(
    item: Dataset, res: SignatureResult, options: VerifyOptions
) -> SignatureResult:
    """``res`` with the timestamp of its signature verified (``timestamp``, and findings).

    The TSA chain is validated with ``options.tsa_trust`` (default: ``options.trust``) at the
    explicit ``--at`` datetime if one was given, else now. A present timestamp counts: one
    that does not verify fails the signature (TIMESTAMP_INVALID: altered token, imprint of
    another signature, bad TSA signature, refused weak algorithm; TIMESTAMP_INDETERMINATE:
    TSA certificate missing or not validated), unless ``options.timestamp_failures_warn``
    turns these into warnings. A TSA left unchecked for want of any trust store adds nothing:
    the signature is already INDETERMINATE (TRUST_NOT_CHECKED).
    """
    trust = options.tsa_trust if options.tsa_trust is not None else options.trust
    at = options.at if isinstance(options.at, dt.datetime) else options.clock()
    from dsig.signature.model import parse_dicom_datetime

    result = verify_item_timestamp(
        item,
        trust=trust,
        at=at,
        trust_required=not options.integrity_only,
        signing_time=parse_dicom_datetime(res.datetime or ""),
        strict=options.strict,
        allow_weak=options.allow_weak,
    )
    found = [
        Finding(f.code, f"certified timestamp: {f.message}", "warning")
        for f in result.findings
        if f.code == "WEAK_ALGORITHM" and f.severity == "warning"
    ]
    first = next((f.message for f in result.findings if f.severity == "error"), "")
    if result.indication is Indication.INVALID or first:  # not for a merely unchecked TSA
        found.append(timestamp_failure(options, result.indication, first))
    return dataclasses.replace(res, timestamp=result, findings=(*res.findings, *found))


def timestamp_failure(options: VerifyOptions, indication: str, reason: str) -> Finding:
    """The finding of a present timestamp that did not verify: TIMESTAMP_INVALID (INVALID) or
    TIMESTAMP_INDETERMINATE, errors that decide the signature unless
    ``options.timestamp_failures_warn`` makes them warnings."""
    if indication == "INVALID":
        code, text = "TIMESTAMP_INVALID", "the certified timestamp does not verify"
    else:
        code, text = "TIMESTAMP_INDETERMINATE", "the certified timestamp could not be checked"
    message = f"{text}: {reason}" if reason else text
    if options.timestamp_failures_warn:
        return Finding(code, f"{message} (counted as a warning, as asked)", "warning")
    return Finding(code, message)


def certified_moment(res: SignatureResult) -> dt.datetime | None:
    """The certified time of a signature whose timestamp verified as VALID, else None."""
    ts = res.timestamp
    return ts.time if ts is not None and ts.valid else None


def trust_at_timestamp(
    trust: TrustEvaluator, cert: x509.Certificate, moment: dt.datetime
) -> TrustResult:
    """Validate the signer at a certified moment: revocations after it pass with a note."""
    return trust.evaluate(cert, at=moment, certified_time=True)


def check_timestamp_requirement(result: FileResult) -> list[Finding]:
    """``--require timestamp``: some non-invalid signature must carry a VALID timestamp
    (the finding when none does)."""
    for sig in result.signatures:
        if sig.indication is not Indication.INVALID and certified_moment(sig) is not None:
            return []
    return [Finding("TIMESTAMP_REQUIRED", "no valid signature carries a valid certified timestamp")]
