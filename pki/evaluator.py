"""The CLI-facing builder: paths and option strings -> a caching :class:`TrustEvaluator`."""

from __future__ import annotations

import collections
import datetime as dt
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509

from pki.cert_input import CertificateInput, der_fingerprint
from pki.certs import fingerprint, load_from_paths
from pki.chain import evaluate_chain
from pki.errors import TrustConfigError
from pki.policy import (
    ANY_POLICY,
    DEFAULT_MAX_FETCHES,
    DEFAULT_MAX_FETCHES_PER_VERIFICATION,
    SIGNING_EKUS,
    SIGNING_KEY_USAGE,
    AlgorithmRule,
    FetchAllowance,
    RevocationMode,
    TrustPolicy,
    parse_eku,
    parse_policy_oid,
)
from pki.policy_file import PolicySettings, load_policy_file
from pki.results import TrustEvaluator, TrustResult
from pki.revocation import load_crls, load_ocsp_responses

_CacheKey = tuple[str, frozenset[str], bool]


class _Evaluates:
    """The :class:`TrustEvaluator` method, written once for an evaluator and for its views
    bound to one verification's allowance of HTTP requests."""

    def _scope(self) -> tuple[PolicyEvaluator, FetchAllowance | None]:
        raise NotImplementedError

    def evaluate(
        self,
        leaf: CertificateInput,
        *,
        at: dt.datetime,
        extra_certs: Sequence[x509.Certificate] = (),
        certified_time: bool = False,
    ) -> TrustResult:
        """Validate ``leaf`` at ``at`` (see :func:`pki.evaluate_chain`), reusing results."""
        owner, allowance = self._scope()
        return owner._evaluate(leaf, at, extra_certs, certified_time, allowance)


class PolicyEvaluator(_Evaluates):
    """The caching :class:`TrustEvaluator` over one policy (thread-safe, fork-safe).

    By default (``ttl=None``) a result is reused for the same certificate, extra certificates
    and exact moment: right for a run, whose moments repeat. A long-running server validates
    at "now", which never repeats: ``ttl`` seconds reuses a result while the requested moment
    is less than ``ttl`` after the one it was computed for (``ttl=0``: no reuse), and
    ``max_entries`` bounds the cache (least recently used dropped).
    """

    def __init__(
        self, policy: TrustPolicy, *, ttl: float | None = None, max_entries: int | None = None
    ) -> None:
        self.policy = policy
        self.ttl = ttl
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._cache: collections.OrderedDict[
            tuple[_CacheKey, dt.datetime | None], tuple[dt.datetime, TrustResult]
        ] = collections.OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        """Shipped to another process (Dask, a process pool): the policy and settings travel,
        the lock and the cache stay (the receiver starts its own)."""
        return {"policy": self.policy, "ttl": self.ttl, "max_entries": self.max_entries}

    def __setstate__(self, state: dict[str, Any]) -> None:
        PolicyEvaluator.__init__(
            self, state["policy"], ttl=state["ttl"], max_entries=state["max_entries"]
        )

    def _scope(self) -> tuple[PolicyEvaluator, FetchAllowance | None]:
        return self, None

    def within(self, allowance: FetchAllowance) -> TrustEvaluator:
        """This evaluator for one verification: online, every evaluation it makes draws its
        HTTP requests from ``allowance`` (the cache is shared)."""
        return _Scoped(self, allowance) if self.policy.online else self

    def allowance(self) -> FetchAllowance:
        """A fresh allowance of the policy's ``max_fetches_per_verification`` requests."""
        return FetchAllowance(self.policy.max_fetches_per_verification)

    def _evaluate(
        self,
        leaf: CertificateInput,
        at: dt.datetime,
        extra_certs: Sequence[x509.Certificate],
        certified_time: bool,
        allowance: FetchAllowance | None,
    ) -> TrustResult:
        if self._pid != os.getpid():  # forked: the parent's lock may have been held
            self._lock, self._pid = threading.Lock(), os.getpid()
        what = (der_fingerprint(leaf), frozenset(map(fingerprint, extra_certs)), certified_time)
        key = (what, at if self.ttl is None else None)
        caching = self.ttl is None or self.ttl > 0
        if caching:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None and self._fresh(hit[0], at):
                    self._cache.move_to_end(key)
                    return hit[1]
        refused = allowance.refused if allowance is not None else 0
        result = evaluate_chain(
            leaf, self.policy, at=at, extra_certs=extra_certs, certified_time=certified_time,
            allowance=allowance,
        )  # fmt: skip
        # cut short because this verification spent its allowance: not a verdict for others
        if allowance is not None and allowance.refused != refused:
            caching = False
        if caching:
            with self._lock:
                self._cache[key] = (at, result)
                self._cache.move_to_end(key)
                while self.max_entries is not None and len(self._cache) > self.max_entries:
                    self._cache.popitem(last=False)
        return result

    def _fresh(self, computed_at: dt.datetime, at: dt.datetime) -> bool:
        if self.ttl is None:
            return True  # the key holds the exact moment
        return 0 <= (at - computed_at).total_seconds() < self.ttl


