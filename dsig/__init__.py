"""dsig: DICOM digital signatures (PS3.15 Annex C), interoperable with DCMTK's dcmsign.

Public API::

    from dsig import read_dicom, add_signature, SignOptions, verify_file, VerifyOptions
    from tokens import open_key_provider

Importing dsig loads neither typer nor python-pkcs11 nor pyhanko-certvalidator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the public names, imported on first use (a cold ``dsig`` CLI start
    # loads only what its command needs)
    from dsig.dicomio import read_dicom
    from dsig.errors import (
        DicomFormatError,
        DsigError,
        LocationError,
        OutputError,
        SignatureNotFoundError,
        SigningError,
        TagError,
    )
    from dsig.limits import LimitExceededError, ParseLimits
    from dsig.profiles import Profile, ProfileError
    from dsig.remove import remove_all, remove_signature
    from dsig.report import FileResult, Finding, Indication, SignatureResult
    from dsig.signer import SignedInfo, SignOptions, add_signature
    from dsig.tags import format_location, parse_location, parse_tag
    from dsig.verifier import VerifyOptions, dump_mac_stream, verify_dataset, verify_file
    from dsig.writer import Encoding, save, target_encoding

_EXPORTS = {
    "read_dicom": "dsig.dicomio",
    "DicomFormatError": "dsig.errors",
    "DsigError": "dsig.errors",
    "LocationError": "dsig.errors",
    "OutputError": "dsig.errors",
    "SignatureNotFoundError": "dsig.errors",
    "SigningError": "dsig.errors",
    "TagError": "dsig.errors",
    "LimitExceededError": "dsig.limits",
    "ParseLimits": "dsig.limits",
    "Profile": "dsig.profiles",
    "ProfileError": "dsig.profiles",
    "remove_all": "dsig.remove",
    "remove_signature": "dsig.remove",
    "FileResult": "dsig.report",
    "Finding": "dsig.report",
    "Indication": "dsig.report",
    "SignatureResult": "dsig.report",
    "SignedInfo": "dsig.signer",
    "SignOptions": "dsig.signer",
    "add_signature": "dsig.signer",
    "format_location": "dsig.tags",
    "parse_location": "dsig.tags",
    "parse_tag": "dsig.tags",
    "VerifyOptions": "dsig.verifier",
    "dump_mac_stream": "dsig.verifier",
    "verify_dataset": "dsig.verifier",
    "verify_file": "dsig.verifier",
    "Encoding": "dsig.writer",
    "save": "dsig.writer",
    "target_encoding": "dsig.writer",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dsig' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "DicomFormatError",
    "DsigError",
    "Encoding",
    "FileResult",
    "Finding",
    "Indication",
    "LimitExceededError",
    "LocationError",
    "OutputError",
    "ParseLimits",
    "Profile",
    "ProfileError",
    "SignOptions",
    "SignatureNotFoundError",
    "SignatureResult",
    "SignedInfo",
    "SigningError",
    "TagError",
    "VerifyOptions",
    "__version__",
    "add_signature",
    "dump_mac_stream",
    "format_location",
    "parse_location",
    "parse_tag",
    "read_dicom",
    "remove_all",
    "remove_signature",
    "save",
    "target_encoding",
    "verify_dataset",
    "verify_file",
]
