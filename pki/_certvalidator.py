"""The only module that imports pyhanko_certvalidator (and, through it, aiohttp).

Builds a ``ValidationContext`` from a :class:`~pki.policy.TrustPolicy`, runs path validation
and maps the library's exceptions to finding codes (pyHanko's error-handler pattern).
Takes certificates already in both forms (:class:`~pki.cert_input.Cert`); the path comes
back as cryptography views (:func:`~pki.cert_input.path_views`).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as pv_errors
from pyhanko_certvalidator.fetchers.api import OwnedFetcherBackend
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    DisallowWeakAlgorithmsPolicy,
    PKIXValidationParams,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

from pki.cert_input import Cert, path_views
from pki.policy import ANY_POLICY, FetchAllowance, RevocationMode, TrustPolicy
from pki.results import TrustFinding, TrustIndication

# The library logs warnings with tracebacks (e.g. a revoked CRL issuer); without a handler
# Python's last-resort handler would dump them on a CLI user's stderr. Our findings carry them.
logging.getLogger("pyhanko_certvalidator").addHandler(logging.NullHandler())

_RULES: dict[RevocationMode, RevocationCheckingRule] = {
    RevocationMode.OFF: RevocationCheckingRule.NO_CHECK,
    RevocationMode.SOFT_FAIL: RevocationCheckingRule.CHECK_IF_DECLARED_SOFT,
    RevocationMode.HARD_FAIL: RevocationCheckingRule.CHECK_IF_DECLARED,
    RevocationMode.REQUIRE: RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
}

# Generic PathValidationError messages, classified (pinned to pyhanko-certvalidator 0.33.x).
_MESSAGE_CODES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"not a CA|basic constraints|path length|maximum path", re.I), "BASIC_CONSTRAINTS"),
    (
        re.compile(r"name constraint|excluded|permitted (subtree|namespace)", re.I),
        "NAME_CONSTRAINTS",
    ),
    (re.compile(r"polic", re.I), "CERT_POLICY"),
    (re.compile(r"key usage|not allowed to sign", re.I), "KEY_USAGE"),
    (re.compile(r"signature", re.I), "CERT_SIGNATURE_INVALID"),
)


class Outcome:
    """What the validator said: a path (leaf first) or a failure, plus soft-fail notes."""

    def __init__(self) -> None:
        self.path: tuple[x509.Certificate, ...] = ()
        self.indication = TrustIndication.VALID
        self.findings: list[TrustFinding] = []
        self.crls: list[bytes] = []  # every CRL the context saw (supplied and fetched)
        self.ocsps: list[bytes] = []  # every OCSP response the context saw
        self.ee_revinfo_missing = False  # INDETERMINATE because of the signer's own status
        self.policies: tuple[str, ...] = ()  # accepted certificate policies (dotted OIDs)


def _views(path: Any, known: Sequence[Cert], out: Outcome) -> tuple[x509.Certificate, ...]:
    """The path leaf first as cryptography certificates; () with a finding when one of them
    has no view: the checks after validation read every certificate, so no verdict."""
    views = path_views(list(path.iter_certs(True)), known)
    unread = [c for c in views if c.crypto is None]
    if unread:
        if out.indication is TrustIndication.VALID:
            out.indication = TrustIndication.INDETERMINATE
        out.findings.append(
            TrustFinding(
                "VALIDATION_ERROR",
                f"{unread[0].subject}: certificate not readable by cryptography, so its key "
                "usage, key size and revocation cannot be checked",
            )
        )
        return ()
    return tuple(c.crypto for c in views if c.crypto is not None)[::-1]


def _context(
    policy: TrustPolicy,
    at: dt.datetime,
    anchors: Sequence[Cert],
    others: Sequence[Cert],
    *,
    signer_der: bytes,
    skip_ee_revocation: bool = False,
    refusals: list[str] | None = None,
    allowance: FetchAllowance | None = None,
) -> ValidationContext:
    rule = _RULES[policy.revocation_mode]
    ee_rule = RevocationCheckingRule.NO_CHECK if skip_ee_revocation else rule
    rev_policy = CertRevTrustPolicy(
        RevocationCheckingPolicy(ee_rule, rule), retroactive_revinfo=policy.retroactive_revinfo
    )
    algos = policy.algorithms
    backend = None
    if policy.online:  # aiohttp only when fetching: it is a large import
        from pki._fetching import GuardedFetcherBackend

        backend = OwnedFetcherBackend(
            GuardedFetcherBackend(
                signer_der=signer_der,
                timeout=policy.timeout,
                max_requests=policy.max_fetches,
                refusals=refusals,
                allowance=allowance,
            )
        )
    return ValidationContext(
        trust_roots=[c.asn1 for c in anchors],
        other_certs=[c.asn1 for c in others],
        moment=at,
        # Lists, never None: the library refuses "essential" policies without any source.
        crls=list(policy.crls),
        ocsps=list(policy.ocsp_responses),
        allow_fetching=policy.online,
        fetcher_backend=backend,
        revinfo_policy=rev_policy,
        algorithm_usage_policy=DisallowWeakAlgorithmsPolicy(  # type: ignore[no-untyped-call]
            weak_hash_algos=algos.weak_hashes,
            rsa_key_size_threshold=algos.min_rsa_bits,
            dsa_key_size_threshold=algos.min_dsa_bits,
        ),
        time_tolerance=policy.time_tolerance,
    )


def pkix_params(policy: TrustPolicy) -> PKIXValidationParams:
    """The RFC 5280 initial inputs of ``policy`` (asn1crypto spells anyPolicy 'any_policy')."""
    names = {"any_policy" if oid == ANY_POLICY else oid for oid in policy.policies}
    return PKIXValidationParams(
        user_initial_policy_set=frozenset(names or {"any_policy"}),
        initial_explicit_policy=policy.require_explicit_policy,
        initial_policy_mapping_inhibit=policy.inhibit_policy_mapping,
        initial_any_policy_inhibit=policy.inhibit_any_policy,
    )


async def validate_path(
    leaf: Cert,
    policy: TrustPolicy,
    *,
    at: dt.datetime,
    anchors: Sequence[Cert],
    others: Sequence[Cert] = (),
    skip_ee_revocation: bool = False,
    allowance: FetchAllowance | None = None,
) -> Outcome:
    """Build and validate a path for ``leaf`` at ``at``; never raises for a bad certificate.

    ``anchors``: the policy's trust roots; ``others``: its intermediates and the offered
    certificates; all converted once by the caller. ``skip_ee_revocation``: the caller has
    established the signer's status itself. ``allowance``: requests left to the whole
    verification (online only).
    """
    known = (leaf, *anchors, *others)
    out = Outcome()
    refusals: list[str] = []  # why fetched answers were refused: pyhanko keeps no detail
    vc = _context(
        policy,
        at,
        anchors,
        others,
        signer_der=leaf.der,
        skip_ee_revocation=skip_ee_revocation,
        refusals=refusals,
        allowance=allowance,
    )
    try:
        validator = CertificateValidator(
            leaf.asn1, validation_context=vc, pkix_params=pkix_params(policy)
        )
        try:
            path = await validator.async_validate_path()
        except pv_errors.PathValidationError as e:
            _map_path_error(e, out)
            out.path = _views(e.original_path, known, out)
            out.ee_revinfo_missing = isinstance(e, pv_errors.InsufficientRevinfoError) and bool(
                e.is_ee_cert
            )
        except (pv_errors.PathBuildingError, pv_errors.ValidationError) as e:
            _map_other_error(e, out)
        except (OSError, TimeoutError) as e:  # network trouble that escaped the fetchers
            out.indication = TrustIndication.INDETERMINATE
            out.findings.append(TrustFinding("REVOCATION_UNAVAILABLE", f"network error: {e}"))
        else:
            out.path = _views(path, known, out)
            out.policies = _accepted_policies(path) if out.path else ()
        for exc in vc.soft_fail_exceptions:
            out.findings.append(
                TrustFinding("REVOCATION_UNAVAILABLE", f"soft-fail: {_msg(exc)}", note=True)
            )
        for why in dict.fromkeys(refusals):
            out.findings.append(
                TrustFinding("REVOCATION_UNAVAILABLE", f"refused: {why}", note=True)
            )
        out.crls = [c.dump() for c in vc.crls]
        out.ocsps = [r.dump() for r in vc.ocsps]
    finally:
        await vc.aclose()  # type: ignore[no-untyped-call]
    return out


def _accepted_policies(path: Any) -> tuple[str, ...]:
    """The valid policy set at the end of the path (RFC 5280 6.1.6), as dotted OIDs."""
    tree = path.qualified_policies()
    if tree is None:
        return ()
    oids = set()
    for qp in tree:
        oid = qp.user_domain_policy_id
        oids.add(ANY_POLICY if oid == "any_policy" else str(oid))
    return tuple(sorted(oids))


def _msg(e: BaseException) -> str:
    text = getattr(e, "failure_msg", None) or str(e) or type(e).__name__
    return " ".join(str(text).split())


def _map_path_error(e: pv_errors.PathValidationError, out: Outcome) -> None:
    code: str
    indication = TrustIndication.INVALID
    if isinstance(e, pv_errors.RevokedError):
        code = "CERT_REVOKED"
    elif isinstance(e, pv_errors.InsufficientRevinfoError):
        code, indication = "REVOCATION_UNAVAILABLE", TrustIndication.INDETERMINATE
    elif isinstance(e, pv_errors.ExpiredError):
        code = "CERT_EXPIRED"
    elif isinstance(e, pv_errors.NotYetValidError):
        code = "CERT_NOT_YET_VALID"
    elif isinstance(e, pv_errors.DisallowedAlgorithmError):
        code = "WEAK_ALGORITHM"
    elif isinstance(e, pv_errors.InsufficientPOEError):
        code, indication = "PATH_INVALID", TrustIndication.INDETERMINATE
    else:
        code = next((c for rx, c in _MESSAGE_CODES if rx.search(_msg(e))), "PATH_INVALID")
    message = _msg(e)
    if isinstance(e, pv_errors.RevokedError):
        reason = getattr(e.reason, "native", None) or str(e.reason)
        message += f" [revoked {e.revocation_dt.isoformat()}, reason {reason}]"
    out.indication = indication
    out.findings.append(TrustFinding(code, message))


def _map_other_error(e: Exception, out: Outcome) -> None:
    if isinstance(e, pv_errors.CertificateFetchError):
        # An intermediate could not be fetched: no decision, not a proven failure.
        out.indication = TrustIndication.INDETERMINATE
        out.findings.append(TrustFinding("NO_TRUSTED_PATH", _msg(e)))
    elif isinstance(e, pv_errors.PathBuildingError):
        out.indication = TrustIndication.INVALID
        out.findings.append(TrustFinding("NO_TRUSTED_PATH", _msg(e)))
    elif isinstance(e, pv_errors.InvalidCertificateError):
        # Raised for an untrusted self-signed leaf as well as for usage problems.
        msg = _msg(e)
        code = "NO_TRUSTED_PATH" if "self-signed" in msg else "KEY_USAGE"
        out.indication = TrustIndication.INVALID
        out.findings.append(TrustFinding(code, msg))
    else:
        out.indication = TrustIndication.INVALID
        out.findings.append(TrustFinding("PATH_INVALID", _msg(e)))
