"""The evaluation entry points: :func:`evaluate_chain` (sync) and :func:`aevaluate_chain`."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import itertools
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from pki.cert_input import CertificateInput, as_cert, as_certs
from pki.certs import describe
from pki.errors import PkiError, TrustConfigError
from pki.offered import MAX_OFFERED, MAX_PER_NAME, bound_offered
from pki.policy import FetchAllowance, RevocationMode, TrustPolicy
from pki.results import TrustFinding, TrustIndication, TrustResult
from pki.revinfo_status import revocation_checks, unavailable_hint
from pki.revocation import (
    RevocationEntry,
    crl_lookup,
    declares_revinfo,
    ocsp_covers,
    ocsp_revocation,
    revocation_message,
    split_future_dated,
)
from pki.signer_rules import SignerRules, signer_findings, validity_findings

P = ParamSpec("P")
R = TypeVar("R")

if TYPE_CHECKING:  # the real import is lazy (see aevaluate_chain)
    from pki._certvalidator import Outcome

_RANK = {
    TrustIndication.VALID: 0,
    TrustIndication.NOT_CHECKED: 0,
    TrustIndication.INDETERMINATE: 1,
    TrustIndication.INVALID: 2,
}


async def aevaluate_chain(
    leaf: CertificateInput,
    policy: TrustPolicy,
    *,
    at: dt.datetime,
    extra_certs: Sequence[x509.Certificate] = (),
    certified_time: bool = False,
    allowance: FetchAllowance | None = None,
) -> TrustResult:
    """Validate ``leaf`` at ``at``: path to an anchor, algorithms, validity, key usage, revocation.

    ``leaf`` may be DER bytes or asn1crypto for a certificate cryptography refuses (e.g. a DSA
    key with parameters inherited from its issuer, RFC 3279 2.3.2): its key usage, EKU and
    key size are then read after validation, from the path (the key with the inherited
    parameters). ``extra_certs`` are untrusted certificates that came with the signature. Set
    ``certified_time`` when ``at`` comes from a verified RFC 3161 timestamp: revocations dated
    after it then pass with a ``REVOKED_AFTER_MOMENT`` note saying so. ``allowance``: the
    HTTP requests left to the verification this evaluation is part of (online only).

    :func:`evaluate_chain` is the same, synchronous (it cannot run inside an event loop).
    Raises :class:`~pki.errors.TrustConfigError` for a naive ``at``, and its
    :class:`~pki.errors.CertificateLoadError` when ``leaf`` is not a certificate.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise TrustConfigError(f"validation moment {at.isoformat()} has no time zone")
    at = at.astimezone(dt.UTC)
    signer = as_cert(leaf)  # before the lazy import: a non-certificate fails fast
    from pki import _certvalidator  # lazy: keeps `import pki` free of pyhanko/aiohttp

    findings: list[TrustFinding] = []
    policy = _without_future_revinfo(policy, findings)
    anchors, intermediates = as_certs(policy.trust_roots), as_certs(policy.intermediates)
    extra_certs, dropped = bound_offered(signer, extra_certs, (*anchors, *intermediates))
    others = (*intermediates, *as_certs(extra_certs))
    if dropped:
        findings.append(
            TrustFinding(
                "OFFERED_CERTS_LIMITED",
                f"{dropped} certificate(s) offered by the file were ignored (at most "
                f"{MAX_PER_NAME} per name, {MAX_OFFERED} in all)",
                note=True,
            )
        )
    try:
        outcome = await _certvalidator.validate_path(
            signer, policy, at=at, anchors=anchors, others=others, allowance=allowance
        )
    except Exception as e:  # a validator surprise must not abort a whole verification run
        return TrustResult(
            TrustIndication.INDETERMINATE,
            (TrustFinding("VALIDATION_ERROR", f"{type(e).__name__}: {e}"),),
            validated_at=at,
            details=_details(policy, certified_time),
        )
    late = _ocsp_revoked_later(outcome, at)
    if late is not None:
        # The library reads an OCSP "revoked after the moment" as no status. The response is
        # authentic and proves the signer unrevoked at ``at``: validate the rest without it.
        retry = await _certvalidator.validate_path(
            signer, policy, at=at, anchors=anchors, others=others, skip_ee_revocation=True,
            allowance=allowance,
        )  # fmt: skip
        if retry.indication is TrustIndication.VALID:
            retry.ocsps = [*outcome.ocsps, *retry.ocsps]  # keep the response that was seen
            retry.crls = [*outcome.crls, *retry.crls]
            outcome = retry
            findings.append(_after_moment_note(outcome.path[0], late, "OCSP", at, certified_time))
    indication = outcome.indication
    findings.extend(outcome.findings)
    chain = outcome.path

    # The path's view of the signer carries its inherited DSA parameters, if any. Without a
    # path, a signer cryptography refuses is not checked here: the verdict is not VALID.
    view = chain[0] if chain else signer.crypto
    local = (
        []
        if view is None
        else [*signer_findings(view, SignerRules.of(policy)), *_leaf_key(view, policy)]
    )
    if chain and chain[-1] in policy.trust_roots:
        seen = {f.code for f in findings}
        local.extend(
            f
            for f in validity_findings(chain[-1], at, policy.time_tolerance, role="trust anchor")
            if f.code not in seen
        )
    if chain and indication is TrustIndication.VALID:
        local.extend(_crl_supplement(chain, policy, at, outcome.crls, certified_time))
        local.extend(_offline_soft_fail_notes(chain, policy))
    for finding in local:
        if not finding.note:
            indication = _worst(indication, TrustIndication.INVALID)
        findings.append(finding)

    checks = revocation_checks(chain, policy, at, outcome.crls, outcome.ocsps)
    if indication is not TrustIndication.VALID and not policy.online:
        findings = [unavailable_hint(f) for f in findings]
    findings.sort(key=lambda f: f.note)  # decisions first, notes after
    return TrustResult(
        indication,
        tuple(findings),
        chain=chain,
        validated_at=at,
        details=_details(policy, certified_time),
        revocation=checks,
        policies=outcome.policies if indication is TrustIndication.VALID else (),
    )


