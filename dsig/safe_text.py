"""Make untrusted text safe to print: DICOM values, certificate names and file names may hold
control characters (a newline could forge a "VALID" line, an escape sequence could rewrite
the terminal, a bidi override could reorder what is read)."""

from __future__ import annotations

import re

#: C0 and C1 controls, DEL, line/paragraph separators and bidi embedding/override/isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` (None as "") with every unsafe character shown as a visible escape (``\\n``,
    ``\\x1b``, ``\\u202e``): one value always stays on one line and reads as it is stored."""
    return _UNSAFE.sub(_escape, "" if text is None else str(text))


__all__ = ["printable"]
