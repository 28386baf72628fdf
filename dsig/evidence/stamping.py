"""Getting archive timestamps: one RFC 3161 request per hash tree, for a whole study at once.

The TSA round trip is :func:`dsig.timestamp.tsa_client.request_timestamp` (the imprint is the tree
root itself); the new token is validated with :mod:`pki` when a TSA trust policy is given,
and its validation data is collected at that moment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from dsig.errors import DsigError
from dsig.evidence import hashtree, record
from dsig.evidence.validation import ValidationData, ValidationDataError, collect, policy_with
from dsig.timestamp import QueryOptions
from dsig.timestamp.tsa_client import TsaOptions, request_timestamp
from pki.policy import TrustPolicy
from pki.results import TrustIndication, TrustResult
from tokens.faults import BadInputError

#: Tree hashes a new record or renewal may use (the RFC 3161 imprints dsig requests).
STAMP_HASHES = ("sha256", "sha384", "sha512")


class EvidenceError(DsigError, BadInputError):
    """Evidence cannot be created or renewed (TSA, trust, inputs): exit 4."""


@dataclass(frozen=True)
class StampSettings:
    """Where and how to get timestamps, and what to keep with them.

    ``trust``: anchors for the TSA; when given, every new token must validate (its path is
    kept); ``online`` fetches the CRLs the TSA chain names; CRLs/OCSP responses in the policy
    are kept as they are.
    """

    urls: Sequence[str]
    query: QueryOptions = field(default_factory=QueryOptions)
    transport: TsaOptions = field(default_factory=TsaOptions)
    trust: TrustPolicy | None = None
    online: bool = False
    timeout: float = 10.0


@dataclass(frozen=True)
class RootStamp:
    """A token over a tree root with its validation data and certified time."""

    token: bytes
    time: dt.datetime
    tsa: str
    validation: ValidationData
    url: str


def tsa_policy(policy: TrustPolicy) -> TrustPolicy:
    """The policy a TSA certificate is validated under (the trust module's TSA rules:
    timeStamping EKU required, the document-signing EKU rule not applied)."""
    return policy.for_timestamp_authority()


def stamp_root(root: bytes, hash_algorithm: str, settings: StampSettings) -> RootStamp:
    """Timestamp ``root`` (imprint = root) and gather the validation data of the token."""
    from pki.chain import evaluate_chain

    if hash_algorithm not in STAMP_HASHES:
        raise EvidenceError(f"hash must be one of {', '.join(STAMP_HASHES)}, not {hash_algorithm}")
    query = dataclasses.replace(settings.query, hash_algorithm=hash_algorithm)
    stamp = request_timestamp(settings.urls, root, query, settings.transport, prehashed=True)
    info = stamp.info
    signer = info.signer
    if signer is None:
        raise EvidenceError("the TSA did not include its certificate (certReq) in the token")
    chain: list[x509.Certificate] = [signer, *(c for c in info.certificates if c != signer)]
    trust = settings.trust
    if trust is not None:
        if settings.online and not trust.online:  # the CRLs fetched are the ones kept
            trust = dataclasses.replace(trust, online=True)
        result = evaluate_chain(signer, tsa_policy(trust), at=info.gen_time,
                                extra_certs=info.certificates)  # fmt: skip
        _require_valid(result, "")
        chain = [*result.chain, *(c for c in chain if c not in result.chain)]
    try:
        validation = collect(chain, policy=trust, online=settings.online, timeout=settings.timeout)
    except ValidationDataError as e:
        raise EvidenceError(str(e)) from None
    if trust is not None:
        # what verify will do years later, offline: a record it could not prove is refused
        kept = tsa_policy(policy_with(trust, validation))
        result = evaluate_chain(signer, kept, at=info.gen_time, extra_certs=info.certificates)
        _require_valid(result, " with the validation data kept in the record")
    return RootStamp(
        stamp.token, info.gen_time, signer.subject.rfc4514_string(), validation, stamp.url
    )


def _require_valid(result: TrustResult, how: str) -> None:
    if result.indication is not TrustIndication.VALID:
        first = next((f for f in result.findings if not f.note), None)
        why = f"{first.code}: {first.message}" if first else result.indication.value
        raise EvidenceError(f"the TSA certificate did not validate{how} ({why})")


def create_records(
    files: Sequence[Path],
    settings: StampSettings,
    *,
    hash_algorithm: str = "sha256",
    progress: Callable[[int], None] | None = None,
) -> tuple[Iterator[bytes], RootStamp]:
    """One DER EvidenceRecord per file (same order), all under one timestamp. The records
    are built as they are consumed: a study's records (kilobytes each, the kept validation
    data in every one) need not be in memory at once."""
    if hash_algorithm not in STAMP_HASHES:
        raise EvidenceError(f"hash must be one of {', '.join(STAMP_HASHES)}, not {hash_algorithm}")
    leaves = []
    for n, path in enumerate(files, 1):
        try:
            leaves.append(hashtree.hash_file(path, hash_algorithm))
        except OSError as e:
            raise EvidenceError(f"cannot read {path}: {e.strerror or e}") from None
        if progress is not None:
            progress(n)
    stamped, reduced = stamp_leaves(leaves, hash_algorithm, settings)
    records = (
        record.new_record(hash_algorithm, tree, stamped.token, stamped.validation)
        for tree in reduced
    )
    return records, stamped


def stamp_leaves(
    leaves: Sequence[bytes], hash_algorithm: str, settings: StampSettings
) -> tuple[RootStamp, list[list[list[bytes]]]]:
    """One timestamp over the tree of ``leaves``: (the stamp, each leaf's reduced tree). A
    timestamp renewal's leaves are hashes of the last tokens, a hash-tree renewal's
    H(H(d) + H(ArchiveTimeStampSequence)) (RFC 4998 §5.2, :mod:`dsig.evidence.record`)."""
    root, reduced = hashtree.build(hash_algorithm, leaves)
    return stamp_root(root, hash_algorithm, settings), reduced
