"""Signed seed objects, their covered byte ranges, and structured mutations of signed files.

Shared by the property tests (``tests/property``), the tamper matrix
(``tests/integration/test_hardening.py``) and ``scripts/fuzz.py``.

A *covered range* is a span of file bytes inside a value that goes into a signature's MAC
stream: the value bytes of every element listed in Data Elements Signed (recursively through
sequences; for encapsulated values the fragment payloads) and of the signature item's own
MAC-covered elements. Changing any byte there must make that signature not VALID.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dsig.encoding.tags import parse_location
from dsig.encoding.values import UNDEFINED
from dsig.encoding.walk import is_signable_tag
from dsig.encoding.writer import Encoding, save
from dsig.operations.signer import SignOptions, add_signature
from dsig.signature.mac_stream import SIGNATURE_ITEM_EXCLUDED
from tests.helpers import dicom_factory
from tokens.api import KeyProvider
from tokens.registry import open_key_provider


@dataclass(frozen=True)
class Covered:
    """File bytes [start, end) inside a value covered by signature number ``sig`` (0-based, in
    find_signatures order); ``tag`` is the element holding them."""

    start: int
    end: int
    sig: int
    tag: int


def open_key(key: Path, cert: Path) -> KeyProvider:
    return open_key_provider(str(key), cert=cert, password=None)


def sample_path(name: str) -> Path:
    return dicom_factory.sample(name)


#: Seed objects of the tamper matrix and the fuzzers: (name, builder(out) -> Path, item locations
#: to sign besides the main data set).
SEEDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ct": ("CT_small.dcm", ()),
    "jpeg": ("JPEG-lossy.dcm", ()),
    "ecg": ("waveform_ecg.dcm", ()),
    "sr_nested": ("sr_nested", (dicom_factory.SR_NESTED_ITEM,)),
}


def seed_source(name: str, workdir: Path) -> Path:
    """The unsigned source file of a seed."""
    source, _items = SEEDS[name]
    if source == "sr_nested":
        return dicom_factory.sr_with_nested_item(workdir / f"{name}.src.dcm")
    return sample_path(source)


def make_signed(name: str, workdir: Path, key: KeyProvider) -> Path:
    """Sign a seed (items first, then the main data set) and write it explicit VR LE as read."""
    from dsig.encoding.reader import read_dicom

    _source, items = SEEDS[name]
    ds = read_dicom(seed_source(name, workdir))
    for location in items:
        add_signature(ds, key, SignOptions(), location=parse_location(location))
    add_signature(ds, key, SignOptions())
    out = workdir / f"{name}.signed.dcm"
    save(ds, out, Encoding(str(ds.file_meta.TransferSyntaxUID)))
    return out


#: VRs whose explicit VR LE header has a 32-bit length.
_LONG = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_ITEM, _ITEM_DELIM, _SEQ_DELIM = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


@dataclass
class Node:
    """One element of an explicit VR LE file: value bytes [start, end) of the file; ``items``
    for sequences, ``fragments`` (payload spans) for encapsulated values."""

    vr: bytes
    start: int
    end: int
    items: list[dict[int, Node]] | None = None
    fragments: list[tuple[int, int]] | None = None


def _u16(data: bytes, pos: int) -> int:
    return int(struct.unpack_from("<H", data, pos)[0])


def _u32(data: bytes, pos: int) -> int:
    return int(struct.unpack_from("<I", data, pos)[0])


def _tag(data: bytes, pos: int) -> int:
    return _u16(data, pos) << 16 | _u16(data, pos + 2)


def _parse_level(data: bytes, pos: int, end: int) -> tuple[dict[int, Node], int]:
    """Elements from ``pos`` until ``end`` or an item delimiter (explicit VR LE only)."""
    level: dict[int, Node] = {}
    while pos + 8 <= end:
        tag = _tag(data, pos)
        if tag == _ITEM_DELIM:
            return level, pos + 8
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG:
            length, vstart = _u32(data, pos + 8), pos + 12
        else:
            length, vstart = _u16(data, pos + 6), pos + 8
        if vr == b"SQ":
            items: list[dict[int, Node]] = []
            p = vstart
            seq_end = None if length == UNDEFINED else vstart + length
            while seq_end is None or p < seq_end:
                itag, ilen = _tag(data, p), _u32(data, p + 4)
                if itag == _SEQ_DELIM:
                    p += 8
                    break
                if itag != _ITEM:
                    raise ValueError(f"not an item at {p}")
                if ilen == UNDEFINED:
                    sub, p = _parse_level(data, p + 8, len(data))
                else:
                    sub, _ = _parse_level(data, p + 8, p + 8 + ilen)
                    p = p + 8 + ilen
                items.append(sub)
            level[tag] = Node(vr, vstart, p, items=items)
            pos = p
        elif length == UNDEFINED:
            fragments = []
            p = vstart
            while True:
                itag, ilen = _tag(data, p), _u32(data, p + 4)
                p += 8
                if itag == _SEQ_DELIM:
                    break
                fragments.append((p, p + ilen))
                p += ilen
            level[tag] = Node(vr, vstart, p, fragments=fragments)
            pos = p
        else:
            level[tag] = Node(vr, vstart, vstart + length)
            pos = vstart + length
    return level, pos


def parse_explicit_le(data: bytes) -> dict[int, Node]:
    """The data set of a Part 10 explicit VR little endian file, as a tree of byte spans."""
    pos = 132
    while _u16(data, pos) == 0x0002:
        vr = data[pos + 4 : pos + 6]
        pos += 12 + _u32(data, pos + 8) if vr in _LONG else 8 + _u16(data, pos + 6)
    return _parse_level(data, pos, len(data))[0]


def _signable(tag: int, node: Node) -> bool:
    return is_signable_tag(tag) and node.vr != b"UN"


def _spans(tag: int, node: Node) -> Iterator[tuple[int, int, int]]:
    if node.items is not None:
        for item in node.items:
            for sub in sorted(item):
                if _signable(sub, item[sub]):
                    yield from _spans(sub, item[sub])
    elif node.fragments is not None:
        for start, end in node.fragments:
            if end > start:
                yield start, end, tag
    elif node.end > node.start:
        yield node.start, node.end, tag


def levels(level: dict[int, Node]) -> Iterator[dict[int, Node]]:
    """Data-set levels in dsig.signature.model.iter_levels order."""
    yield level
    for tag in sorted(level):
        if tag in (0xFFFAFFFA, 0x4FFE0001, 0x04000561) or tag >> 16 < 0x0008:
            continue
        for item in level[tag].items or ():
            yield from levels(item)


def covered_ranges(path: Path) -> list[Covered]:
    """Covered value ranges of every signature of an explicit VR LE file (byte-level oracle,
    independent of pydicom and of dsig's own stream code)."""
    data = path.read_bytes()
    out: list[Covered] = []
    n = 0
    for level in levels(parse_explicit_le(data)):
        sigs = level.get(0xFFFAFFFA)
        if sigs is None:
            continue
        params = level[0x4FFE0001].items or []
        for item in sigs.items or []:
            mac_id = data[item[0x04000005].start : item[0x04000005].end]
            match = next(
                p for p in params if data[p[0x04000005].start : p[0x04000005].end] == mac_id
            )
            des = match[0x04000020]
            raw = data[des.start : des.end]
            signed = sorted({_u16(raw, i) << 16 | _u16(raw, i + 2) for i in range(0, len(raw), 4)})
            for tag in signed:
                if tag in level:
                    out += [Covered(s, e, n, t) for s, e, t in _spans(tag, level[tag])]
            for tag in sorted(item):
                if tag not in SIGNATURE_ITEM_EXCLUDED and _signable(tag, item[tag]):
                    out += [Covered(s, e, n, t) for s, e, t in _spans(tag, item[tag])]
            n += 1
    return out


# --- structured mutations ---------------------------------------------------------------------


def flip_bit(data: bytes, pos: int, bit: int = 0) -> bytes:
    b = bytearray(data)
    b[pos] ^= 1 << bit
    return bytes(b)


def truncate(data: bytes, length: int) -> bytes:
    return data[:length]


def element_headers(data: bytes) -> list[int]:
    """Offsets of plausible explicit VR LE element headers (tag + 2 uppercase VR letters)."""
    found = []
    for i in range(132, len(data) - 8):
        if (
            65 <= data[i + 4] <= 90
            and 65 <= data[i + 5] <= 90
            and data[i + 1] in (0x00, 0x7F, 0xFF, 0x04, 0x4F, 0x30)
        ):
            found.append(i)
    return found


def corrupt_length(data: bytes, header: int, value: int) -> bytes:
    """Overwrite the length field of the explicit VR LE header at ``header``."""
    b = bytearray(data)
    vr = bytes(b[header + 4 : header + 6])
    if vr in (
        b"OB",
        b"OW",
        b"OF",
        b"OD",
        b"OL",
        b"OV",
        b"SQ",
        b"UN",
        b"UT",
        b"UC",
        b"UR",
        b"SV",
        b"UV",
    ):
        struct.pack_into("<I", b, header + 8, value & 0xFFFFFFFF)
    else:
        struct.pack_into("<H", b, header + 6, value & 0xFFFF)
    return bytes(b)


ITEM = b"\xfe\xff\x00\xe0"


def item_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of defined-length items (FFFE,E000 + length) that fit in the file."""
    spans = []
    pos = data.find(ITEM, 132)
    while pos != -1:
        if pos + 8 <= len(data):
            length = struct.unpack_from("<I", data, pos + 4)[0]
            if length != UNDEFINED and pos + 8 + length <= len(data):
                spans.append((pos, pos + 8 + length))
        pos = data.find(ITEM, pos + 1)
    return spans


def swap_items(data: bytes, a: tuple[int, int], b: tuple[int, int]) -> bytes:
    """Exchange two non-overlapping byte spans (e.g. two sequence items)."""
    if a[0] > b[0]:
        a, b = b, a
    if a[1] > b[0]:
        return data
    return data[: a[0]] + data[b[0] : b[1]] + data[a[1] : b[0]] + data[a[0] : a[1]] + data[b[1] :]


def duplicate_span(data: bytes, span: tuple[int, int]) -> bytes:
    """Insert a copy of a span right after it (e.g. a duplicated signature item)."""
    return data[: span[1]] + data[span[0] : span[1]] + data[span[1] :]


#: Transfer syntaxes a meta header may be made to name (issue 13: the meta governs).
TRANSFER_SYNTAXES = (
    b"1.2.840.10008.1.2", b"1.2.840.10008.1.2.1", b"1.2.840.10008.1.2.2",
    b"1.2.840.10008.1.2.1.99", b"1.2.840.10008.1.2.4.50",
)  # fmt: skip
_META_TS = b"\x02\x00\x10\x00UI"
_SIGNER_CERT = b"\x00\x04\x15\x01OB"  # (0400,0115) Certificate of Signer


def retarget_encoding(data: bytes, syntax: bytes) -> bytes:
    """The meta header's Transfer Syntax UID replaced by ``syntax`` (NUL-padded to the stored
    length, so no other length changes): the data set stays in its real encoding."""
    pos = data.find(_META_TS, 132)
    if pos == -1:
        return data
    length = _u16(data, pos + 6)
    if len(syntax) > length:
        return data
    value = syntax + b"\x00" * (length - len(syntax))
    return data[: pos + 8] + value + data[pos + 8 + length :]


def insert_un(data: bytes, at: int, tag: int, value: bytes) -> bytes:
    """An explicit VR UN element (``tag``, ``value``) inserted at byte ``at``."""
    header = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + b"UN\x00\x00"
    return data[:at] + header + struct.pack("<I", len(value)) + value + data[at:]


def _enclosing_lengths(data: bytes, pos: int, end: int, target: int, out: list[int]) -> int:
    """Collect the offsets of the 32-bit length fields of defined-length sequences and
    items whose value holds byte ``target`` (explicit VR LE); returns where the level ends."""
    while pos + 8 <= end:
        tag = _tag(data, pos)
        if tag == _ITEM_DELIM:
            return pos + 8
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG:
            length, vstart = _u32(data, pos + 8), pos + 12
        else:
            length, vstart = _u16(data, pos + 6), pos + 8
        if vr == b"SQ":
            seq_end = None if length == UNDEFINED else vstart + length
            if seq_end is not None and vstart <= target < seq_end:
                out.append(pos + 8)
            p = vstart
            while seq_end is None or p < seq_end:
                itag, ilen = _tag(data, p), _u32(data, p + 4)
                if itag == _SEQ_DELIM:
                    p += 8
                    break
                if itag != _ITEM:
                    raise ValueError(f"not an item at {p}")
                if ilen == UNDEFINED:
                    p = _enclosing_lengths(data, p + 8, len(data), target, out)
                else:
                    if p + 8 <= target < p + 8 + ilen:
                        out.append(p + 4)
                    _enclosing_lengths(data, p + 8, p + 8 + ilen, target, out)
                    p = p + 8 + ilen
            pos = p
        elif length == UNDEFINED:
            p = vstart
            while _tag(data, p) != _SEQ_DELIM:
                p += 8 + _u32(data, p + 4)
            pos = p + 8
        else:
            pos = vstart + length
    return pos


def replace_long_value(data: bytes, header: int, value: bytes) -> bytes:
    """The long-VR element whose header starts at ``header`` given ``value``, the lengths of
    the defined-length sequences and items around it adjusted (explicit VR LE files): the
    file stays well formed, only that value changes."""
    old = _u32(data, header + 8)
    delta = len(value) - old
    fields: list[int] = []
    try:
        meta_end = 132
        while _u16(data, meta_end) == 0x0002:
            vr = data[meta_end + 4 : meta_end + 6]
            meta_end += (
                12 + _u32(data, meta_end + 8) if vr in _LONG else 8 + _u16(data, meta_end + 6)
            )
        _enclosing_lengths(data, meta_end, len(data), header, fields)
    except (ValueError, struct.error):
        fields = []  # not parseable (an earlier mutation): the element alone changes
    out = bytearray(data)
    for at in fields:
        struct.pack_into("<I", out, at, _u32(data, at) + delta)
    return (
        bytes(out[: header + 8])
        + struct.pack("<I", len(value))
        + value
        + bytes(out[header + 12 + old :])
    )


def certificate_bag(data: bytes, copies: int) -> bytes:
    """The Certificate of Signer value repeated ``copies`` times (one DER certificate
    followed by look-alike bytes: the signer is unreadable), the lengths updated."""
    pos = data.find(_SIGNER_CERT, 132)
    if pos == -1 or pos + 12 > len(data):
        return data
    length = _u32(data, pos + 8)
    value = data[pos + 12 : pos + 12 + length]
    return replace_long_value(data, pos, value * copies)


_CERTIFIED_TIMESTAMP = b"\x00\x04\x10\x03OB"  # (0400,0310) Certified Timestamp
_RINGS: dict[tuple[bytes, int], list[bytes]] = {}


def look_alike_ring(name_der: bytes, count: int) -> list[bytes]:
    """``count`` CA certificates (DER) all named ``name_der`` (a DER Name), each signed by the
    next one's key: a ring that multiplies path-building work unless bounded (issue 13)."""
    key = (name_der, count)
    if key not in _RINGS:
        from cryptography.hazmat.primitives.asymmetric import ec

        keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(count)]
        _RINGS[key] = [
            _ca_certificate(name_der, k, keys[(i + 1) % count], serial=i + 1)
            for i, k in enumerate(keys)
        ]
    return _RINGS[key]


