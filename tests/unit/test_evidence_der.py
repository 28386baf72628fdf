"""ArchiveTimeStamps and EvidenceRecords encoded by hand (dsig.evidence.record) are byte for
byte what asn1crypto encodes from the RFC 4998 module: each hash, with and without a reduced
tree, short and long lengths, one or two chains, with and without kept validation data."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms

from dsig.evidence.asn1 import ArchiveTimeStamp, ArchiveTimeStampSequence, EvidenceRecord, tlv
from dsig.evidence.record import RecordError, archive_time_stamp, build, parse
from dsig.evidence.validation import ValidationData
from tests.helpers.tsa import TimestampPki, make_token


def _reference(name: str, reduced: list[list[bytes]] | None, token: bytes) -> bytes:
    fields: dict[str, Any] = {
        "digest_algorithm": {"algorithm": name},
        "time_stamp": cms.ContentInfo.load(token),
    }
    if reduced is not None:
        fields["reduced_hashtree"] = reduced
    return bytes(ArchiveTimeStamp(fields).dump())


@pytest.mark.parametrize("name", ["sha256", "sha384", "sha512"])
def test_hand_encoding_equals_asn1crypto(tmp_path: Path, name: str) -> None:
    size = hashlib.new(name).digest_size
    token = make_token(TimestampPki(tmp_path).tsa, hash_algorithm=name, digest=b"\x07" * size)
    trees: list[list[list[bytes]] | None] = [
        None,
        [[b"\x01" * size]],
        [[b"\x01" * size, b"\x02" * size], [b"\x03" * size]],
        [[bytes([i]) * size] for i in range(40)],  # > 255 bytes: a two-byte length
    ]
    for tree in trees:
        assert archive_time_stamp(name, tree, token) == _reference(name, tree, token)


def test_unknown_hash_refused() -> None:
    with pytest.raises(RecordError, match="unsupported hash algorithm md4"):
        archive_time_stamp("md4", None, b"")


def _reference_record(chains: list[bytes], validation: ValidationData, names: list[str]) -> bytes:
    er = EvidenceRecord(
        {
            "version": 1,
            "digest_algorithms": [{"algorithm": a} for a in dict.fromkeys(names)],
            "archive_time_stamp_sequence": ArchiveTimeStampSequence.load(
                tlv(0x30, b"".join(chains))
            ),
        }
    )
    attrs = validation.to_attributes()
    if attrs:
        er["crypto_infos"] = attrs
    return bytes(er.dump(force=False))


def test_record_hand_encoding_equals_asn1crypto(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    from tests.helpers.pki_servers import make_crl

    tp = TimestampPki(tmp_path)
    token = make_token(tp.tsa, hash_algorithm="sha256", digest=b"\x07" * 32)
    certs = tuple(c.public_bytes(Encoding.DER) for c in (tp.tsa.cert, tp.intermediate.cert))
    crl = make_crl(tp.intermediate).public_bytes(Encoding.DER)
    chain = tlv(0x30, archive_time_stamp("sha256", [[b"\x01" * 32, b"\x02" * 32]], token))
    second = tlv(0x30, archive_time_stamp("sha512", [[b"\x03" * 64]], token))
    for validation in (ValidationData(), ValidationData(certs), ValidationData(certs, (crl,))):
        for chains, names in (([chain], ["sha256"]), ([chain, second], ["sha256", "sha512"])):
            der = build(chains, validation, [*names, names[0]])
            assert der == _reference_record(chains, validation, names)
            assert parse(der).validation == validation