class _Scoped(_Evaluates):
    """A :class:`PolicyEvaluator` bound to one verification's :class:`FetchAllowance` (its
    evaluations draw their HTTP requests from it; the cache is the owner's)."""

    def __init__(self, owner: PolicyEvaluator, allowance: FetchAllowance) -> None:
        self.owner, self.allowance = owner, allowance

    def _scope(self) -> tuple[PolicyEvaluator, FetchAllowance | None]:
        return self.owner, self.allowance


def build_policy(
    *,
    trust_stores: Sequence[Path] = (),
    untrusted: Sequence[Path] = (),
    crls: Sequence[Path] = (),
    revocation: str | None = None,
    online: bool | None = None,
    allow_weak: Sequence[str] | None = None,
    timeout: float | None = None,
    ocsp_responses: Sequence[Path] = (),
    policy_file: Path | None = None,
    policies: Sequence[str] | None = None,
    require_explicit_policy: bool | None = None,
    inhibit_policy_mapping: bool | None = None,
    inhibit_any_policy: bool | None = None,
    signing_eku: Sequence[str] | None = None,
    required_eku: Sequence[str] | None = None,
    tsa_trust_stores: Sequence[Path] = (),
) -> TrustPolicy:
    """Load the files and build a :class:`TrustPolicy`; see :func:`build_evaluator`.

    With ``policy_file`` (TOML, :mod:`pki.policy_file`) its settings are the base and every
    argument given here overrides them (a list given here replaces the file's list).
    """
    base = load_policy_file(policy_file) if policy_file is not None else PolicySettings()
    given = PolicySettings(
        anchors=tuple(map(Path, trust_stores)),
        tsa_anchors=tuple(map(Path, tsa_trust_stores)),
        intermediates=tuple(map(Path, untrusted)),
        crls=tuple(map(Path, crls)),
        ocsp=tuple(map(Path, ocsp_responses)),
        revocation=RevocationMode.parse(revocation).value if revocation is not None else None,
        online=online or None,
        timeout=_seconds(timeout),
        allow_weak=tuple(allow_weak) if allow_weak else None,
        policies=tuple(parse_policy_oid(p) for p in policies) if policies else None,
        require_explicit_policy=require_explicit_policy or None,
        inhibit_policy_mapping=inhibit_policy_mapping or None,
        inhibit_any_policy=inhibit_any_policy or None,
        signing_eku=tuple(parse_eku(e) for e in signing_eku) if signing_eku else None,
        required_eku=tuple(parse_eku(e) for e in required_eku) if required_eku else None,
    )
    return policy_from_settings(base.overridden_by(given), source=base.source)


