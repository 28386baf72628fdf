"""What is special about an object's encoding: compressed pixel data, waveforms."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.uid import UID

from dsig.encoding.values import raw_text, sequence_items
from dsig.explain.entries import describe_fragments, fragment_lengths
from dsig.signature.model import raw_ushort

PIXEL_DATA = 0x7FE00010
WAVEFORM_SEQUENCE = 0x54000100
_FAMILIES = (
    ("1.2.840.10008.1.2.4.5", "JPEG"),  # .50-.57: JPEG baseline/extended/lossless
    ("1.2.840.10008.1.2.4.7", "JPEG"),
    ("1.2.840.10008.1.2.4.8", "JPEG-LS"),
    ("1.2.840.10008.1.2.4.9", "JPEG 2000"),
    ("1.2.840.10008.1.2.4.20", "HTJ2K"),
    ("1.2.840.10008.1.2.5", "RLE"),
)


def _family(ts: str) -> str:
    return next((name for prefix, name in _FAMILIES if ts.startswith(prefix)), "compressed")


def particulars(ds: Dataset, transfer_syntax: str) -> list[str]:
    """One sentence per particular of the object's encoding that matters to its signature."""
    out: list[str] = []
    if PIXEL_DATA in ds:
        fragments = fragment_lengths(ds, PIXEL_DATA, ())
        if fragments is not None:
            frames = raw_text(ds, 0x00280008) or "1"
            out.append(
                f"Pixel Data: {_family(transfer_syntax)} ({UID(transfer_syntax).name}), "
                f"{frames} frame(s): {describe_fragments(fragments, old_format=False)}. The "
                "compressed bytes are signed: decompressing or recompressing breaks the signature"
            )
        else:
            out.append(
                "Pixel Data: native (uncompressed), hashed as little-endian values with a "
                "value length; a re-encoding to another byte order keeps the signature"
            )
        if 0x7FE00001 in ds:
            out.append("Extended Offset Table present: hashed as an ordinary OV element")
    if WAVEFORM_SEQUENCE in ds:
        groups = sequence_items(ds, WAVEFORM_SEQUENCE)
        for n, group in enumerate(groups, 1):
            channels = raw_ushort(group, 0x003A0005)
            samples = group[0x003A0010].value if 0x003A0010 in group else "?"
            kind = raw_text(group, 0x54001006) or "?"
            rate = raw_text(group, 0x003A001A) or "?"
            bits = raw_ushort(group, 0x54001004)
            out.append(
                f"Waveform Sequence item {n}: {channels} channel(s), {samples} samples at "
                f"{rate} Hz, {bits}-bit {kind} Waveform Data (5400,1010): hashed as "
                "little-endian words inside the Waveform Sequence (item tags without lengths, "
                "sequence delimiter), channels interleaved sample by sample, as stored"
            )
    return out
