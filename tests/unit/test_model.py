"""The signature-item parser: values read back exactly, whatever the encoding (hypothesis)."""

from __future__ import annotations

import datetime as dt
import io

import pydicom
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from dsig.encoding.writer import Encoding, write_dataset_file
from dsig.signature.model import (
    find_signatures,
    format_dicom_datetime,
    mac_parameters,
    parse_dicom_datetime,
    raw_tags,
    raw_ushort,
    strip_der_pad,
    used_mac_ids,
)

SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2"]


def _der_sequence(content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return b"\x30" + bytes([n]) + content
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\x30" + bytes([0x80 | len(length)]) + length + content


@given(st.binary(max_size=70000), st.booleans())
def test_strip_der_pad_cuts_exactly_the_der_value(content: bytes, pad: bool) -> None:
    der = _der_sequence(content)
    assert strip_der_pad(der + (b"\x00" if pad else b"")) == der


@given(st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2999, 1, 1)),
       st.integers(-12 * 60, 14 * 60))  # fmt: skip
def test_signature_datetime_round_trips_with_offset(moment: dt.datetime, minutes: int) -> None:
    aware = moment.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes)))
    text = format_dicom_datetime(aware)
    assert len(text) == 26
    assert parse_dicom_datetime(text) == aware


def _signed_level(mac_ids: list[int], tags: list[int]) -> Dataset:
    level = Dataset()
    level.PatientName = "X"
    params, sigs = [], []
    for mac_id in mac_ids:
        p = Dataset()
        p.add_new(0x04000005, "US", mac_id)
        p.add_new(0x04000015, "CS", "SHA256")
        p.add_new(0x04000020, "AT", tags)
        params.append(p)
        s = Dataset()
        s.add_new(0x04000005, "US", mac_id)
        s.add_new(0x04000100, "UI", f"1.2.3.{mac_id}")
        sigs.append(s)
    level.add_new(0x4FFE0001, "SQ", Sequence(params))
    level.add_new(0xFFFAFFFA, "SQ", Sequence(sigs))
    return level


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=4, unique=True),
    st.lists(st.integers(0x00080000, 0x7FE00010), min_size=1, max_size=6, unique=True),
    st.sampled_from(SYNTAXES),
)
def test_signature_items_parse_back_in_every_encoding(
    mac_ids: list[int], tags: list[int], syntax: str
) -> None:
    root = _signed_level(mac_ids, sorted(tags))
    root.SOPClassUID = "1.2.3"
    root.SOPInstanceUID = "1.2.3.4"
    root.ReferencedImageSequence = Sequence([_signed_level([7], [0x00100010])])
    root.file_meta = FileMetaDataset()
    root.file_meta.TransferSyntaxUID = UID(syntax)
    buf = io.BytesIO()
    write_dataset_file(root, buf, Encoding(syntax))
    buf.seek(0)
    ds = pydicom.dcmread(buf)
    refs = find_signatures(ds)
    assert [r.uid for r in refs] == [f"1.2.3.{m}" for m in mac_ids] + ["1.2.3.7"]
    assert used_mac_ids(ds) == {*mac_ids, 7}
    for mac_id in mac_ids:
        params = mac_parameters(ds, mac_id)
        assert params is not None
        assert raw_ushort(params, 0x04000005) == mac_id
        assert raw_tags(params, 0x04000020) == sorted(tags)
    nested = refs[-1]
    assert [s.tag for s in nested.path] == [0x00081140] and nested.ancestors == (ds,)
