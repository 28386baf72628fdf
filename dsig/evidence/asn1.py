"""RFC 4998 Evidence Record Syntax (ASN.1 module ERS, IMPLICIT TAGS) on asn1crypto's types.

Also the two attributes dsig keeps in ``cryptoInfos`` (RFC 4998 §3: "data useful in the
validation of the archiveTimeStampSequence"): the CAdES ``certValues`` and
``revocationValues`` of RFC 5126 §6.3.3/§6.3.4 (module with EXPLICIT TAGS).
"""

from __future__ import annotations

from typing import ClassVar

from asn1crypto import algos, cms, core, crl, ocsp
from asn1crypto import x509 as asn1_x509

#: id-aa-ets-certValues / id-aa-ets-revocationValues (RFC 5126).
CERT_VALUES_OID = "1.2.840.113549.1.9.16.2.23"
REVOCATION_VALUES_OID = "1.2.840.113549.1.9.16.2.24"

_Field = tuple[str, type, dict[str, object]] | tuple[str, type]


class PartialHashtree(core.SequenceOf):  # type: ignore[misc]
    """PartialHashtree ::= SEQUENCE OF OCTET STRING."""

    _child_spec = core.OctetString


class ReducedHashtree(core.SequenceOf):  # type: ignore[misc]
    """reducedHashtree: SEQUENCE OF PartialHashtree."""

    _child_spec = PartialHashtree


class Attribute(core.Sequence):  # type: ignore[misc]
    """Attribute ::= SEQUENCE { attrType OID, attrValues SET OF ANY } (values kept raw)."""

    _fields: ClassVar[list[_Field]] = [
        ("type", core.ObjectIdentifier),
        ("values", core.SetOf, {"spec": core.Any}),
    ]


class Attributes(core.SetOf):  # type: ignore[misc]
    """Attributes ::= SET SIZE (1..MAX) OF Attribute."""

    _child_spec = Attribute


class ArchiveTimeStamp(core.Sequence):  # type: ignore[misc]
    """ArchiveTimeStamp ::= SEQUENCE { digestAlgorithm [0], attributes [1],
    reducedHashtree [2] (all OPTIONAL), timeStamp ContentInfo }."""

    _fields: ClassVar[list[_Field]] = [
        ("digest_algorithm", algos.DigestAlgorithm, {"implicit": 0, "optional": True}),
        ("attributes", Attributes, {"implicit": 1, "optional": True}),
        ("reduced_hashtree", ReducedHashtree, {"implicit": 2, "optional": True}),
        ("time_stamp", cms.ContentInfo),
    ]


class ArchiveTimeStampChain(core.SequenceOf):  # type: ignore[misc]
    """ArchiveTimeStampChain ::= SEQUENCE OF ArchiveTimeStamp."""

    _child_spec = ArchiveTimeStamp


class ArchiveTimeStampSequence(core.SequenceOf):  # type: ignore[misc]
    """ArchiveTimeStampSequence ::= SEQUENCE OF ArchiveTimeStampChain."""

    _child_spec = ArchiveTimeStampChain


class DigestAlgorithms(core.SequenceOf):  # type: ignore[misc]
    """digestAlgorithms: SEQUENCE OF AlgorithmIdentifier."""

    _child_spec = algos.DigestAlgorithm


class CryptoInfos(core.SequenceOf):  # type: ignore[misc]
    """CryptoInfos ::= SEQUENCE SIZE (1..MAX) OF Attribute."""

    _child_spec = Attribute


class EncryptionInfo(core.Sequence):  # type: ignore[misc]
    """EncryptionInfo ::= SEQUENCE { encryptionInfoType OID, encryptionInfoValue ANY }."""

    _fields: ClassVar[list[_Field]] = [("type", core.ObjectIdentifier), ("value", core.Any)]


class EvidenceRecord(core.Sequence):  # type: ignore[misc]
    """EvidenceRecord ::= SEQUENCE { version INTEGER { v1(1) }, digestAlgorithms,
    cryptoInfos [0] OPTIONAL, encryptionInfo [1] OPTIONAL, archiveTimeStampSequence }."""

    _fields: ClassVar[list[_Field]] = [
        ("version", core.Integer),
        ("digest_algorithms", DigestAlgorithms),
        ("crypto_infos", CryptoInfos, {"implicit": 0, "optional": True}),
        ("encryption_info", EncryptionInfo, {"implicit": 1, "optional": True}),
        ("archive_time_stamp_sequence", ArchiveTimeStampSequence),
    ]


class CertificateValues(core.SequenceOf):  # type: ignore[misc]
    """CertificateValues ::= SEQUENCE OF Certificate (RFC 5126 §6.3.3)."""

    _child_spec = asn1_x509.Certificate


class CertificateLists(core.SequenceOf):  # type: ignore[misc]
    """SEQUENCE OF CertificateList."""

    _child_spec = crl.CertificateList


class BasicOcspResponses(core.SequenceOf):  # type: ignore[misc]
    """SEQUENCE OF BasicOCSPResponse."""

    _child_spec = ocsp.BasicOCSPResponse


class RevocationValues(core.Sequence):  # type: ignore[misc]
    """RevocationValues ::= SEQUENCE { crlVals [0], ocspVals [1], otherRevVals [2] }
    (all OPTIONAL, EXPLICIT tags: RFC 5126 §6.3.4)."""

    _fields: ClassVar[list[_Field]] = [
        ("crl_vals", CertificateLists, {"explicit": 0, "optional": True}),
        ("ocsp_vals", BasicOcspResponses, {"explicit": 1, "optional": True}),
        ("other_rev_vals", core.Any, {"explicit": 2, "optional": True}),
    ]


def tlv(tag: int, contents: bytes) -> bytes:
    """DER of one element: a one-byte ``tag`` (0x30 SEQUENCE, 0xA0 [0]...) and ``contents``."""
    n = len(contents)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + contents
