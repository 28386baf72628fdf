"""List signatures without judging them (``dsig inspect``); :class:`Claims` is what the
verifier reads of a signature item too."""

from __future__ import annotations

import functools
from typing import Any

from cryptography import x509
from pydicom.dataset import Dataset

from dsig.encoding.tags import format_location
from dsig.encoding.values import raw_text, sequence_items
from dsig.signature.model import (
    CERTIFICATE_OF_SIGNER,
    CERTIFIED_TIMESTAMP,
    DATA_ELEMENTS_SIGNED,
    MAC_ALGORITHM,
    MAC_ID_NUMBER,
    MAC_TRANSFER_SYNTAX,
    PURPOSE_SEQUENCE,
    SIGNATURE_DATETIME,
    SignatureRef,
    find_signatures,
    mac_parameters,
    raw_bytes,
    raw_tags,
    raw_ushort,
    strip_der_pad,
)


class Claims:
    """What one signature item states, read from the stored bytes when first asked for and
    not judged: its MAC ID, date, the MAC Parameters item of that ID at the same level (DCMTK
    resolves per level) and what that item names. A malformed value raises
    :class:`~dsig.errors.DicomFormatError` when it is read."""

    def __init__(self, ref: SignatureRef, item: Dataset | None = None) -> None:
        self.ref = ref
        self.item = ref.item if item is None else item  # the caller's, when it has it

    @functools.cached_property
    def mac_id(self) -> int | None:
        """MAC ID Number, None when absent."""
        return raw_ushort(self.item, MAC_ID_NUMBER)

    @property
    def datetime(self) -> str | None:
        """Digital Signature DateTime as stored."""
        return raw_text(self.item, SIGNATURE_DATETIME)

    @property
    def timestamped(self) -> bool:
        """Whether the item carries a Certified Timestamp."""
        return CERTIFIED_TIMESTAMP in self.item

    @functools.cached_property
    def params(self) -> Dataset | None:
        """The MAC Parameters item of :attr:`mac_id`, None without one."""
        return mac_parameters(self.ref.level, self.mac_id) if self.mac_id is not None else None

    @property
    def mac_algorithm(self) -> str | None:
        """MAC Algorithm of :attr:`params` (None without them)."""
        return raw_text(self.params, MAC_ALGORITHM) if self.params is not None else None

    @property
    def mac_transfer_syntax(self) -> str | None:
        """MAC Calculation Transfer Syntax UID of :attr:`params` (None without them)."""
        return raw_text(self.params, MAC_TRANSFER_SYNTAX) if self.params is not None else None

    @property
    def signed(self) -> list[int]:
        """Data Elements Signed of :attr:`params` (missing: DicomFormatError; no params: [])."""
        return raw_tags(self.params, DATA_ELEMENTS_SIGNED) if self.params is not None else []


def describe(ds: Dataset) -> list[dict[str, Any]]:
    """One dict per signature: where it is and what it claims."""
    out = []
    for ref in find_signatures(ds):
        claims = Claims(ref)
        item = claims.item
        mac_id = claims.mac_id
        params = claims.params
        entry: dict[str, Any] = {
            "uid": ref.uid,
            "location": format_location(ref.path),
            "mac_id": mac_id,
            "datetime": claims.datetime,
            "timestamp": claims.timestamped,
        }
        if params is not None:
            entry["mac_algorithm"] = claims.mac_algorithm
            entry["mac_transfer_syntax"] = claims.mac_transfer_syntax
            entry["signed_count"] = len(claims.signed)
        cert = raw_bytes(item, CERTIFICATE_OF_SIGNER)
        if cert:
            try:
                entry["signer"] = x509.load_der_x509_certificate(
                    strip_der_pad(cert)
                ).subject.rfc4514_string()
            except ValueError:
                entry["signer"] = None
        if PURPOSE_SEQUENCE in item and sequence_items(item, PURPOSE_SEQUENCE):
            code = sequence_items(item, PURPOSE_SEQUENCE)[0]
            entry["purpose"] = f"{raw_text(code, 0x00080100)} {raw_text(code, 0x00080104)}"
        out.append(entry)
    return out
