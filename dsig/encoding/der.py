"""DER lengths, the one thing about DER that DICOM values need (no DICOM here)."""

from __future__ import annotations


def strip_der_pad(value: bytes) -> bytes:
    """Cut a DER value at its encoded length (OB values carry a 0x00 pad byte when odd).

    Handles every long form (0x81, 0x82, 0x83, 0x84), where DCMTK only knew 0x82.
    """
    if len(value) < 2 or value[0] != 0x30:
        return value
    first = value[1]
    if first < 0x80:
        total = 2 + first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or len(value) < 2 + n:
            return value
        total = 2 + n + int.from_bytes(value[2 : 2 + n], "big")
    return value[:total] if total <= len(value) else value
