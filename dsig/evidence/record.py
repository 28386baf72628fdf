"""Evidence records as values: parse, build, extend (RFC 4998 §3, §5.2).

No I/O and no network here: :mod:`dsig.evidence.stamping` gets the timestamps,
:mod:`dsig.evidence.verify` checks records, :mod:`dsig.evidence.store` keeps them on disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asn1crypto import algos, cms, core

from dsig.errors import DsigError
from dsig.evidence.asn1 import (
    ArchiveTimeStampChain,
    EvidenceRecord,
    tlv,
)
from dsig.evidence.hashtree import TREE_HASHES, digest
from dsig.evidence.validation import ValidationData
from tokens.faults import BadInputError

#: Hashes a record may use: dsig's tree hashes and older ones other implementations wrote.
READABLE_HASHES = (*TREE_HASHES, "sha1", "sha224", "md5")


class RecordError(DsigError, BadInputError, ValueError):
    """Bytes that are not a well-formed RFC 4998 EvidenceRecord (one-line message)."""


@dataclass(frozen=True)
class Stamp:
    """One ArchiveTimeStamp: its exact DER, hash algorithm, reduced tree and token."""

    der: bytes
    hash_algorithm: str
    reduced: tuple[tuple[bytes, ...], ...] | None
    token: bytes


@dataclass(frozen=True)
class Record:
    """A parsed EvidenceRecord: chains of stamps (oldest first) and the kept validation data."""

    der: bytes
    digest_algorithms: tuple[str, ...]
    chains: tuple[tuple[Stamp, ...], ...]
    chain_ders: tuple[bytes, ...]
    validation: ValidationData

    @property
    def last(self) -> Stamp:
        """The newest ArchiveTimeStamp."""
        return self.chains[-1][-1]

    @property
    def stamps(self) -> list[Stamp]:
        """Every ArchiveTimeStamp, oldest first."""
        return [s for chain in self.chains for s in chain]

    def sequence_der(self, chains: int | None = None) -> bytes:
        """DER ArchiveTimeStampSequence of the first ``chains`` chains (default all)."""
        return tlv(
            0x30, b"".join(self.chain_ders[: len(self.chain_ders) if chains is None else chains])
        )


def _hash_name(algorithm: Any) -> str:
    name = str(algorithm["algorithm"].native)
    if name not in READABLE_HASHES:
        raise RecordError(f"unsupported hash algorithm {algorithm['algorithm'].dotted}")
    return name


def _token_imprint_algorithm(token: cms.ContentInfo) -> str:
    from asn1crypto import tsp

    econtent = token["content"]["encap_content_info"]["content"].contents
    return _hash_name(tsp.TSTInfo.load(econtent)["message_imprint"]["hash_algorithm"])


def parse(der: bytes) -> Record:
    """Decode an EvidenceRecord (strict DER framing); raises :class:`RecordError`."""
    try:
        er = EvidenceRecord.load(der, strict=True)
        if er["version"].native != 1:
            raise RecordError(f"EvidenceRecord version {er['version'].native}, not 1")
        algorithms = tuple(_hash_name(a) for a in er["digest_algorithms"])
        chains: list[tuple[Stamp, ...]] = []
        chain_ders: list[bytes] = []
        for chain in er["archive_time_stamp_sequence"]:
            stamps = []
            for ats in chain:
                token = ats["time_stamp"]
                if token["content_type"].native != "signed_data":
                    raise RecordError("an ArchiveTimeStamp's timeStamp is not a SignedData")
                if isinstance(ats["digest_algorithm"], core.Void):
                    name = _token_imprint_algorithm(token)
                else:
                    name = _hash_name(ats["digest_algorithm"])
                tree = ats["reduced_hashtree"]
                reduced = (
                    None
                    if isinstance(tree, core.Void)
                    else tuple(tuple(bytes(v.contents) for v in part) for part in tree)
                )
                stamps.append(Stamp(bytes(ats.dump()), name, reduced, bytes(token.dump())))
            if not stamps:
                raise RecordError("an empty ArchiveTimeStampChain")
            chains.append(tuple(stamps))
            chain_ders.append(bytes(chain.dump()))
        if not chains:
            raise RecordError("the record has no ArchiveTimeStamp")
        infos = er["crypto_infos"]
        validation = (
            ValidationData()
            if isinstance(infos, core.Void)
            else ValidationData.from_attributes(infos)
        )
    except RecordError:
        raise
    except Exception as e:  # asn1crypto parses lazily: any decoding failure means malformed
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RecordError(f"not an RFC 4998 evidence record: {first}") from None
    return Record(der, algorithms, tuple(chains), tuple(chain_ders), validation)


def archive_time_stamp(
    hash_algorithm: str, reduced: Sequence[Sequence[bytes]] | None, token: bytes
) -> bytes:
    """DER ArchiveTimeStamp with an explicit digestAlgorithm (hash parameters absent).

    Encoded by hand, with the token's bytes as they are: asn1crypto would load and re-dump
    the whole token for every record (most of the cost of renewing 10,000 records)."""
    if hash_algorithm not in READABLE_HASHES:
        raise RecordError(f"unsupported hash algorithm {hash_algorithm}")
    algorithm = algos.DigestAlgorithm({"algorithm": hash_algorithm}).contents
    body = tlv(0xA0, algorithm)  # digestAlgorithm [0] IMPLICIT AlgorithmIdentifier
    if reduced is not None:  # reducedHashtree [2] IMPLICIT SEQUENCE OF PartialHashtree
        parts = (tlv(0x30, b"".join(tlv(0x04, v) for v in part)) for part in reduced)
        body += tlv(0xA2, b"".join(parts))
    return tlv(0x30, body + token)


def build(
    chain_ders: Sequence[bytes], validation: ValidationData, algorithms: Sequence[str]
) -> bytes:
    """DER EvidenceRecord from already encoded chains, kept byte for byte (their bytes are
    hashed by later renewals); encoded by hand like :func:`archive_time_stamp`."""
    digests = b"".join(
        algos.DigestAlgorithm({"algorithm": a}).dump() for a in dict.fromkeys(algorithms)
    )
    body = tlv(0x02, b"\x01") + tlv(0x30, digests)  # version v1, digestAlgorithms
    attrs = validation.to_attributes()
    if attrs:  # cryptoInfos [0] IMPLICIT SEQUENCE OF Attribute
        body += tlv(0xA0, b"".join(a.dump() for a in attrs))
    return tlv(0x30, body + tlv(0x30, b"".join(chain_ders)))


def new_record(
    hash_algorithm: str,
    reduced: Sequence[Sequence[bytes]],
    token: bytes,
    validation: ValidationData,
) -> bytes:
    """A first record: one chain of one ArchiveTimeStamp."""
    return _with_chain([], validation, [], hash_algorithm, reduced, token)


def timestamp_renewal_leaf(record: Record) -> tuple[str, bytes]:
    """(hash, leaf) a timestamp renewal covers (§5.2): the hash of the timeStamp field (the
    DER ContentInfo) of the last ArchiveTimeStamp."""
    name = record.last.hash_algorithm
    return name, digest(name, record.last.token)


def rehash_leaf(record: Record, name: str, data_hash: bytes) -> bytes:
    """The leaf of a hash-tree renewal (§5.2): H(H(d) + H(ArchiveTimeStampSequence))."""
    return digest(name, data_hash, digest(name, record.sequence_der()))


def renew_timestamp(
    record: Record,
    reduced: Sequence[Sequence[bytes]] | None,
    token: bytes,
    validation: ValidationData,
) -> bytes:
    """The record with a new ArchiveTimeStamp appended to its last chain."""
    ats = archive_time_stamp(record.last.hash_algorithm, reduced, token)
    last = record.chain_ders[-1]
    content = _contents(last) + ats
    chains = [*record.chain_ders[:-1], tlv(0x30, content)]
    return build(chains, record.validation.merge(validation), record.digest_algorithms)


def renew_hash_tree(
    record: Record,
    name: str,
    reduced: Sequence[Sequence[bytes]],
    token: bytes,
    validation: ValidationData,
) -> bytes:
    """The record with a new ArchiveTimeStampChain (hash ``name``) appended."""
    merged = record.validation.merge(validation)
    return _with_chain(record.chain_ders, merged, record.digest_algorithms, name, reduced, token)


def _with_chain(
    chains: Sequence[bytes],
    validation: ValidationData,
    digest_algorithms: Sequence[str],
    name: str,
    reduced: Sequence[Sequence[bytes]],
    token: bytes,
) -> bytes:
    """A record of ``chains`` and a new chain of one ArchiveTimeStamp (hash ``name``)."""
    ats = archive_time_stamp(name, reduced, token)
    return build([*chains, tlv(0x30, ats)], validation, [*digest_algorithms, name])


def _contents(der: bytes) -> bytes:
    """The content octets of one DER element."""
    value = ArchiveTimeStampChain.load(der)
    return bytes(value.contents)
