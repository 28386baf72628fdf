"""Verification options shared by the commands that verify (``dsig verify``, ``dsig serve``):
the typer option declarations and one builder from option values to
:class:`~dsig.operations.verifier.VerifyOptions`, so a trust policy written for one works for
the other.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dsig.cli._common import fail
from dsig.cli._groups import group_options

if TYPE_CHECKING:
    from dsig import VerifyOptions
    from pki import TrustEvaluator, TrustPolicy


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
PolicyFileOpt = Annotated[
    Path | None,
    typer.Option(
        help="TOML trust policy file (anchors, CRLs, revocation, policies...); options override it"
    ),
]
CertPolicyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--policy",
        help="acceptable certificate policy OID (user-initial-policy-set); repeatable; 'any'",
    ),
]
RequireExplicitPolicyOpt = Annotated[
    bool,
    typer.Option("--require-explicit-policy", help="the path must be valid for a policy"),
]
InhibitPolicyMappingOpt = Annotated[
    bool, typer.Option("--inhibit-policy-mapping", help="do not accept policy mappings")
]
InhibitAnyPolicyOpt = Annotated[
    bool, typer.Option("--inhibit-any-policy", help="anyPolicy in a CA certificate does not count")
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


def load_trust_policy(
    *,
    policy_file: Path | None,
    trust_store: list[Path] | None,
    untrusted: list[Path] | None = None,
    crl: list[Path] | None = None,
    ocsp: list[Path] | None = None,
    revocation: RevocationChoice | None = None,
    online: bool = False,
    allow_weak: list[str] | None = None,
    tsa_trust_store: list[Path] | None = None,
    policies: list[str] | None = None,
    require_explicit_policy: bool = False,
    inhibit_policy_mapping: bool = False,
    inhibit_any_policy: bool = False,
) -> TrustPolicy | None:
    """The trust policy of the shared options (file, then options on top); None when neither
    a trust store nor a policy file is given (then any other trust option is a usage error,
    exit 2). Unreadable trust material: one line, exit 4."""
    from dsig.cli._common import operational_errors

    if not trust_store and policy_file is None:
        pkix = policies or require_explicit_policy or inhibit_policy_mapping or inhibit_any_policy
        if untrusted or crl or ocsp or online or revocation or pkix:
            raise fail("trust options need --trust-store (or --policy-file)", 2)
        return None
    try:
        import pki

        return pki.build_policy(
            policy_file=policy_file,
            trust_stores=trust_store or (),
            untrusted=untrusted or (),
            crls=crl or (),
            ocsp_responses=ocsp or (),
            revocation=revocation.value if revocation else None,
            online=online,
            allow_weak=allow_weak or None,
            tsa_trust_stores=tsa_trust_store or (),
            policies=policies,
            require_explicit_policy=require_explicit_policy,
            inhibit_policy_mapping=inhibit_policy_mapping,
            inhibit_any_policy=inhibit_any_policy,
        )
    except operational_errors() as e:
        raise fail(e) from None


def policy_statement(options: VerifyOptions) -> dict[str, object]:
    """What every report states: the dsig version and the trust policy in effect."""
    from dsig import __version__

    policy = getattr(options.trust, "policy", None)
    if options.integrity_only:
        stated: object = "integrity only (trust not checked)"
    elif policy is None:
        stated = "none (no trust store: trust not checked)"
    else:
        stated = policy.summary()
    return {"dsig_version": __version__, "policy": stated}


def policy_footer(options: VerifyOptions) -> str:
    """The human footer line for :func:`policy_statement`."""
    from dsig import __version__

    policy = getattr(options.trust, "policy", None)
    if options.integrity_only:
        text = "integrity only (trust not checked)"
    elif policy is None:
        text = "none (no trust store: trust not checked)"
    else:
        text = policy.describe()
    return f"trust policy: {text}; dsig {__version__}"


def build_verify_options(
    *, evaluator: Callable[[TrustPolicy], TrustEvaluator] | None = None, **values: Any
) -> VerifyOptions:
    """VerifyOptions from the shared options by name (``policies`` for ``--policy``), as
    ``dsig verify`` builds them: :meth:`TrustArgs.verify_options`."""
    if "policies" in values:
        values["policy"] = values.pop("policies")
    return TrustArgs(**values).verify_options(evaluator)


def _policy_evaluator(policy: TrustPolicy) -> TrustEvaluator:
    import pki

    return pki.PolicyEvaluator(policy)


@dataclasses.dataclass(frozen=True)
class TrustArgs:
    """The values of the shared verification options a command declares (see
    :func:`trust_options`); an option the command does not offer keeps its default."""

    require: list[RequireChoice] | None = None
    format_old: bool = False
    integrity_only: bool = False
    trust_store: list[Path] | None = None
    untrusted: list[Path] | None = None
    crl: list[Path] | None = None
    ocsp: list[Path] | None = None
    revocation: RevocationChoice | None = None
    online: bool = False
    at: str | None = None
    tsa_trust_store: list[Path] | None = None
    allow_weak: list[str] | None = None
    strict: bool = False
    require_coverage: CoverageChoice | None = None
    timestamp_failures_warn: bool = False
    policy_file: Path | None = None
    policy: list[str] | None = None
    require_explicit_policy: bool = False
    inhibit_policy_mapping: bool = False
    inhibit_any_policy: bool = False

    @classmethod
    def of(cls, params: Mapping[str, object]) -> TrustArgs:
        """The options found by name in parsed parameters (``ctx.params``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names})  # type: ignore[arg-type]

    def trust_policy(self) -> TrustPolicy | None:
        """:func:`load_trust_policy` of these values."""
        return load_trust_policy(
            policy_file=self.policy_file, trust_store=self.trust_store, untrusted=self.untrusted,
            crl=self.crl, ocsp=self.ocsp, revocation=self.revocation, online=self.online,
            allow_weak=self.allow_weak, tsa_trust_store=self.tsa_trust_store,
            policies=self.policy, require_explicit_policy=self.require_explicit_policy,
            inhibit_policy_mapping=self.inhibit_policy_mapping,
            inhibit_any_policy=self.inhibit_any_policy,
        )  # fmt: skip

    def verify_options(
        self, evaluator: Callable[[TrustPolicy], TrustEvaluator] | None = None
    ) -> VerifyOptions:
        """VerifyOptions from these values, as ``dsig verify`` builds them.

        ``evaluator`` turns a loaded policy into an evaluator, for signers and for timestamp
        authorities alike (default :class:`pki.PolicyEvaluator`). Usage errors exit 2;
        unreadable trust material exits 4 with one line.
        """
        from dsig import VerifyOptions
        from dsig.cli._common import operational_errors

        if self.integrity_only:
            given = [
                name
                for name, value in (
                    ("--trust-store", self.trust_store), ("--untrusted", self.untrusted),
                    ("--crl", self.crl), ("--ocsp", self.ocsp),
                    ("--revocation", self.revocation), ("--online", self.online),
                    ("--at", self.at), ("--tsa-trust-store", self.tsa_trust_store),
                    ("--policy-file", self.policy_file), ("--policy", self.policy),
                    ("--require-explicit-policy", self.require_explicit_policy),
                    ("--inhibit-policy-mapping", self.inhibit_policy_mapping),
                    ("--inhibit-any-policy", self.inhibit_any_policy),
                )
                if value
            ]  # fmt: skip
            if given:
                raise fail(
                    f"--integrity-only declines trust checks, but {', '.join(given)} asks for "
                    "them: drop one or the other",
                    2,
                )
        moment = parse_moment(self.at)
        make = evaluator or _policy_evaluator
        policy = self.trust_policy()
        trust = make(policy) if policy is not None else None
        tsa_trust: TrustEvaluator | None = None
        try:
            if policy is not None:
                tsa_trust = make(policy.for_timestamp_authority())
            elif self.tsa_trust_store:
                tsa_only = load_trust_policy(
                    policy_file=None, trust_store=self.tsa_trust_store, allow_weak=self.allow_weak
                )
                tsa_trust = make(tsa_only.for_timestamp_authority()) if tsa_only else None
            return VerifyOptions(
                tsa_trust=tsa_trust,
                trust=trust,
                integrity_only=self.integrity_only,
                old_format=self.format_old,
                at=moment,
                require=[r.value for r in self.require or []],
                strict=self.strict,
                allow_weak=tuple(self.allow_weak or ()),
                require_coverage=self.require_coverage.value if self.require_coverage else None,
                timestamp_failures_warn=self.timestamp_failures_warn,
            )
        except operational_errors() as e:
            raise fail(e) from None


