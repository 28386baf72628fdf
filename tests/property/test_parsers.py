"""Hostile bytes into the parsers: the stream encoder, the signature-item parser, certificate
and timestamp parsing. Each returns a value or raises DsigError, never anything else."""

from __future__ import annotations

import datetime as dt
import io
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset

from dsig.encoding.limits import ParseLimits, check_inflated_size, deflated_data_offset
from dsig.encoding.values import iter_fragments, raw_text
from dsig.errors import DsigError
from dsig.operations.verifier import VerifyOptions, verify_dataset, verify_file
from dsig.results import FileResult, Indication
from dsig.signature.mac_stream import MacWriter, StreamEncoder, write_mac_stream
from dsig.signature.model import (
    find_signatures,
    mac_parameters,
    parse_dicom_datetime,
    raw_bytes,
    raw_tags,
    raw_ushort,
    strip_der_pad,
)
from tests.property import mutations
from tests.property.conftest import examples

_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
OPTIONS = VerifyOptions(integrity_only=True)
LONG = {"OB", "OW", "OF", "OD", "OL", "OV", "SQ", "UN", "UT", "UC", "UR", "SV", "UV"}
VRS = ["US", "SS", "UL", "SL", "FL", "FD", "AT", "OB", "OW", "UN", "CS", "UI", "LO", "DT", "PN",
       "IS", "DS", "LT", "UT", "OF"]  # fmt: skip


