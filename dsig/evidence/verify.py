"""Checking an evidence record against its data object (RFC 4998 §5.3).

Every ArchiveTimeStamp is checked: the data (or the previous timeStamp token, or the data
with the previous sequence) is a leaf of its reduced hash tree, the tree climbs to the
token's imprint, the token verifies, and its TSA chain validates at the token's own time
with the kept validation data. Each renewal must come before the previous timestamp lost its
value (TSA certificate expired, TSA key or hash past its lifetime); the last timestamp's
algorithms must still be secure at the verification moment. A last timestamp whose TSA
certificate has expired, never renewed, still proves with the kept validation data (RFC 4998
§5.2 asks for renewal before then, since a later compromise of the TSA key would no longer be
published): PROVEN, with the warning RENEWAL_DUE.

Outcome: PROVEN (the data existed at ``proven_time``), BROKEN (the data, the tree or a token
changed), NOT_PROVABLE (no TSA trust, untrusted TSA, missing validation data, renewal overdue).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from cryptography import x509

from dsig.evidence import hashtree
from dsig.evidence.algorithms import DEFAULT_LIFETIMES, AlgorithmLifetimes, earliest, key_kind
from dsig.evidence.record import Record, RecordError, Stamp, parse
from dsig.evidence.validation import policy_with
from dsig.timestamp import TokenInfo, check_token
from pki.codes import Phase, meanings
from pki.policy import TrustPolicy
from pki.results import TrustIndication, TrustResult


class EvidenceStatus(enum.Enum):
    """Verdict on a record for a data object; ``exit_code`` is the CLI's."""

    PROVEN = "PROVEN"
    BROKEN = "BROKEN"
    NOT_PROVABLE = "NOT_PROVABLE"

    @property
    def exit_code(self) -> int:
        """0 proven, 1 broken, 3 not provable."""
        return {"PROVEN": 0, "BROKEN": 1, "NOT_PROVABLE": 3}[self.value]


#: Finding codes of ``dsig evidence verify`` (the JSON contract).
EVIDENCE_FINDING_CODES: dict[str, str] = meanings(Phase.EVIDENCE)  # a view of pki.codes.FindingCode


