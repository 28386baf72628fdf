"""Signature purposes: PS3.16 CID 7007, coding scheme ``ASTM-sigpurpose`` (ASTM E1762)."""

from __future__ import annotations

from pydicom.dataset import Dataset

from dsig.errors import SigningError

PURPOSE_SCHEME = "ASTM-sigpurpose"

SIGNATURE_PURPOSES: dict[int, str] = {
    1: "Author's Signature",
    2: "Coauthor's Signature",
    3: "Co-participant's Signature",
    4: "Transcriptionist/Recorder Signature",
    5: "Verification Signature",
    6: "Validation Signature",
    7: "Consent Signature",
    8: "Signature Witness Signature",
    9: "Event Witness Signature",
    10: "Identity Witness Signature",
    11: "Consent Witness Signature",
    12: "Interpreter Signature",
    13: "Review Signature",
    14: "Source Signature",
    15: "Addendum Signature",
    16: "Modification Signature",
    17: "Administrative (Error/Edit) Signature",
    18: "Timestamp Signature",
}


def purpose_item(code: int) -> Dataset:
    """The single item of Digital Signature Purpose Code Sequence, as DCMTK writes it."""
    if code not in SIGNATURE_PURPOSES:
        raise SigningError(
            f"unknown signature purpose {code} (CID 7007 has 1-18; see 'dsig purposes')"
        )
    item = Dataset()
    item.CodeValue = str(code)
    item.CodingSchemeDesignator = PURPOSE_SCHEME
    item.CodeMeaning = SIGNATURE_PURPOSES[code]
    return item
