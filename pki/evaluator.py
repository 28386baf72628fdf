"""The CLI-facing builder: paths and option strings -> a caching :class:`TrustEvaluator`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from pki.certs import fingerprint, load_from_paths
from pki.chain import evaluate_chain
from pki.errors import TrustConfigError
from pki.policy import AlgorithmRule, RevocationMode, TrustPolicy
from pki.results import TrustEvaluator, TrustResult
from pki.revocation import load_crls, load_ocsp_responses

_CacheKey = tuple[str, dt.datetime, frozenset[str], bool]


class PolicyEvaluator:
    """A :class:`TrustEvaluator` over one policy; caches results for the run."""

    def __init__(self, policy: TrustPolicy) -> None:
        self.policy = policy
        self._cache: dict[_CacheKey, TrustResult] = {}

    def evaluate(
        self,
        leaf: x509.Certificate,
        *,
        at: dt.datetime,
        extra_certs: Sequence[x509.Certificate] = (),
        certified_time: bool = False,
    ) -> TrustResult:
        """Validate ``leaf`` at ``at`` (see :func:`pki.evaluate_chain`), cached per
        (certificate fingerprint, moment, extra certificates, certified_time)."""
        key = (fingerprint(leaf), at, frozenset(map(fingerprint, extra_certs)), certified_time)
        if key not in self._cache:
            self._cache[key] = evaluate_chain(
                leaf, self.policy, at=at, extra_certs=extra_certs, certified_time=certified_time
            )
        return self._cache[key]


def build_policy(
    *,
    trust_stores: Sequence[Path],
    untrusted: Sequence[Path] = (),
    crls: Sequence[Path] = (),
    revocation: str | None = None,
    online: bool = False,
    allow_weak: Sequence[str] = (),
    timeout: float = 10.0,
    ocsp_responses: Sequence[Path] = (),
) -> TrustPolicy:
    """Load the files and build a :class:`TrustPolicy`; see :func:`build_evaluator`."""
    if not trust_stores:
        raise TrustConfigError("no trust store given (there is no implicit system store)")
    try:
        seconds = float(timeout)
    except (TypeError, ValueError):
        raise TrustConfigError(f"timeout must be a number of seconds, got {timeout!r}") from None
    return TrustPolicy(
        trust_roots=load_from_paths([Path(p) for p in trust_stores], "trust store"),
        intermediates=(
            load_from_paths([Path(p) for p in untrusted], "untrusted certificates")
            if untrusted
            else ()
        ),
        crls=load_crls(*map(Path, crls)),
        ocsp_responses=load_ocsp_responses(*map(Path, ocsp_responses)),
        revocation=RevocationMode.parse(revocation) if revocation is not None else None,
        online=online,
        timeout=seconds,
        algorithms=AlgorithmRule.from_names(allow_weak),
    )


def build_evaluator(
    *,
    trust_stores: Sequence[Path],
    untrusted: Sequence[Path] = (),
    crls: Sequence[Path] = (),
    revocation: str | None = None,
    online: bool = False,
    allow_weak: Sequence[str] = (),
    timeout: float = 10.0,
    ocsp_responses: Sequence[Path] = (),
) -> TrustEvaluator:
    """Build the evaluator ``dsig verify --trust-store ...`` uses.

    - ``trust_stores`` / ``untrusted``: PEM bundles, DER files, PKCS#7 bundles (PEM or DER),
      directories of them (OpenSSL hashed directories too).
    - ``crls``: PEM/DER CRL files or directories; ``ocsp_responses``: DER OCSP responses.
    - ``revocation``: ``off|soft-fail|hard-fail|require``; None = hard-fail when CRLs, OCSP
      responses or ``online`` are given, else off.
    - ``online``: fetch CRLs, OCSP and missing intermediates (AIA), ``timeout`` s per request.
    - ``allow_weak``: names such as ``sha1``, ``md5``, ``rsa1024``, ``dsa1024``.

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
        )
    )