def _synchronous(coroutine: Callable[P, Coroutine[object, object, R]]) -> Callable[P, R]:
    """The synchronous façade of an ``a...`` coroutine function: same arguments, same
    result; it refuses to run inside an event loop (asyncio.run would fail there)."""
    name = coroutine.__name__.removeprefix("a")

    @functools.wraps(coroutine)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coroutine(*args, **kwargs))
        raise PkiError(f"{name}() cannot run inside an event loop: await {coroutine.__name__}()")

    run.__name__ = run.__qualname__ = name
    run.__doc__ = f"Synchronous :func:`{coroutine.__name__}` (same arguments, same result)."
    return run


#: Validate a certificate (see :func:`aevaluate_chain`), outside an event loop.
evaluate_chain = _synchronous(aevaluate_chain)


def _without_future_revinfo(policy: TrustPolicy, findings: list[TrustFinding]) -> TrustPolicy:
    """``policy`` without the supplied CRLs / OCSP responses dated in the future, each one
    named by a note: refused as a fetched one is, so a status resting on it is unavailable."""
    crls, responses, refused = split_future_dated(policy.crls, policy.ocsp_responses)
    if not refused:
        return policy
    findings.extend(
        TrustFinding("REVINFO_FUTURE_DATED", f"{m}: ignored", note=True) for m in refused
    )
    return dataclasses.replace(policy, crls=crls, ocsp_responses=responses)


def _ocsp_revoked_later(outcome: Outcome, at: dt.datetime) -> RevocationEntry | None:
    if not outcome.ee_revinfo_missing or len(outcome.path) < 2:
        return None
    entry = ocsp_revocation(outcome.path[0], outcome.path[1], outcome.ocsps)
    return entry if entry is not None and entry.revoked_at > at else None