#: Each shared option's declaration and default, in the order commands list them.
_DECLARED: dict[str, tuple[object, object]] = {
    "require": (RequireOpt, None),
    "format_old": (FormatOldOpt, False),
    "integrity_only": (IntegrityOnlyOpt, False),
    "trust_store": (TrustStoreOpt, None),
    "untrusted": (UntrustedOpt, None),
    "crl": (CrlOpt, None),
    "ocsp": (OcspOpt, None),
    "revocation": (RevocationOpt, None),
    "online": (OnlineOpt, False),
    "at": (AtOpt, None),
    "tsa_trust_store": (TsaTrustStoreOpt, None),
    "allow_weak": (AllowWeakOpt, None),
    "strict": (StrictOpt, False),
    "require_coverage": (RequireCoverageOpt, None),
    "timestamp_failures_warn": (TimestampFailuresWarnOpt, False),
    "policy_file": (PolicyFileOpt, None),
    "policy": (CertPolicyOpt, None),
    "require_explicit_policy": (RequireExplicitPolicyOpt, False),
    "inhibit_policy_mapping": (InhibitPolicyMappingOpt, False),
    "inhibit_any_policy": (InhibitAnyPolicyOpt, False),
}
#: Every shared option: what ``dsig verify`` and ``dsig explain`` offer.
ALL_TRUST_OPTIONS = tuple(_DECLARED)


#: ``@trust_options(*names, after=...)``: declare the shared options ``names`` on a command
#: in place of its keyword-only parameter ``trust``, which receives one :class:`TrustArgs`.
trust_options = group_options("trust", TrustArgs, _DECLARED)
