"""dsig: DICOM digital signatures (PS3.15 Annex C), interoperable with DCMTK's dcmsign.

Public API::

    from dsig import read_dicom, add_signature, SignOptions, verify_file, VerifyOptions
    from tokens import open_key_provider

Importing dsig loads neither typer nor python-pkcs11 nor pyhanko-certvalidator.
"""

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
from dsig.profiles import Profile, ProfileError
from dsig.remove import remove_all, remove_signature
from dsig.report import FileResult, Finding, Indication, SignatureResult
from dsig.signer import SignedInfo, SignOptions, add_signature
from dsig.tags import format_location, parse_location, parse_tag
from dsig.verifier import VerifyOptions, dump_mac_stream, verify_dataset, verify_file
from dsig.writer import Encoding, save, target_encoding

__version__ = "0.1.0"

__all__ = [
    "DicomFormatError",
    "DsigError",
    "Encoding",
    "FileResult",
    "Finding",
    "Indication",
    "LocationError",
    "OutputError",
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