def _seconds(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    try:
        return float(timeout)
    except (TypeError, ValueError):
        raise TrustConfigError(f"timeout must be a number of seconds, got {timeout!r}") from None


def policy_from_settings(settings: PolicySettings, *, source: str | None = None) -> TrustPolicy:
    """Load the certificates, CRLs and OCSP responses ``settings`` name: a :class:`TrustPolicy`."""
    if not settings.anchors:
        raise TrustConfigError(
            "no trust anchors given (a trust store, or 'anchors' in a policy file; "
            "there is no implicit system store)",
            option="trust_store",
        )
    return TrustPolicy(
        trust_roots=load_from_paths(settings.anchors, "trust store"),
        intermediates=(
            load_from_paths(settings.intermediates, "untrusted certificates")
            if settings.intermediates
            else ()
        ),
        crls=load_crls(*settings.crls),
        ocsp_responses=load_ocsp_responses(*settings.ocsp),
        revocation=RevocationMode.parse(settings.revocation) if settings.revocation else None,
        online=bool(settings.online),
        timeout=settings.timeout if settings.timeout is not None else 10.0,
        max_fetches=(
            settings.max_fetches if settings.max_fetches is not None else DEFAULT_MAX_FETCHES
        ),
        max_fetches_per_verification=(
            settings.max_fetches_per_verification
            if settings.max_fetches_per_verification is not None
            else DEFAULT_MAX_FETCHES_PER_VERIFICATION
        ),
        algorithms=AlgorithmRule.from_names(settings.allow_weak or ()),
        key_usage=(
            frozenset(settings.key_usage) if settings.key_usage is not None else SIGNING_KEY_USAGE
        ),
        signing_eku=(
            frozenset(settings.signing_eku) if settings.signing_eku is not None else SIGNING_EKUS
        ),
        extended_key_usage=frozenset(settings.required_eku or ()),
        policies=frozenset(p for p in settings.policies or () if p != ANY_POLICY),
        require_explicit_policy=bool(settings.require_explicit_policy),
        inhibit_policy_mapping=bool(settings.inhibit_policy_mapping),
        inhibit_any_policy=bool(settings.inhibit_any_policy),
        allow_ca_signer=bool(settings.allow_ca_signer),
        source=source,
        tsa_roots=(
            load_from_paths(settings.tsa_anchors, "TSA trust store") if settings.tsa_anchors else ()
        ),
    )


def build_evaluator(
    *,
    trust_stores: Sequence[Path] = (),
    untrusted: Sequence[Path] = (),
    crls: Sequence[Path] = (),
    revocation: str | None = None,
    online: bool = False,
    allow_weak: Sequence[str] = (),
    timeout: float | None = None,
    ocsp_responses: Sequence[Path] = (),
    policy_file: Path | None = None,
) -> TrustEvaluator:
    """Build the evaluator ``dsig verify --trust-store ...`` uses.

    - ``trust_stores`` / ``untrusted``: PEM bundles, DER files, PKCS#7 bundles (PEM or DER),
      directories of them (OpenSSL hashed directories too).
    - ``crls``: PEM/DER CRL files or directories; ``ocsp_responses``: DER OCSP responses.
    - ``revocation``: ``off|soft-fail|hard-fail|require``; None = hard-fail (every
      certificate publishing a CRL DP or OCSP responder needs its status).
    - ``online``: fetch CRLs, OCSP and missing intermediates (AIA), ``timeout`` s per request
      (default 10).
    - ``allow_weak``: names such as ``sha1``, ``md5``, ``rsa1024``, ``dsa1024``.
    - ``policy_file``: a TOML policy file (:mod:`pki.policy_file`); arguments override it.

    Raises :class:`~pki.errors.TrustConfigError` (one-line message) on bad paths or values.
    """
    return PolicyEvaluator(
        build_policy(
            trust_stores=trust_stores,
            untrusted=untrusted,
            crls=crls,
            revocation=revocation,
            online=online,
            allow_weak=allow_weak,
            timeout=timeout,
            ocsp_responses=ocsp_responses,
            policy_file=policy_file,
        )
    )
