"""The MAC of a referenced instance (Referenced SOP Instance MAC Sequence, PS3.3 C.17.2.1):
the hash of the same MAC byte stream a signature uses, over the listed elements of the
instance's main data set, with no signature item after them (nothing is signed).

Values left in the file by :func:`dsig.encoding.reader.read_dicom` (Pixel Data, waveforms) are read
in chunks into the hash: memory does not grow with the instance.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.dataset import Dataset

from dsig.encoding.walk import Walks
from dsig.operations.signer import mac_transfer_syntax_for
from dsig.signature.mac_stream import Sink, write_mac_stream
from tokens.digest import HashAlgorithm

#: MAC Calculation Transfer Syntaxes whose Pixel Data is native (not encapsulated).
NATIVE_MAC_SYNTAXES = frozenset({"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99"})


def signable_tags(ds: Dataset) -> tuple[int, ...]:
    """Every element of the main data set a signature could cover (C.12.1.1.3.1.1 rules:
    no group lengths, no group < 0008, no signature sequences, no UN), in tag order."""
    signable = Walks().of(ds).signable  # one walk of the level, not one per tag
    return tuple(sorted(int(t) for t in ds.keys() if signable(int(t))))


def reference_mac(
    ds: Dataset,
    tags: Sequence[int],
    algorithm: HashAlgorithm,
    *,
    sinks: Sequence[Sink] = (),
) -> tuple[bytes, list[int]]:
    """(MAC, listed tags absent from ``ds``) over ``tags`` of the main data set.

    ``sinks`` also receive the stream (a dump for debugging). Raises DicomFormatError
    (UnsignableElementError) when a listed element is present but cannot be signed.
    """
    hasher = algorithm.new()
    missing = write_mac_stream(ds, tags, Dataset(), [hasher.update, *sinks])
    return hasher.digest(), missing


def mac_transfer_syntax(ds: Dataset) -> str:
    """MAC Calculation Transfer Syntax UID for an instance, as a signature would record it."""
    meta = getattr(ds, "file_meta", None)
    return mac_transfer_syntax_for(str(getattr(meta, "TransferSyntaxUID", "") or ""))
