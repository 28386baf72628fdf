"""Parsed, read-only views of the signature attributes at one level of the data set."""

from __future__ import annotations

import datetime as dt
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from dsig.encoding.der import (
    strip_der_pad as strip_der_pad,  # re-exported: callers import it from here
)
from dsig.encoding.limits import (
    DEFAULT_LIMITS,
    LimitExceededError,
    ParseLimits,
    check_signature_count,
)
from dsig.encoding.tags import ItemPath, ItemStep
from dsig.encoding.values import raw_text, sequence_items, stored
from dsig.encoding.walk import Walks
from dsig.errors import DicomFormatError, SignatureNotFoundError

DIGITAL_SIGNATURES_SEQUENCE = 0xFFFAFFFA
MAC_PARAMETERS_SEQUENCE = 0x4FFE0001
ORIGINAL_ATTRIBUTES_SEQUENCE = 0x04000561
MAC_ID_NUMBER = 0x04000005
MAC_TRANSFER_SYNTAX = 0x04000010
MAC_ALGORITHM = 0x04000015
DATA_ELEMENTS_SIGNED = 0x04000020
SIGNATURE_UID = 0x04000100
SIGNATURE_DATETIME = 0x04000105
CERTIFICATE_TYPE = 0x04000110
CERTIFICATE_OF_SIGNER = 0x04000115
SIGNATURE = 0x04000120
TIMESTAMP_TYPE = 0x04000305
CERTIFIED_TIMESTAMP = 0x04000310
PURPOSE_SEQUENCE = 0x04000401


def sequence_datasets(level: Dataset, tag: int) -> list[Dataset]:
    """Items of a signature-related sequence; DicomFormatError when the element is not a
    sequence (a hostile file may give (FFFA,FFFA) or (4FFE,0001) any VR)."""
    items = sequence_items(level, tag)
    if not all(isinstance(item, Dataset) for item in items):
        raise DicomFormatError(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) is not a sequence")
    return items


def raw_bytes(ds: Dataset, tag: int) -> bytes | None:
    """Stored value bytes of a binary element, without converting the element in place."""
    if tag not in ds:
        return None
    elem = stored(ds, tag)
    value = elem.value
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if value is None:
        return b""
    raise DicomFormatError(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) is not binary")


def raw_ushort(ds: Dataset, tag: int) -> int | None:
    """A US value (first one), read from the stored bytes."""
    if tag not in ds:
        return None
    elem = stored(ds, tag)
    value = elem.value
    if isinstance(value, bytes | bytearray):
        if len(value) < 2:
            raise DicomFormatError(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) is empty")
        little = not isinstance(elem, RawDataElement) or elem.is_little_endian
        return int(struct.unpack("<H" if little else ">H", bytes(value[:2]))[0])
    if isinstance(value, int):
        return value
    if isinstance(value, list | tuple) and value and isinstance(value[0], int):
        return int(value[0])
    raise DicomFormatError(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) is not US")


def raw_tags(ds: Dataset, tag: int) -> list[int]:
    """An AT value (Data Elements Signed) as a list of ints."""
    if tag not in ds:
        raise DicomFormatError("Data Elements Signed (0400,0020) is missing")
    elem = stored(ds, tag)
    value = elem.value
    if value is None or value == b"":  # an empty list: dcmsign signs nothing but its item
        return []
    if isinstance(value, bytes | bytearray):
        if len(value) % 4:
            raise DicomFormatError("Data Elements Signed (0400,0020) has a bad length")
        little = not isinstance(elem, RawDataElement) or elem.is_little_endian
        fmt = "<HH" if little else ">HH"
        return [
            (g << 16) | e
            for g, e in (struct.unpack_from(fmt, value, i) for i in range(0, len(value), 4))
        ]
    if isinstance(value, int):
        return [int(value)]
    if isinstance(value, list | tuple):
        return [int(t) for t in value]
    raise DicomFormatError("Data Elements Signed (0400,0020) is not AT")


_DT = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?(?:([+-])(\d{2})(\d{2}))?$"
)