def _ca_certificate(name_der: bytes, key: object, signer: object, *, serial: int) -> bytes:
    """A CA certificate named ``name_der`` (subject and issuer, the exact encoding) for the
    EC ``key``, signed by the EC ``signer`` (built with asn1crypto: cryptography cannot take
    a DER name)."""
    import datetime as dt

    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    name = asn1_x509.Name.load(name_der)
    spki = asn1_keys.PublicKeyInfo.load(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    validity = {"not_before": asn1_x509.Time({"utc_time": now - dt.timedelta(days=1)}),
                "not_after": asn1_x509.Time({"utc_time": now + dt.timedelta(days=365)})}  # fmt: skip
    ca = asn1_x509.Extension({"extn_id": "basic_constraints", "critical": True,
                              "extn_value": {"ca": True}})  # fmt: skip
    tbs = asn1_x509.TbsCertificate({
        "version": "v3", "serial_number": serial, "signature": {"algorithm": "sha256_ecdsa"},
        "issuer": name, "validity": validity, "subject": name,
        "subject_public_key_info": spki, "extensions": [ca],
    })  # fmt: skip
    signature = signer.sign(tbs.dump(), ec.ECDSA(hashes.SHA256()))
    cert = asn1_x509.Certificate({"tbs_certificate": tbs, "signature_value": signature,
                                  "signature_algorithm": {"algorithm": "sha256_ecdsa"}})  # fmt: skip
    der: bytes = cert.dump()
    return der


def token_certificate_bag(data: bytes, copies: int) -> bytes:
    """The first Certified Timestamp's token with ``copies`` look-alikes of its TSA's issuer
    added to its certificates (outside the MAC and the token signature: it still verifies)."""
    from asn1crypto import cms
    from asn1crypto import x509 as asn1_x509

    pos = data.find(_CERTIFIED_TIMESTAMP, 132)
    if pos == -1 or pos + 12 > len(data):
        return data
    length = _u32(data, pos + 8)
    value = data[pos + 12 : pos + 12 + length]
    try:
        info = cms.ContentInfo.load(value.rstrip(b"\x00") if value.endswith(b"\x00") else value)
        signed = info["content"]
        certs = list(signed["certificates"] or [])
        issuer = certs[0].chosen["tbs_certificate"]["issuer"]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return data  # not a token this mutation understands (already mutated)
    ring = look_alike_ring(issuer.dump(), copies)
    bag = [*certs, *(cms.CertificateChoices({"certificate": asn1_x509.Certificate.load(d)})
                     for d in ring)]  # fmt: skip
    fields = {name: signed[name] for name, _spec, *_ in cms.SignedData._fields
              if signed[name].native is not None}  # fmt: skip
    fields["certificates"] = cms.CertificateSet(bag)
    token: bytes = cms.ContentInfo({"content_type": "signed_data",
                                    "content": cms.SignedData(fields)}).dump()  # fmt: skip
    if len(token) % 2:
        token += b"\x00"
    return replace_long_value(data, pos, token)


def random_mutation(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random structured mutation: (description, mutated bytes)."""
    kind = rng.choice(("flip", "flip", "byte", "truncate", "length", "swap", "duplicate", "splice",
                       "encoding", "un", "certbag", "tokenbag"))  # fmt: skip
    if kind == "encoding":
        syntax = rng.choice(TRANSFER_SYNTAXES)
        return f"encoding {syntax.decode()}", retarget_encoding(data, syntax)
    if kind == "un":
        headers = element_headers(data) or [len(data)]
        at = rng.choice(headers)
        tag = rng.choice((0x00102000, 0x00324000, 0x20500020, 0x7FE00010, 0x00091010))
        value = rng.choice((b"INVERSE ", b"Patient has no fracture", b"\xfe\xff\x00\xe0" * 4))
        return f"un {tag:08x} at {at}", insert_un(data, at, tag, value)
    if kind == "tokenbag" and _CERTIFIED_TIMESTAMP in data:
        copies = rng.randrange(4, 16)
        return f"tokenbag x{copies}", token_certificate_bag(data, copies)
    if kind == "certbag":
        copies = rng.randrange(2, 12)
        return f"certbag x{copies}", certificate_bag(data, copies)
    if kind == "flip":
        pos = rng.randrange(len(data))
        return f"flip {pos}", flip_bit(data, pos, rng.randrange(8))
    if kind == "byte":
        pos = rng.randrange(len(data))
        mutated = bytearray(data)
        mutated[pos] = rng.choice((0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        return f"byte {pos}", bytes(mutated)
    if kind == "truncate":
        n = rng.randrange(len(data))
        return f"truncate {n}", truncate(data, n)
    if kind == "length":
        headers = element_headers(data)
        if headers:
            h = rng.choice(headers)
            v = rng.choice(
                (0, 1, 2, 3, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, len(data), rng.randrange(1 << 16))
            )
            return f"length {h}={v}", corrupt_length(data, h, v)
    spans = item_spans(data)
    if kind == "swap" and len(spans) >= 2:
        a, b = rng.sample(spans, 2)
        return f"swap {a} {b}", swap_items(data, a, b)
    if kind == "duplicate" and spans:
        s = rng.choice(spans)
        return f"duplicate {s}", duplicate_span(data, s)
    pos = rng.randrange(len(data))
    chunk = data[rng.randrange(len(data)) :][: rng.randrange(1, 64)]
    return f"splice {pos}", data[:pos] + chunk + data[pos:]
