"""dsig: DICOM digital signatures (PS3.15 Annex C), interoperable with DCMTK's dcmsign.

The public API (see README "Python API")::

    from dsig import sign_file, sign_files, verify_file, verify_files
    from pki import TrustPolicy
    from tokens import open_key_provider

Everything listed in ``__all__`` is public; other modules are internal. Importing dsig loads
neither typer nor python-pkcs11 nor pyhanko-certvalidator: names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pki._lazy import lazy_exports

if TYPE_CHECKING:
    from dsig.encoding.limits import LimitExceededError, ParseLimits
    from dsig.encoding.read_options import ReadOptions
    from dsig.encoding.reader import read_dicom
    from dsig.encoding.tags import (
        ItemPath,
        format_location,
        parse_location,
        parse_tag,
        parse_tag_file,
    )
    from dsig.encoding.writer import Encoding, atomic_output, save, target_encoding
    from dsig.errors import (
        BadEnvironmentError,
        BadInputError,
        BadKeyError,
        BadPolicyError,
        DicomFormatError,
        DsigError,
        InputError,
        LocationError,
        OptionsError,
        OutputError,
        SignatureNotFoundError,
        SigningError,
        TagError,
        ToolkitError,
    )
    from dsig.files.inputs import iter_inputs
    from dsig.files.outputs import OutputRefusedError, check_output_path, in_place_target
    from dsig.operations.batch import Outcome, Tally, frozen_now, severity, summary_table
    from dsig.operations.file_signing import (
        FileSigning,
        SignedFile,
        sign_dataset,
        sign_file,
        sign_files,
    )
    from dsig.operations.file_verification import verification_options, verify_file, verify_files
    from dsig.operations.inspect import describe
    from dsig.operations.preview import preview_signing
    from dsig.operations.remove import remove_all, remove_signature
    from dsig.operations.signer import (
        SignedInfo,
        SignOptions,
        add_signature,
        check_algorithm_policy,
    )
    from dsig.operations.signer_check import check_signer, signer_rules
    from dsig.operations.verifier import (
        VerifyOptions,
        dump_mac_stream,
        partial_coverage,
        verify_dataset,
    )
    from dsig.operations.verify_json import (
        VERIFY_SCHEMA_VERSION,
        json_document_fields,
        jsonl_summary_line,
        verify_schema,
    )
    from dsig.results import (
        FileResult,
        Finding,
        FindingCode,
        Indication,
        Phase,
        PurposeReport,
        SignatureResult,
        TimestampReport,
        TokenDetails,
    )
    from dsig.safe_text import printable
    from dsig.signature.model import (
        CERTIFIED_TIMESTAMP,
        SignatureRef,
        find_signature,
        find_signatures,
    )
    from dsig.signature.profiles import Profile, ProfileError
    from dsig.signature.purposes import PURPOSE_SCHEME, SIGNATURE_PURPOSES
    from dsig.timestamp import QueryOptions, TimestampError, build_query, insert_token
    from dsig.timestamp.stamping import SignTimestamping, read_uid_file, write_uid_file
    from dsig.timestamp.tsa_client import (
        TsaCredentials,
        TsaOptions,
        TsaUnavailableError,
        redact_url,
        request_timestamp,
    )

__getattr__ = lazy_exports(__name__)

__version__ = "0.1.0"

__all__ = [
    "CERTIFIED_TIMESTAMP",
    "PURPOSE_SCHEME",
    "SIGNATURE_PURPOSES",
    "VERIFY_SCHEMA_VERSION",
    "BadEnvironmentError",
    "BadInputError",
    "BadKeyError",
    "BadPolicyError",
    "DicomFormatError",
    "DsigError",
    "Encoding",
    "FileResult",
    "FileSigning",
    "Finding",
    "FindingCode",
    "Indication",
    "InputError",
    "ItemPath",
    "LimitExceededError",
    "LocationError",
    "OptionsError",
    "Outcome",
    "OutputError",
    "OutputRefusedError",
    "ParseLimits",
    "Phase",
    "Profile",
    "ProfileError",
    "PurposeReport",
    "QueryOptions",
    "ReadOptions",
    "SignOptions",
    "SignTimestamping",
    "SignatureNotFoundError",
    "SignatureRef",
    "SignatureResult",
    "SignedFile",
    "SignedInfo",
    "SigningError",
    "TagError",
    "Tally",
    "TimestampError",
    "TimestampReport",
    "TokenDetails",
    "ToolkitError",
    "TsaCredentials",
    "TsaOptions",
    "TsaUnavailableError",
    "VerifyOptions",
    "__version__",
    "add_signature",
    "atomic_output",
    "build_query",
    "check_algorithm_policy",
    "check_output_path",
    "check_signer",
    "describe",
    "dump_mac_stream",
    "find_signature",
    "find_signatures",
    "format_location",
    "frozen_now",
    "in_place_target",
    "insert_token",
    "iter_inputs",
    "json_document_fields",
    "jsonl_summary_line",
    "parse_location",
    "parse_tag",
    "parse_tag_file",
    "partial_coverage",
    "preview_signing",
    "printable",
    "read_dicom",
    "read_uid_file",
    "redact_url",
    "remove_all",
    "remove_signature",
    "request_timestamp",
    "save",
    "severity",
    "sign_dataset",
    "sign_file",
    "sign_files",
    "signer_rules",
    "summary_table",
    "target_encoding",
    "verification_options",
    "verify_dataset",
    "verify_file",
    "verify_files",
    "verify_schema",
    "write_uid_file",
]