@dataclass(frozen=True, slots=True)
class StampResult:
    """One ArchiveTimeStamp as checked (frozen)."""

    chain: int
    index: int
    kind: str  # initial | timestamp-renewal | hash-tree-renewal
    hash_algorithm: str
    time: dt.datetime | None = None
    tsa: str | None = None
    valid_until: dt.datetime | None = None  # when it stops proving anything unless renewed
    trust: TrustResult | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form (an element of ``renewals``)."""
        out: dict[str, Any] = {
            "chain": self.chain,
            "index": self.index,
            "kind": self.kind,
            "hash_algorithm": self.hash_algorithm,
            "time": self.time.isoformat() if self.time else None,
            "tsa": self.tsa,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
        }
        if self.trust is not None:
            out["tsa_trust"] = self.trust.to_json()
        return out


@dataclass(frozen=True, slots=True)
class EvidenceResult:
    """What ``dsig evidence verify`` reports (frozen)."""

    status: EvidenceStatus
    proven_time: dt.datetime | None = None
    stamps: tuple[StampResult, ...] = ()
    findings: tuple[tuple[str, str], ...] = ()  # (code, message)
    checked_at: dt.datetime | None = None

    @property
    def exit_code(self) -> int:
        """0 proven, 1 broken, 3 not provable."""
        return self.status.exit_code

    def to_json(self) -> dict[str, Any]:
        """JSON form: status, proven_time, checked_at, renewals, findings."""
        return {
            "status": self.status.value,
            "proven_time": self.proven_time.isoformat() if self.proven_time else None,
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
            "renewals": [s.to_json() for s in self.stamps],
            "findings": [{"code": c, "message": m} for c, m in self.findings],
        }


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def verify_evidence(
    data_hash: Callable[[str], bytes],
    record_der: bytes | Record,
    *,
    tsa_trust: TrustPolicy | None,
    at: dt.datetime | None = None,
    lifetimes: AlgorithmLifetimes = DEFAULT_LIFETIMES,
    clock: Callable[[], dt.datetime] = _now,
) -> EvidenceResult:
    """Verify a record for the data object whose hash under an algorithm ``data_hash`` gives
    (e.g. ``lambda alg: hash_file(path, alg)``).

    ``tsa_trust``: anchors (and optional revocation settings) for the TSAs; None makes the
    result NOT_PROVABLE at best. ``at``: the verification moment (default ``clock()``).
    """
    stamps: list[StampResult] = []
    result = _verify(data_hash, record_der, tsa_trust, at or clock(), lifetimes, stamps)
    return replace(result, stamps=tuple(stamps))


def _verify(
    data_hash: Callable[[str], bytes],
    record_der: bytes | Record,
    tsa_trust: TrustPolicy | None,
    moment: dt.datetime,
    lifetimes: AlgorithmLifetimes,
    stamps: list[StampResult],
) -> EvidenceResult:
    """The result without its stamps: those go to ``stamps`` as they are checked (each
    replaced as it is completed), so that a result that stops early shows where."""
    result = EvidenceResult(EvidenceStatus.PROVEN, checked_at=moment)
    try:
        rec = record_der if isinstance(record_der, Record) else parse(record_der)
    except RecordError as e:
        return _broken(result, "RECORD_MALFORMED", str(e))
    policy = policy_with(tsa_trust, rec.validation) if tsa_trust is not None else None
    if policy is not None:
        from dsig.evidence.stamping import tsa_policy

        policy = tsa_policy(policy)
    kept = rec.validation.x509_certificates()
    hashes: dict[str, bytes] = {}
    start = 0  # first stamp of the unbroken run of timely renewals
    previous: StampResult | None = None
    previous_stamp: Stamp | None = None
    previous_signer: x509.Certificate | None = None
    index = 0
    for k, chain in enumerate(rec.chains):
        for i, stamp in enumerate(chain):
            kind = "initial" if index == 0 else ("timestamp-renewal" if i else "hash-tree-renewal")
            sr = StampResult(k, i, kind, stamp.hash_algorithm)
            stamps.append(sr)
            if i == 0:
                name = stamp.hash_algorithm
                if name not in hashes:
                    hashes[name] = data_hash(name)
                leaf = hashes[name]
                if k:
                    leaf = hashtree.digest(name, leaf, hashtree.digest(name, rec.sequence_der(k)))
            elif stamp.hash_algorithm != chain[0].hash_algorithm:
                return _broken(result, "HASH_MISMATCH", f"chain {k} mixes hash algorithms")
            else:
                leaf = hashtree.digest(stamp.hash_algorithm, chain[i - 1].token)
            result, info = _check_stamp(stamp, leaf, kept, result, kind, k, i)
            if info is None:
                return result
            stamps[-1] = sr = replace(sr, time=info.gen_time, tsa=_tsa_name(info))
            if previous is not None and previous_stamp is not None and previous.time is not None:
                if info.gen_time < previous.time:
                    return _broken(result, "TIME_ORDER", f"timestamp {index} predates {index - 1}")
                if previous.valid_until is not None and info.gen_time > previous.valid_until:
                    # The earlier run still proves its time on its own while its algorithms
                    # stay secure (as an unrenewed record does): a late renewal must never
                    # prove less than no renewal. Once they have ended, the proof starts here.
                    secure_until = algorithms_end(previous_stamp, previous_signer, lifetimes)
                    ended = secure_until is not None and secure_until <= moment
                    consequence = (
                        "existence is proven from this renewal on"
                        if ended
                        else "the earlier timestamps still prove the earlier time on their own"
                        + (f" until {secure_until.isoformat()}" if secure_until else "")
                        + ", while their algorithms stay secure"
                    )
                    result = _noted(
                        result,
                        "RENEWAL_LATE",
                        f"timestamp {index} ({info.gen_time.isoformat()}) came after "
                        f"timestamp {index - 1} lost its value "
                        f"({previous.valid_until.isoformat()}): {consequence}",
                    )
                    if ended:
                        start = index
            trust = None
            if policy is None:
                result = _unprovable(result, "TSA_NOT_CHECKED", "no TSA trust store given")
            elif info.signer is not None:
                trust = _evaluate(policy, info)
                result = _judge_trust(result, trust, index)
            chain_certs: list[x509.Certificate | None] = (
                list(trust.chain) if trust and trust.chain else [info.signer]
            )
            valid_until = _valid_until(stamp, info, chain_certs, lifetimes)
            stamps[-1] = sr = replace(sr, trust=trust, valid_until=valid_until)
            previous, previous_stamp, previous_signer = sr, stamp, chain_certs[0]
            index += 1
    if result.status is EvidenceStatus.BROKEN:
        return result
    overdue = overdue_reason(rec.last, _signer(stamps[-1], rec), lifetimes, moment)
    if overdue is not None:
        result = _unprovable(result, "RENEWAL_OVERDUE", overdue)
    if result.status is EvidenceStatus.PROVEN:
        result = replace(result, proven_time=stamps[start].time)
        due = _due(stamps[-1], rec.last, lifetimes, moment)
        if due is not None:
            result = _noted(result, "RENEWAL_DUE", due)
    return result


def _due(
    sr: StampResult, stamp: Stamp, lifetimes: AlgorithmLifetimes, at: dt.datetime
) -> str | None:
    """RENEWAL_DUE's message when the (trusted, not overdue) last stamp lost its value by a
    certificate expiry before ``at``, else None."""
    if sr.valid_until is None or sr.valid_until >= at or sr.trust is None or not sr.trust.chain:
        return None
    chain = list(sr.trust.chain)
    expired = next((c for c in chain if c.not_valid_after_utc == sr.valid_until), None)
    if expired is None:  # the algorithms' end, which overdue_reason reports
        return None
    return renewal_due(expired, chain[0], algorithms_end(stamp, chain[0], lifetimes))


def renewal_due(
    expired: x509.Certificate, signer: x509.Certificate, secure_until: dt.datetime | None
) -> str:
    """Why a record whose last timestamp's TSA chain has expired, unrenewed, still proves, and
    what a renewal does now: verify's RENEWAL_DUE and ``status``'s reason, one wording."""
    what = (
        "its TSA certificate"
        if expired == signer
        else f"the certificate {expired.subject.rfc4514_string()} of its TSA chain"
    )
    until = f"until {secure_until.date().isoformat()}" if secure_until else "no end announced"
    return (
        f"the last timestamp lost its value at {expired.not_valid_after_utc.isoformat()}, when "
        f"{what} expired, and was not renewed before: the record still proves existence at its "
        f"proven time with the kept validation data while the timestamp's algorithms stay "
        f"secure ({until}); renew it before those algorithms end: a renewal keeps that proven "
        "time while they stay secure, and carries the proof on from the renewal after they end"
    )


def _signer(sr: StampResult, rec: Record) -> x509.Certificate | None:
    if sr.trust is not None and sr.trust.chain:
        return sr.trust.chain[0]
    check = check_token(rec.last.token, b"", extra_certs=rec.validation.x509_certificates())
    return check.info.signer if check.info else None


def _check_stamp(
    stamp: Stamp,
    leaf: bytes,
    kept: list[x509.Certificate],
    result: EvidenceResult,
    kind: str,
    k: int,
    i: int,
) -> tuple[EvidenceResult, TokenInfo | None]:
    """``result`` with the stamp's findings, and its token's details (None: it stops)."""
    where = f"chain {k}, timestamp {i}"
    not_covered = "DATA_NOT_COVERED" if kind == "initial" else "RENEWAL_NOT_COVERED"
    if stamp.reduced is None:
        root = leaf
    else:
        if leaf not in stamp.reduced[0]:
            what = "the data's hash" if kind == "initial" else "the renewed hash"
            missing = f"{where}: {what} is not in the reduced hash tree"
            return _broken(result, not_covered, missing), None
        try:
            root = hashtree.root_of(stamp.hash_algorithm, stamp.reduced)
        except hashtree.HashTreeError as e:
            return _broken(result, "TREE_MISMATCH", f"{where}: {e}"), None
    check = check_token(stamp.token, root, extra_certs=kept, prehashed=True)
    info = check.info
    for code, message in check.problems:
        if code == "TIMESTAMP_IMPRINT_MISMATCH":
            if stamp.reduced is None:
                why = (not_covered, f"{where}: the timestamp does not cover this hash")
            else:
                why = ("TREE_MISMATCH", f"{where}: the tree root is not the imprint")
            return _broken(result, *why), None
        if code == "TIMESTAMP_TSA_CERT_MISSING":
            result = _unprovable(result, "TSA_CERT_MISSING", f"{where}: {message}")
            continue
        return _broken(result, "TOKEN_INVALID", f"{where}: {message}"), None
    if info is not None and info.hash_algorithm != stamp.hash_algorithm:
        mixed = f"{where}: the imprint is {info.hash_algorithm}, the chain {stamp.hash_algorithm}"
        return _broken(result, "HASH_MISMATCH", mixed), None
    return result, info


def _evaluate(policy: TrustPolicy, info: TokenInfo) -> TrustResult:
    from pki.chain import evaluate_chain

    assert info.signer is not None
    return evaluate_chain(info.signer, policy, at=info.gen_time, extra_certs=info.certificates)


def _judge_trust(result: EvidenceResult, trust: TrustResult, index: int) -> EvidenceResult:
    if trust.indication is TrustIndication.VALID:
        return result
    first = next((f for f in trust.findings if not f.note), None)
    why = f"{first.code}: {first.message}" if first else trust.indication.value
    if first is not None and first.code == "CERT_REVOKED":
        return _broken(result, "TSA_REVOKED", f"timestamp {index}: {why}")
    return _unprovable(result, "TSA_UNTRUSTED", f"timestamp {index}: {why}")


_LATE = "a renewal now proves existence only from the renewal on"


def overdue_reason(
    stamp: Stamp, signer: x509.Certificate | None, lifetimes: AlgorithmLifetimes, at: dt.datetime
) -> str | None:
    """Why the last stamp no longer proves anything at ``at`` (None: it still does), naming
    the algorithm that ran out and the renewal that was due (a weak hash needs a new tree)."""
    hash_end = lifetimes.hash_end(stamp.hash_algorithm)
    if hash_end is not None and at > hash_end:
        return (f"the last hash tree's {stamp.hash_algorithm} was secure until "
                f"{hash_end.isoformat()}: a hash-tree renewal was due before that; "
                f"{_LATE}")  # fmt: skip
    key_end = lifetimes.certificate_key_end(signer) if signer is not None else None
    if key_end is not None and at > key_end:
        assert signer is not None
        family, bits = key_kind(signer)
        return (f"the last TSA's {family}-{bits} key was secure until {key_end.isoformat()}: "
                "a timestamp renewal by a TSA with a stronger key was due before that; "
                f"{_LATE}")  # fmt: skip
    return None


def algorithms_end(
    stamp: Stamp, signer: x509.Certificate | None, lifetimes: AlgorithmLifetimes
) -> dt.datetime | None:
    """Until when a stamp's hash tree and TSA signature key stay secure."""
    key_end = lifetimes.certificate_key_end(signer) if signer is not None else None
    return earliest(lifetimes.hash_end(stamp.hash_algorithm), key_end)


