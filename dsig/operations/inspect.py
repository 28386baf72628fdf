"""List signatures without judging them (``dsig inspect``)."""

from __future__ import annotations

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
    find_signatures,
    mac_parameters,
    raw_bytes,
    raw_tags,
    raw_ushort,
    strip_der_pad,
)


def describe(ds: Dataset) -> list[dict[str, Any]]:
    """One dict per signature: where it is and what it claims."""
    out = []
    for ref in find_signatures(ds):
        item = ref.item
        mac_id = raw_ushort(item, MAC_ID_NUMBER)
        params = mac_parameters(ref.level, mac_id) if mac_id is not None else None
        entry: dict[str, Any] = {
            "uid": ref.uid,
            "location": format_location(ref.path),
            "mac_id": mac_id,
            "datetime": raw_text(item, SIGNATURE_DATETIME),
            "timestamp": CERTIFIED_TIMESTAMP in item,
        }
        if params is not None:
            entry["mac_algorithm"] = raw_text(params, MAC_ALGORITHM)
            entry["mac_transfer_syntax"] = raw_text(params, MAC_TRANSFER_SYNTAX)
            entry["signed_count"] = len(raw_tags(params, DATA_ELEMENTS_SIGNED))
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