def parse_dicom_datetime(text: str) -> dt.datetime | None:
    """DICOM DT -> aware datetime (UTC when no offset is given); None if unparsable."""
    m = _DT.match(text.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, frac, sign, oh, om = m.groups()
    tz = dt.UTC
    if sign:
        delta = dt.timedelta(hours=int(oh), minutes=int(om))
        tz = dt.timezone(delta if sign == "+" else -delta)
    try:
        return dt.datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((frac or "0").ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError:
        return None


def format_dicom_datetime(moment: dt.datetime) -> str:
    """``YYYYMMDDHHMMSS.FFFFFF+ZZZZ`` as DCMTK writes Digital Signature DateTime."""
    return moment.strftime("%Y%m%d%H%M%S.%f%z")


@dataclass(frozen=True)
class SignatureRef:
    """Where one signature item sits: its level, the level's path, and its index."""

    level: Dataset
    path: ItemPath
    index: int
    ancestors: tuple[Dataset, ...]

    @property
    def item(self) -> Dataset:
        """The Digital Signatures Sequence item."""
        return sequence_datasets(self.level, DIGITAL_SIGNATURES_SEQUENCE)[self.index]

    @property
    def uid(self) -> str:
        """Digital Signature UID, or '' when missing."""
        return raw_text(self.item, SIGNATURE_UID) or ""


_NOT_DESCENDED = frozenset(
    {DIGITAL_SIGNATURES_SEQUENCE, MAC_PARAMETERS_SEQUENCE, ORIGINAL_ATTRIBUTES_SEQUENCE}
)


def iter_levels(
    ds: Dataset,
    path: ItemPath = (),
    ancestors: tuple[Dataset, ...] = (),
    *,
    walks: Walks | None = None,
) -> Iterator[tuple[Dataset, ItemPath, tuple[Dataset, ...]]]:
    """Every data-set level (root, then items depth-first), skipping Original Attributes and
    the signature sequences themselves. ``walks``: level walks to reuse (a fresh set otherwise)."""
    walks = walks if walks is not None else Walks()
    yield ds, path, ancestors
    walk = walks.of(ds, ancestors)
    for entry in walk.in_tag_order():
        tag = entry.tag
        if tag in _NOT_DESCENDED or tag >> 16 < 0x0008:
            continue
        if not entry.sequence and not walk.failed(tag):
            continue  # (an element's VR, hence being a sequence, survives its conversion)
        entry = walk.check(entry)
        if not entry.sequence:
            continue
        for i, item in enumerate(walk.items(entry)):
            yield from iter_levels(
                item, (*path, ItemStep(tag, i)), walk.child_ancestors, walks=walks
            )


def find_signatures(
    ds: Dataset, limits: ParseLimits = DEFAULT_LIMITS, *, walks: Walks | None = None
) -> list[SignatureRef]:
    """All signature items in the instance, main level first.

    Raises LimitExceededError past ``limits.max_signatures`` items or ``limits.max_depth``.
    ``walks``: level walks to reuse (a fresh set otherwise).
    """
    found = []
    for level, path, ancestors in iter_levels(ds, walks=walks):
        if len(path) > limits.max_depth:
            raise LimitExceededError(
                f"parser limit: sequences nested deeper than {limits.max_depth} levels "
                "(ParseLimits.max_depth)"
            )
        if DIGITAL_SIGNATURES_SEQUENCE in level:
            for i in range(len(sequence_datasets(level, DIGITAL_SIGNATURES_SEQUENCE))):
                found.append(SignatureRef(level, path, i, ancestors))
            check_signature_count(len(found), limits)
    return found


def mac_parameters(level: Dataset, mac_id: int) -> Dataset | None:
    """The MAC Parameters item with this MAC ID at the same level (DCMTK resolves per level)."""
    if MAC_PARAMETERS_SEQUENCE not in level:
        return None
    for item in sequence_datasets(level, MAC_PARAMETERS_SEQUENCE):
        if raw_ushort(item, MAC_ID_NUMBER) == mac_id:
            return item
    return None


def used_mac_ids(ds: Dataset) -> set[int]:
    """MAC ID Numbers used anywhere in the instance."""
    ids: set[int] = set()
    for level, _path, _anc in iter_levels(ds):
        for seq in (MAC_PARAMETERS_SEQUENCE, DIGITAL_SIGNATURES_SEQUENCE):
            if seq in level:
                for item in sequence_datasets(level, seq):
                    value = raw_ushort(item, MAC_ID_NUMBER)
                    if value is not None:
                        ids.add(value)
    return ids


def find_signature(ds: Dataset, uid: str, limits: ParseLimits = DEFAULT_LIMITS) -> SignatureRef:
    """The signature with Digital Signature UID ``uid`` (main level or nested)."""
    for ref in find_signatures(ds, limits):
        if ref.uid == uid:
            return ref
    raise SignatureNotFoundError(f"no signature with UID {uid}")


def signer_certificate(item: Dataset) -> tuple[x509.Certificate, bytes]:
    """(Certificate of Signer, stored Signature bytes) of a signature item.

    Raises DicomFormatError when either is missing or the certificate does not decode.
    """
    cert_bytes = raw_bytes(item, CERTIFICATE_OF_SIGNER)
    signature = raw_bytes(item, SIGNATURE)
    if not cert_bytes or not signature:
        raise DicomFormatError("the signature item lacks Certificate of Signer or Signature")
    try:
        cert = x509.load_der_x509_certificate(strip_der_pad(cert_bytes))
    except Exception:  # ValueError, InvalidVersion, ...: hostile DER fails in many ways
        raise DicomFormatError("Certificate of Signer is not a DER X.509 certificate") from None
    return cert, signature


def signature_value(cert: x509.Certificate, signature: bytes) -> bytes:
    """The Signature without its OB pad byte: RSA keeps the first k (modulus) bytes, (EC)DSA
    is cut at its DER length (dcmsign got both wrong for odd lengths)."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        k = (key.key_size + 7) // 8
        return signature[:k] if len(signature) > k else signature
    return strip_der_pad(signature)