def _valid_until(
    stamp: Stamp,
    info: TokenInfo,
    chain: list[x509.Certificate | None],
    lifetimes: AlgorithmLifetimes,
) -> dt.datetime | None:
    """When a stamp must have been renewed: its algorithms' end, or the first expiry of its
    TSA chain (validation data for it would not be published any more)."""
    expiries = [c.not_valid_after_utc for c in chain if c is not None]
    return earliest(algorithms_end(stamp, info.signer, lifetimes), *expiries)


def _tsa_name(info: TokenInfo) -> str | None:
    return info.signer.subject.rfc4514_string() if info.signer else info.tsa_name


# The verdict is built as the frozen result itself, by copying: its fields are listed once.


def _noted(result: EvidenceResult, code: str, message: str) -> EvidenceResult:
    return replace(result, findings=(*result.findings, (code, message)))


def _broken(result: EvidenceResult, code: str, message: str) -> EvidenceResult:
    return replace(_noted(result, code, message), status=EvidenceStatus.BROKEN, proven_time=None)


def _unprovable(result: EvidenceResult, code: str, message: str) -> EvidenceResult:
    noted = _noted(result, code, message)
    if result.status is EvidenceStatus.PROVEN:
        return replace(noted, status=EvidenceStatus.NOT_PROVABLE)
    return noted
