"""Specific Character Set terms to Python codecs, as pydicom reads them, without its warnings.

pydicom's ``convert_encodings`` corrects common misspellings and falls back to the default
repertoire for unknown terms, but says so with ``warnings.warn``: a stray, multi-line stderr
message carrying the file's raw value (a hostile file writes what it likes there), or an
exception under ``reading_validation_mode = RAISE``, a process-wide setting. Filtering the
warning would need ``warnings.catch_warnings``, process-wide state that ``dsig serve``'s
threads would race on. So the same rules are applied here, and each correction is returned
as a note for the caller to report.
"""

from __future__ import annotations

import codecs
import re
from typing import Any

from pydicom.charset import (
    CODES_TO_ENCODINGS,
    STAND_ALONE_ENCODINGS,
    default_encoding,
    handled_encodings,
    python_encoding,
)
from pydicom.multival import MultiValue


def charset_terms(value: Any) -> Any:
    """A Specific Character Set value as pydicom's charset lookup takes it: one stored as UN
    is bytes (a TypeError inside pydicom), decoded here as the CS value it holds."""
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("latin-1").split("\\")
    # a NUL inside a term is a ValueError in Python's codec lookup, not an unknown charset
    if isinstance(value, str):
        return value.replace("\x00", " ")
    if isinstance(value, list | MultiValue):
        return [str(v).replace("\x00", " ").strip(" ") for v in value]
    return value


def _shown(term: str) -> str:
    """A term as it may be printed: printable ASCII only, and short."""
    text = "".join(c if " " <= c <= "~" else "?" for c in term)
    return text if len(text) <= 64 else text[:61] + "..."


def _one(term: str, notes: list[str]) -> str:
    if term in python_encoding:
        return python_encoding[term]
    patched = None  # the misspellings pydicom corrects, by its own patterns
    if re.match("^ISO[^_]IR", term) is not None:
        patched = "ISO_IR" + term[6:]
    elif re.match("^(?=ISO.2022.IR.)(?!ISO 2022 IR )", term) is not None:
        patched = "ISO 2022 IR " + term[12:]
    if patched is not None and patched in python_encoding:
        notes.append(f"Specific Character Set '{_shown(term)}' read as '{patched}'")
        return python_encoding[patched]
    if patched is None:
        try:  # a Python codec name is taken as it is, as pydicom does
            codecs.lookup(term)
            return term
        except (LookupError, ValueError):
            pass  # not a codec either: the default below, noted
    notes.append(
        f"unknown Specific Character Set '{_shown(term)}': values read in the default repertoire"
    )
    return default_encoding


def python_encodings(value: Any) -> tuple[list[str], tuple[str, ...]]:
    """The Python codecs for a Specific Character Set value, and notes on what was corrected.

    The same result as ``pydicom.charset.convert_encodings`` in its default (warning) mode.
    """
    terms = charset_terms(value) or [""]
    terms = [terms] if isinstance(terms, str) else list(terms)
    if not terms[0]:
        terms[0] = "ISO_IR 6"
    notes: list[str] = []
    encodings = [_one(str(term), notes) for term in terms]
    if len(terms) > 1:
        if terms[0] in STAND_ALONE_ENCODINGS:
            notes.append(
                f"Specific Character Set '{_shown(terms[0])}' allows no code extensions: "
                "the others are ignored"
            )
            encodings = encodings[:1]
        else:
            for i in reversed(range(1, len(terms))):
                if terms[i] in STAND_ALONE_ENCODINGS:
                    notes.append(
                        f"Specific Character Set '{_shown(terms[i])}' cannot be a code "
                        "extension: ignored"
                    )
                    del encodings[i]
    return encodings, tuple(notes)


#: VRs whose values are decoded with the Specific Character Set (the others are ASCII).
CHARSET_VRS = frozenset({"PN", "SH", "LO", "ST", "LT", "UC", "UT"})
# Delimiters that end a code extension (PS3.5 6.1.2.5.3): CR, LF, TAB, FF, the value
# separator, and for person names the component and group separators.
_TEXT_DELIMITERS = frozenset({0x0D, 0x0A, 0x09, 0x0C, 0x5C})
_PN_DELIMITERS = _TEXT_DELIMITERS | {0x5E, 0x3D}
_FRAGMENTS = re.compile(b"(^[^\x1b]+|[\x1b][^\x1b]*)")


def _strict(value: bytes, encoding: str) -> tuple[str, bool]:
    try:
        return value.decode(encoding), True
    except UnicodeError:
        return value.decode(encoding, errors="replace"), False
    except LookupError:  # python_encodings never returns one; a caller's list might
        return value.decode(default_encoding), False


def _escaped(fragment: bytes, encodings: list[str], delimiters: frozenset[int]) -> tuple[str, bool]:
    """One fragment that starts with an escape sequence, as pydicom's _decode_escaped_fragment
    decodes it."""
    size = 4 if fragment.startswith((b"\x1b$(", b"\x1b$)")) else 3
    encoding = CODES_TO_ENCODINGS.get(fragment[:size], "")
    if encoding not in encodings and encoding != default_encoding:
        return fragment.decode(encodings[0], errors="replace"), False  # unknown escape
    if encoding in handled_encodings:  # Python's codec reads the escape sequence itself
        return _strict(fragment, encoding)
    rest = fragment[size:]
    cut = next((i for i, byte in enumerate(rest) if byte in delimiters), None)
    if cut is None:
        return _strict(rest, encoding)
    head, good_head = _strict(rest[:cut], encoding)
    tail, good_tail = _strict(rest[cut:], encodings[0])  # a delimiter resets to the first set
    return head + tail, good_head and good_tail


def decode_text(value: bytes, encodings: str | list[str], vr: str) -> tuple[str, bool]:
    """Stored bytes of a text value decoded as pydicom decodes them (code extensions
    included), without its warnings: ``(text, False)`` when some bytes are invalid in the
    character set (they read as U+FFFD), for the caller to report. Values are never converted
    in place: the MAC covers the stored bytes, not their decoding."""
    if vr not in CHARSET_VRS:
        return value.decode(default_encoding), True  # ISO 8859-1: every byte decodes
    codecs_ = [encodings] if isinstance(encodings, str) else list(encodings) or [default_encoding]
    if b"\x1b" not in value:
        return _strict(value, codecs_[0])
    delimiters = _PN_DELIMITERS if vr == "PN" else _TEXT_DELIMITERS
    parts: list[str] = []
    good = True
    for fragment in _FRAGMENTS.findall(value):
        if fragment.startswith(b"\x1b"):
            text, ok = _escaped(fragment, codecs_, delimiters)
        else:
            text, ok = _strict(fragment, codecs_[0])
        parts.append(text)
        good = good and ok
    return "".join(parts), good
