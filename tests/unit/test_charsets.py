"""dsig's charset lookup gives pydicom's codecs (its default, warning mode), without warnings."""

from __future__ import annotations

import warnings

import pytest
from pydicom.charset import convert_encodings

from dsig.encoding.charsets import python_encodings

TERMS: list[str | list[str]] = [
    "",
    "ISO_IR 100",
    "ISO_IR 192",
    "GB18030",
    "ISO IR 100",
    "ISO-IR 144",
    "ISO_IR 999",
    "ISO 2022 IR 6",
    "ISO-2022-IR 87",
    "ISO.2022.IR.999",
    "latin_1",
    "utf8",
    "no such thing",
    ["", "ISO 2022 IR 87"],
    ["ISO 2022 IR 6", "ISO 2022 IR 87", "ISO 2022 IR 159"],
    ["ISO_IR 192", "ISO 2022 IR 87"],
    ["ISO 2022 IR 6", "ISO_IR 192"],
    ["ISO 2022 IR 6", "ISO IR 100", "bogus"],
]


@pytest.mark.parametrize("value", TERMS, ids=str)
def test_same_codecs_as_pydicom_and_a_note_where_pydicom_warns(value: str | list[str]) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expected = convert_encodings(value if isinstance(value, str) else list(value))
    pydicom_warned = len(caught)
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        encodings, notes = python_encodings(value)
    assert ours == []
    assert encodings == expected
    assert len(notes) == pydicom_warned, (notes, [str(w.message) for w in caught])


def test_a_note_shows_only_printable_ascii() -> None:
    _, notes = python_encodings(b"ISO_IR \x1b[31m\xff")
    assert len(notes) == 1 and "\x1b" not in notes[0] and "\xff" not in notes[0]


# --- values decoded without pydicom's warnings (issue 13) ------------------------------------

VALUES: list[tuple[str | list[str], bytes, str]] = [
    ("ISO_IR 100", b"M\xfcller^Hans", "PN"),
    ("ISO_IR 192", "Ωμέγα^Δ".encode(), "PN"),
    ("GB18030", "王^小东".encode("gb18030"), "LO"),
    (["", "ISO 2022 IR 87"], b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B", "PN"),
    (["", "ISO 2022 IR 149"], b"\x1b$)C\xc8\xab\x1b(B^\x1b$)C\xb1\xe6\xb5\xbf", "PN"),
    (["ISO 2022 IR 6", "ISO 2022 IR 100"], b"A\x1b-A\xe9\rB", "LT"),
    ("ISO_IR 6", b"plain ascii", "SH"),
]
BAD: list[tuple[str | list[str], bytes, str]] = [
    ("ISO_IR 192", b"Bad\xff\xfe^Name", "PN"),
    ("GB18030", b"Desc\x80\xff", "LO"),
    (["", "ISO 2022 IR 87"], b"Yamada^\x1b$B\xff\xff\x1b(B", "PN"),  # invalid JIS X 0208
    (["", "ISO 2022 IR 87"], b"A\x1b%Gunknown escape", "SH"),
]


def _pydicom(value: bytes, charset: str | list[str]) -> tuple[str, int]:
    from pydicom.charset import decode_bytes
    from pydicom.valuerep import TEXT_VR_DELIMS

    encodings = python_encodings(charset)[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        return decode_bytes(value, encodings, TEXT_VR_DELIMS), len(caught)


@pytest.mark.parametrize(("charset", "value", "vr"), VALUES, ids=[v[1].hex() for v in VALUES])
def test_values_decode_as_pydicom_decodes_them(
    charset: str | list[str], value: bytes, vr: str
) -> None:
    from dsig.encoding.charsets import decode_text

    expected, warned = _pydicom(value, charset)
    assert warned == 0
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        text, good = decode_text(value, python_encodings(charset)[0], vr)
    assert ours == [] and good and text == expected


@pytest.mark.parametrize(("charset", "value", "vr"), BAD, ids=[v[1].hex() for v in BAD])
def test_invalid_bytes_are_said_not_warned(charset: str | list[str], value: bytes, vr: str) -> None:
    from dsig.encoding.charsets import decode_text

    expected, warned = _pydicom(value, charset)
    assert warned >= 1  # pydicom would have written a UserWarning to stderr
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        text, good = decode_text(value, python_encodings(charset)[0], vr)
    assert ours == [] and not good
    if b"\x1b" not in value:  # the same replacement characters
        assert "\ufffd" in text and text == expected
    # in a code extension pydicom falls back to the first set for the whole fragment, dsig
    # replaces only the invalid bytes in the extension's codec