def element(tag: int, vr: str, value: bytes, *, little: bool = True) -> bytes:
    """An explicit VR element, value padded to even length (lengths stay consistent)."""
    if len(value) % 2:
        value += b"\x00"
    e = "<" if little else ">"
    head = struct.pack(f"{e}HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    if vr in LONG:
        return head + b"\x00\x00" + struct.pack(f"{e}I", len(value)) + value
    return head + struct.pack(f"{e}H", len(value) & 0xFFFF) + value[:0xFFFF]


def sequence(tag: int, items: list[bytes], *, little: bool = True) -> bytes:
    e = "<" if little else ">"
    body = b"".join(struct.pack(f"{e}HHI", 0xFFFE, 0xE000, len(i)) + i for i in items)
    return (
        struct.pack(f"{e}HH", tag >> 16, tag & 0xFFFF)
        + b"SQ\x00\x00"
        + struct.pack(f"{e}I", len(body))
        + body
    )


def parse(data: bytes, *, little: bool = True) -> Dataset:
    return read_dataset(io.BytesIO(data), is_implicit_VR=False, is_little_endian=little)


values = st.binary(max_size=64)
vrs = st.sampled_from(VRS)


# --- signature-item parser ----------------------------------------------------------------------


@settings(_SETTINGS, max_examples=examples(300))
@given(vr=vrs, value=values, little=st.booleans())
def test_raw_readers_return_or_raise_dsig_error(vr: str, value: bytes, little: bool) -> None:
    tag = 0x04000020
    ds = parse(element(tag, vr, value, little=little), little=little)
    for reader in (raw_ushort, raw_tags, raw_text, raw_bytes):
        try:
            reader(ds, tag)
        except DsigError:
            pass


@given(st.binary(max_size=300))
def test_der_and_datetime_helpers_total(data: bytes) -> None:
    assert isinstance(strip_der_pad(data), bytes)
    assert len(strip_der_pad(data)) <= len(data)
    moment = parse_dicom_datetime(data.decode("latin-1"))
    assert moment is None or isinstance(moment, dt.datetime)


@st.composite
def signature_levels(draw: st.DrawFn) -> bytes:
    """A level with MAC Parameters and Digital Signatures items whose every value is hostile."""

    def maybe(tag: int, default_vr: str) -> bytes:
        if draw(st.integers(0, 9)) == 0:
            return b""
        vr = default_vr if draw(st.booleans()) else draw(vrs)
        return element(tag, vr, draw(values))

    params = [
        maybe(0x04000005, "US") + maybe(0x04000010, "UI") + maybe(0x04000015, "CS")
        + maybe(0x04000020, "AT")
        for _ in range(draw(st.integers(0, 3)))
    ]  # fmt: skip
    sigs = [
        maybe(0x04000005, "US") + maybe(0x04000100, "UI") + maybe(0x04000105, "DT")
        + maybe(0x04000110, "CS") + maybe(0x04000115, "OB") + maybe(0x04000120, "OB")
        + maybe(0x04000305, "CS") + maybe(0x04000310, "OB")
        for _ in range(draw(st.integers(0, 3)))
    ]  # fmt: skip
    return (
        element(0x00100010, "PN", b"Hostile^Input")
        + sequence(0x4FFE0001, params)
        + sequence(0xFFFAFFFA, sigs)
    )


@settings(_SETTINGS, max_examples=examples(250))
@given(level=signature_levels())
def test_signature_items_from_hostile_values(level: bytes) -> None:
    ds = parse(level)
    ds.file_meta = Dataset()  # type: ignore[assignment]
    try:
        refs = find_signatures(ds)
        for ref in refs:
            _ = ref.uid
            mac_id = raw_ushort(ref.item, 0x04000005)
            if mac_id is not None:
                mac_parameters(ref.level, mac_id)
        result = verify_dataset(ds, OPTIONS)
    except DsigError:
        return
    assert isinstance(result, FileResult)
    assert all(s.integrity is not Indication.VALID for s in result.signatures)


# --- stream encoder -----------------------------------------------------------------------------


@st.composite
def hostile_levels(draw: st.DrawFn) -> tuple[bytes, bool]:
    little = draw(st.booleans())
    tags = sorted(set(draw(st.lists(st.integers(0x00080000, 0x7FE00010), max_size=8))))
    body = b""
    for tag in tags:
        kind = draw(st.integers(0, 5))
        if kind == 0:  # encapsulated value with hostile fragments (undefined length)
            e = "<" if little else ">"
            frags = draw(st.binary(max_size=80))
            body += (struct.pack(f"{e}HH", tag >> 16, tag & 0xFFFF) + b"OB\x00\x00"
                     + struct.pack(f"{e}I", 0xFFFFFFFF) + frags
                     + struct.pack(f"{e}HHI", 0xFFFE, 0xE0DD, 0))  # fmt: skip
        elif kind == 1:
            inner = element(0x00080100, draw(vrs), draw(values), little=little)
            body += sequence(tag, [inner] * draw(st.integers(0, 2)), little=little)
        else:
            body += element(tag, draw(vrs), draw(values), little=little)
    return body, little


@settings(_SETTINGS, max_examples=examples(250))
@given(level=hostile_levels())
def test_stream_encoder_on_hostile_elements(level: tuple[bytes, bool]) -> None:
    data, little = level
    try:
        ds = parse(data, little=little)
        tags = [int(t) for t in ds.keys()]
    except Exception:  # pydicom's own reader may refuse our garbage: not under test here
        return
    chunks: list[bytes] = []
    try:
        write_mac_stream(ds, tags, Dataset(), [lambda b: chunks.append(bytes(b))])
    except DsigError:
        return
    again: list[bytes] = []
    write_mac_stream(ds, tags, Dataset(), [lambda b: again.append(bytes(b))])
    assert b"".join(chunks) == b"".join(again)  # deterministic


@given(st.lists(st.binary(max_size=40), max_size=6))
def test_mac_writer_length_counts_every_byte(parts: list[bytes]) -> None:
    seen: list[bytes] = []
    out = MacWriter([lambda b: seen.append(bytes(b))])
    for p in parts:
        out.write(p)
    out.flush()
    assert out.length == len(b"".join(seen)) == sum(map(len, parts))
    StreamEncoder(out)  # constructible over any writer


@given(st.binary(max_size=200))
def test_fragment_iterator_total(data: bytes) -> None:
    try:
        for fragment in iter_fragments(data, 0x7FE00010):
            assert len(fragment) <= len(data)
    except DsigError:
        pass


@given(st.binary(max_size=400))
def test_deflate_probe_total(data: bytes) -> None:
    import tempfile

    with tempfile.NamedTemporaryFile() as f:
        f.write(b"\x00" * 128 + b"DICM" + data)
        f.flush()
        offset = deflated_data_offset(Path(f.name))
        if offset is not None:
            try:
                check_inflated_size(Path(f.name), offset, ParseLimits(max_inflated_bytes=1 << 16))
            except DsigError:
                pass


# --- certificates and timestamps ----------------------------------------------------------------


@pytest.fixture(scope="module")
def cert_offsets(seeds: dict[str, bytes]) -> tuple[int, int]:
    tree = mutations.parse_explicit_le(seeds["ct"])
    item = (tree[0xFFFAFFFA].items or [])[0]
    node = item[0x04000115]
    return node.start, node.end


@settings(_SETTINGS, max_examples=examples(80))
@given(pick=st.integers(0, 2**32 - 1), bit=st.integers(0, 7), stomp=st.booleans())
def test_mutated_signer_certificate(
    seeds: dict[str, bytes],
    cert_offsets: tuple[int, int],
    scratch: Path,
    pick: int,
    bit: int,
    stomp: bool,
) -> None:
    start, end = cert_offsets
    data = bytearray(seeds["ct"])
    pos = start + pick % (end - start)
    if stomp:  # overwrite a run of bytes (lengths inside the DER go wild)
        data[pos : min(end, pos + 8)] = b"\xff" * (min(end, pos + 8) - pos)
    else:
        data[pos] ^= 1 << bit
    scratch.write_bytes(bytes(data))
    result = verify_file(scratch, OPTIONS)
    assert result.error is None
    # The certificate is outside the MAC: a change that keeps the public key may stay VALID
    # for integrity (trust then fails on the broken certificate signature); never a crash.
    assert len(result.signatures) == 1


@pytest.fixture(scope="module")
def token_material(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    from tests.helpers.tsa import TimestampPki, make_token

    tpki = TimestampPki(tmp_path_factory.mktemp("tsa"))
    data = b"signature bytes to certify"
    import hashlib

    token = make_token(tpki.tsa, hash_algorithm="sha256", digest=hashlib.sha256(data).digest(),
                       certs=[tpki.tsa.cert])  # fmt: skip
    return token, data


@settings(_SETTINGS, max_examples=examples(150))
@given(pick=st.integers(0, 2**32 - 1), bit=st.integers(0, 7), cut=st.booleans())
def test_mutated_timestamp_token(
    token_material: tuple[bytes, bytes], pick: int, bit: int, cut: bool
) -> None:
    from dsig.timestamp import check_token, token_from_reply

    token, data = token_material
    pos = pick % len(token)
    mutated = (
        token[:pos]
        if cut
        else bytes(token[:pos]) + bytes([token[pos] ^ (1 << bit)]) + token[pos + 1 :]
    )
    result = check_token(mutated, data)  # a report, never an exception
    assert result is not None
    try:
        token_from_reply(mutated)
    except DsigError:
        pass