def _after_moment_note(
    cert: x509.Certificate, entry: RevocationEntry, source: str, at: dt.datetime, certified: bool
) -> TrustFinding:
    when = "certified time" if certified else "validation moment"
    return TrustFinding(
        "REVOKED_AFTER_MOMENT",
        revocation_message(cert, entry.revoked_at, entry.reason, source)
        + f", after the {when} {at.isoformat()}",
        note=True,
    )


def _details(policy: TrustPolicy, certified_time: bool) -> dict[str, str]:
    details = {"revocation_mode": policy.revocation_mode.value}
    if certified_time:
        details["moment_source"] = "certified-timestamp"
    return details


def _worst(a: TrustIndication, b: TrustIndication) -> TrustIndication:
    return a if _RANK[a] >= _RANK[b] else b


def _leaf_key(leaf: x509.Certificate, policy: TrustPolicy) -> list[TrustFinding]:
    # The validator checks the keys that sign certificates; the signer's own key is ours to check.
    try:
        key = leaf.public_key()
    except ValueError as e:
        return [TrustFinding("WEAK_ALGORITHM", f"{describe(leaf)}: unsupported public key ({e})")]
    rule = policy.algorithms
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < rule.min_rsa_bits:
        floor = rule.min_rsa_bits
    elif isinstance(key, dsa.DSAPublicKey) and key.key_size < rule.min_dsa_bits:
        floor = rule.min_dsa_bits
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.key_size < 224:
        floor = 224
    else:
        return []
    kind = type(key).__name__.removeprefix("_").replace("PublicKey", "")
    return [
        TrustFinding(
            "WEAK_ALGORITHM",
            f"{describe(leaf)}: {kind} key of {key.key_size} bits (policy needs >= {floor})",
        )
    ]


def _offline_soft_fail_notes(
    chain: Sequence[x509.Certificate], policy: TrustPolicy
) -> list[TrustFinding]:
    """Soft-fail offline skips declared revocation sources without a trace: leave one."""
    if policy.revocation_mode is not RevocationMode.SOFT_FAIL or policy.online:
        return []
    out = []
    for cert, issuer in itertools.pairwise(chain):
        if not declares_revinfo(cert):
            continue
        covered, _ = crl_lookup(cert, issuer, policy.crls)
        if covered or ocsp_covers(cert, policy.ocsp_responses):
            continue
        out.append(
            TrustFinding(
                "REVOCATION_UNAVAILABLE",
                f"{describe(cert)}: revocation not checked (offline, no CRL/OCSP supplied)",
                note=True,
            )
        )
    return out


def _crl_supplement(
    chain: Sequence[x509.Certificate],
    policy: TrustPolicy,
    at: dt.datetime,
    seen_crls: Sequence[bytes],
    certified_time: bool,
) -> list[TrustFinding]:
    """CRL facts the validator does not report.

    - Under soft/hard-fail it ignores supplied CRLs for certificates declaring no revocation
      source; a user who hands us a CRL expects it to count.
    - With a past ``at`` it passes certificates revoked later, silently: say so in a note.
    """
    mode = policy.revocation_mode
    if mode is RevocationMode.OFF:
        return []
    crls = tuple(dict.fromkeys((*policy.crls, *seen_crls)))
    out: list[TrustFinding] = []
    for cert, issuer in itertools.pairwise(chain):
        _, entry = crl_lookup(cert, issuer, crls)
        if entry is None:
            continue
        if entry.revoked_at <= at + policy.time_tolerance:
            unchecked = mode is not RevocationMode.REQUIRE and not declares_revinfo(cert)
            if unchecked:
                out.append(
                    TrustFinding(
                        "CERT_REVOKED",
                        revocation_message(cert, entry.revoked_at, entry.reason, "CRL"),
                    )
                )
            continue
        out.append(_after_moment_note(cert, entry, "CRL", at, certified_time))
    return out
