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
