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


def der_surplus(value: bytes) -> int:
    """Bytes stored after the DER value at the start of ``value``, the one 0x00 pad byte of an
    odd-length value excepted (0 when the length cannot be read: the parser decides then).

    Signature attributes outside the MAC (Certificate of Signer, Certified Timestamp) are cut
    at their DER length, so bytes after it would ride along unsigned.
    """
    der = strip_der_pad(value)
    surplus = len(value) - len(der)
    if surplus == 1 and len(der) % 2 and value[-1] == 0:
        return 0
    return surplus
