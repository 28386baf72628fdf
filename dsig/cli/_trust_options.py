"""Verification options shared by the commands that verify (``dsig verify``, ``dsig serve``):
the typer option declarations and one builder from option values to
:class:`~dsig.verifier.VerifyOptions`, so a trust policy written for one works for the other.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dsig.cli._common import fail

if TYPE_CHECKING:
    from dsig.verifier import VerifyOptions
    from pki.policy import TrustPolicy
    from pki.results import TrustEvaluator


class RequireChoice(enum.StrEnum):
    """--require values."""

    signature = "signature"
    item_signature = "item-signature"
    base = "base"
    creator = "creator"
    authorization = "authorization"
    sr = "sr"
    timestamp = "timestamp"


class CoverageChoice(enum.StrEnum):
    """--require-coverage values."""

    all = "all"
    profile = "profile"


class RevocationChoice(enum.StrEnum):
    """--revocation values."""

    off = "off"
    soft_fail = "soft-fail"
    hard_fail = "hard-fail"
    require = "require"


RequireOpt = Annotated[
    list[RequireChoice] | None,
    typer.Option(help="fail unless a valid signature meets this; repeatable"),
]
FormatOldOpt = Annotated[bool, typer.Option("--format-old", help="accept DCMTK's pre-3.5.4 format")]
IntegrityOnlyOpt = Annotated[
    bool, typer.Option("--integrity-only", help="check integrity only; do not require trust")
]
TrustStoreOpt = Annotated[
    list[Path] | None, typer.Option(help="trust anchors: PEM/DER/PKCS#7 file or directory")
]
UntrustedOpt = Annotated[list[Path] | None, typer.Option(help="intermediate certificates")]
CrlOpt = Annotated[list[Path] | None, typer.Option(help="CRL file or directory")]
OcspOpt = Annotated[list[Path] | None, typer.Option(help="stored OCSP response (DER)")]
RevocationOpt = Annotated[RevocationChoice | None, typer.Option(help="revocation checking mode")]
OnlineOpt = Annotated[
    bool, typer.Option("--online", help="fetch CRLs/OCSP/intermediates from the network")
]
AtOpt = Annotated[
    str | None,
    typer.Option(
        help="validation moment: timestamp (default when a valid one exists), "
        "now, signing-time or ISO-8601"
    ),
]
TsaTrustStoreOpt = Annotated[
    list[Path] | None,
    typer.Option(help="trust anchors for timestamp authorities (default: --trust-store)"),
]
AllowWeakOpt = Annotated[
    list[str] | None,
    typer.Option(help="accept this weak algorithm (sha1, md5, rsa1024...); repeatable"),
]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict", help="a weak MAC or signer key fails the signature (unless --allow-weak)"
    ),
]
TimestampFailuresWarnOpt = Annotated[
    bool,
    typer.Option(
        "--timestamp-failures-warn",
        help="a present certified timestamp that does not verify is only a warning "
        "(default: it fails its signature)",
    ),
]
RequireCoverageOpt = Annotated[
    CoverageChoice | None,
    typer.Option(
        help="fail a file when a present element is covered by no valid signature "
        "(all: every signable top-level element; profile: what its profile demands)"
    ),
]


def parse_moment(text: str | None) -> str | dt.datetime:
    """``--at``: "timestamp", "now", "signing-time" or an ISO-8601 moment (UTC when no offset
    is given); None means "auto" (a valid timestamp's certified time, else now)."""
    if text is None:
        return "auto"
    if text in ("now", "signing-time", "timestamp", "auto"):
        return text
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise fail(
            f"--at: expected timestamp, now, signing-time or ISO-8601, got {text!r}", 2
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def build_verify_options(
    *,
    require: list[RequireChoice] | None,
    format_old: bool,
    integrity_only: bool,
    trust_store: list[Path] | None,
    untrusted: list[Path] | None,
    crl: list[Path] | None,
    ocsp: list[Path] | None,
    revocation: RevocationChoice | None,
    online: bool,
    at: str | None,
    allow_weak: list[str] | None,
    tsa_trust_store: list[Path] | None = None,
    strict: bool = False,
    require_coverage: CoverageChoice | None = None,
    evaluator: Callable[[TrustPolicy], TrustEvaluator] | None = None,
    timestamp_failures_warn: bool = False,
) -> VerifyOptions:
    """VerifyOptions from the shared options, as ``dsig verify`` builds them.

    ``evaluator`` turns a loaded policy into an evaluator, for signers and for timestamp
    authorities alike (default :class:`pki.PolicyEvaluator`). Usage errors exit 2; unreadable
    trust material exits 4 with one line.
    """
    from dsig.cli._common import operational_errors
    from dsig.cli.timestamp import build_tsa_evaluator
    from dsig.verifier import VerifyOptions

    if integrity_only:
        given = [
            name
            for name, value in (
                ("--trust-store", trust_store), ("--untrusted", untrusted), ("--crl", crl),
                ("--ocsp", ocsp), ("--revocation", revocation), ("--online", online),
                ("--at", at), ("--tsa-trust-store", tsa_trust_store),
            )
            if value
        ]  # fmt: skip
        if given:
            raise fail(
                f"--integrity-only declines trust checks, but {', '.join(given)} asks for "
                "them: drop one or the other",
                2,
            )
    moment = parse_moment(at)
    trust: TrustEvaluator | None = None
    tsa_trust: TrustEvaluator | None = None
    try:
        if trust_store:
            import pki

            policy = pki.build_policy(
                trust_stores=trust_store,
                untrusted=untrusted or (),
                crls=crl or (),
                ocsp_responses=ocsp or (),
                revocation=revocation.value if revocation else None,
                online=online,
                allow_weak=allow_weak or (),
            )
            trust = evaluator(policy) if evaluator is not None else pki.PolicyEvaluator(policy)
        elif untrusted or crl or ocsp or online or revocation:
            raise fail("trust options need --trust-store", 2)
        tsa_trust = build_tsa_evaluator(
            tsa_trust_store or trust_store or [],
            untrusted=untrusted or (),
            crls=crl or (),
            ocsp_responses=ocsp or (),
            revocation=revocation.value if revocation else None,
            online=online,
            allow_weak=allow_weak or (),
        )
        if evaluator is not None and tsa_trust is not None:
            tsa_policy = getattr(tsa_trust, "policy", None)
            if tsa_policy is not None:
                tsa_trust = evaluator(tsa_policy)
        return VerifyOptions(
            tsa_trust=tsa_trust,
            trust=trust,
            integrity_only=integrity_only,
            old_format=format_old,
            at=moment,
            require=[r.value for r in require or []],
            strict=strict,
            allow_weak=tuple(allow_weak or ()),
            require_coverage=require_coverage.value if require_coverage else None,
            timestamp_failures_warn=timestamp_failures_warn,
        )
    except operational_errors() as e:
        raise fail(str(e)) from None
