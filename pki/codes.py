"""Every finding code dsig and pki emit, with its meaning and the phase that raises it.

The codes are the JSON contract (``findings[].code``); a ``StrEnum`` so that comparisons and
JSON output with plain strings keep working. Lives in pki (the lowest package with findings)
so that pki stays free of dsig imports.
"""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    """Which part of the work a finding comes from."""

    INPUT = "input"  # the file, request or content itself, before any signature is judged
    INTEGRITY = "integrity"  # the MAC and signature over the bytes
    TRUST = "trust"  # the signer certificate: path, validity, usage, revocation
    TIMESTAMP = "timestamp"  # a certified timestamp and its TSA
    PROFILE = "profile"  # what --require / --require-coverage asked for
    EVIDENCE = "evidence"  # RFC 4998 evidence records (dsig evidence, verify --evidence)
    SIGNING = "signing"  # checks made before signing


class FindingCode(enum.StrEnum):
    """A stable finding code; ``.meaning`` says what it means, ``.phase`` where it arises."""

    meaning: str
    phase: Phase

    def __new__(cls, value: str, phase: Phase, meaning: str) -> FindingCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.phase = phase
        member.meaning = meaning
        return member

    @classmethod
    def of(cls, code: str) -> FindingCode:
        """The member for ``code`` (a member or its string); ValueError for an unknown one."""
        member = cls._value2member_map_.get(code)
        if not isinstance(member, FindingCode):
            raise ValueError(f"unknown finding code {code!r}: add it to pki.codes.FindingCode")
        return member

    MAC_MISMATCH = (
        "MAC_MISMATCH",
        Phase.INTEGRITY,
        "the recomputed MAC does not match the signature: content or signature changed",
    )
    MALFORMED_SIGNATURE = (
        "MALFORMED_SIGNATURE",
        Phase.INTEGRITY,
        "signature attributes are missing or cannot be decoded",
    )
    UNSUPPORTED_ALGORITHM = (
        "UNSUPPORTED_ALGORITHM",
        Phase.INTEGRITY,
        "MAC, key or transfer syntax this build cannot verify",
    )
    WEAK_ALGORITHM = (
        "WEAK_ALGORITHM",
        Phase.INTEGRITY,
        "MD5/SHA-1 MAC or hash, or RSA/DSA key under 2048 bits: in the signature (warning; "
        "error under strict checking), the certificate path (trust) or a timestamp",
    )
    PROFILE_NOT_MET = (
        "PROFILE_NOT_MET",
        Phase.PROFILE,
        "a required profile is met by no valid signature",
    )
    TRUST_NOT_CHECKED = (
        "TRUST_NOT_CHECKED",
        Phase.TRUST,
        "no trust store was given: the signer was not validated",
    )
    SIGNED_ELEMENT_MISSING = (
        "SIGNED_ELEMENT_MISSING",
        Phase.INTEGRITY,
        "an element listed in Data Elements Signed is absent",
    )
    NOT_SIGNABLE = (
        "NOT_SIGNABLE",
        Phase.INTEGRITY,
        "a listed element can no longer be signed (e.g. now VR UN)",
    )
    SIGNING_TIME_OUTSIDE_VALIDITY = (
        "SIGNING_TIME_OUTSIDE_VALIDITY",
        Phase.TRUST,
        "signing DateTime outside the certificate validity (trust)",
    )
    PIXEL_ENCODING_CHANGED = (
        "PIXEL_ENCODING_CHANGED",
        Phase.INTEGRITY,
        "pixel data (de)compressed since signing: MAC not recomputable",
    )
    LEGACY_FORMAT = (
        "LEGACY_FORMAT",
        Phase.INTEGRITY,
        "valid only in the pre-3.5.4 DCMTK format (verify in that format)",
    )
    IN_ORIGINAL_ATTRIBUTES = (
        "IN_ORIGINAL_ATTRIBUTES",
        Phase.INPUT,
        "signatures in Original Attributes Sequence: an earlier state",
    )
    COVERAGE_INCOMPLETE = (
        "COVERAGE_INCOMPLETE",
        Phase.PROFILE,
        "coverage required: a present element is covered by no valid signature",
    )
    CHARACTER_SET_CORRECTED = (
        "CHARACTER_SET_CORRECTED",
        Phase.INPUT,
        "the Specific Character Set holds an unknown or misspelt term: its values were decoded "
        "as the note says (info: the MAC covers the stored bytes, not their decoding)",
    )
    VALUE_NOT_DECODABLE = (
        "VALUE_NOT_DECODABLE",
        Phase.INPUT,
        "a text value holds bytes invalid in its Specific Character Set: shown with replacement "
        "characters (info: the MAC covers the stored bytes, not their decoding)",
    )
    STUDY_MANIFEST = (
        "STUDY_MANIFEST",
        Phase.INPUT,
        "the file is a study manifest (info): check it with dsig manifest verify",
    )
    UNSIGNABLE_CONTENT = (
        "UNSIGNABLE_CONTENT",
        Phase.INPUT,
        "content no signature can cover (VR UN, group < 0008, padding, bytes after the data set) "
        "(warning)",
    )
    VALUE_TRAILING_BYTES = (
        "VALUE_TRAILING_BYTES",
        Phase.INPUT,
        "Certificate of Signer, Signature or Certified Timestamp holds bytes after its encoded "
        "value (beyond an odd length's pad byte): outside the MAC and every signature, they are "
        "ignored (warning; fails coverage of all elements)",
    )
    ITEM_SIGNATURES_ONLY = (
        "ITEM_SIGNATURES_ONLY",
        Phase.PROFILE,
        "warning: the valid signatures cover only sequence items",
    )
    NO_TRUSTED_PATH = (
        "NO_TRUSTED_PATH",
        Phase.TRUST,
        "no certificate path from the signer to a configured trust anchor",
    )
    CERT_EXPIRED = (
        "CERT_EXPIRED",
        Phase.TRUST,
        "a certificate of the path had expired at the validation moment",
    )
    CERT_NOT_YET_VALID = (
        "CERT_NOT_YET_VALID",
        Phase.TRUST,
        "a certificate of the path was not yet valid at the validation moment",
    )
    CERT_REVOKED = (
        "CERT_REVOKED",
        Phase.TRUST,
        "a certificate of the path was revoked at or before the validation moment",
    )
    REVOCATION_UNAVAILABLE = (
        "REVOCATION_UNAVAILABLE",
        Phase.TRUST,
        "a certificate publishes revocation information but its status could not be established "
        "from the CRLs and OCSP responses given or fetched (note under soft-fail)",
    )
    REVOKED_AFTER_MOMENT = (
        "REVOKED_AFTER_MOMENT",
        Phase.TRUST,
        "note: a certificate was revoked, but only after the validation moment",
    )
    REVINFO_FUTURE_DATED = (
        "REVINFO_FUTURE_DATED",
        Phase.TRUST,
        "note: a supplied CRL or OCSP response dated in the future (beyond "
        "pki.revocation.FUTURE_SKEW) was ignored, as a fetched one is refused",
    )
    KEY_USAGE = (
        "KEY_USAGE",
        Phase.TRUST,
        "signer lacks digitalSignature/nonRepudiation, or an issuer lacks keyCertSign",
    )
    EXTENDED_KEY_USAGE = (
        "EXTENDED_KEY_USAGE",
        Phase.TRUST,
        "signer's extended key usage does not allow document signing (documentSigning, "
        "anyExtendedKeyUsage, or what the policy accepts), or lacks a required EKU",
    )
    SIGNER_IS_CA = (
        "SIGNER_IS_CA",
        Phase.TRUST,
        "the signer certificate is a CA certificate: CA certificates never sign DICOM",
    )
    MOMENT_CLAIMED = (
        "MOMENT_CLAIMED",
        Phase.TRUST,
        "note: validated at the signer-claimed signing time, which is not proven",
    )
    REVOKED_AFTER_CLAIMED_TIME = (
        "REVOKED_AFTER_CLAIMED_TIME",
        Phase.TRUST,
        "revoked after the signer-claimed signing time, with no certified timestamp before the "
        "revocation: the claim cannot be relied on",
    )
    OFFERED_CERTS_LIMITED = (
        "OFFERED_CERTS_LIMITED",
        Phase.TRUST,
        "note: certificates offered by the file beyond the limit were ignored",
    )
    BASIC_CONSTRAINTS = (
        "BASIC_CONSTRAINTS",
        Phase.TRUST,
        "an issuer is not a CA, or a path length constraint is exceeded",
    )
    CERT_SIGNATURE_INVALID = (
        "CERT_SIGNATURE_INVALID",
        Phase.TRUST,
        "a certificate's signature does not verify with its issuer's key",
    )
    NAME_CONSTRAINTS = (
        "NAME_CONSTRAINTS",
        Phase.TRUST,
        "a certificate violates a name constraint of an issuer",
    )
    CERT_POLICY = (
        "CERT_POLICY",
        Phase.TRUST,
        "the certificate policy processing of the path failed",
    )
    PATH_INVALID = (
        "PATH_INVALID",
        Phase.TRUST,
        "the path failed validation for another RFC 5280 reason (message says which)",
    )
    VALIDATION_ERROR = (
        "VALIDATION_ERROR",
        Phase.TRUST,
        "the validator failed unexpectedly; no decision could be made",
    )
    TIMESTAMP_MALFORMED = (
        "TIMESTAMP_MALFORMED",
        Phase.TIMESTAMP,
        "Certified Timestamp is not a decodable RFC 3161 TimeStampToken",
    )
    TIMESTAMP_TYPE = (
        "TIMESTAMP_TYPE",
        Phase.TIMESTAMP,
        "Certified Timestamp Type is not CMS_TSP",
    )
    TIMESTAMP_IMPRINT_MISMATCH = (
        "TIMESTAMP_IMPRINT_MISMATCH",
        Phase.TIMESTAMP,
        "the token's message imprint is not the hash of the Signature",
    )
    TIMESTAMP_SIGNATURE_INVALID = (
        "TIMESTAMP_SIGNATURE_INVALID",
        Phase.TIMESTAMP,
        "the TSA's CMS signature over the token does not verify",
    )
    TIMESTAMP_TSA_CERT_MISSING = (
        "TIMESTAMP_TSA_CERT_MISSING",
        Phase.TIMESTAMP,
        "the TSA certificate is neither in the token nor supplied",
    )
    TIMESTAMP_TSA_KEY_USAGE = (
        "TIMESTAMP_TSA_KEY_USAGE",
        Phase.TIMESTAMP,
        "the TSA certificate lacks a critical EKU of only timeStamping",
    )
    TIMESTAMP_TSA_VALIDITY = (
        "TIMESTAMP_TSA_VALIDITY",
        Phase.TIMESTAMP,
        "the time stamp lies outside the TSA certificate's validity",
    )
    TIMESTAMP_TSA_UNTRUSTED = (
        "TIMESTAMP_TSA_UNTRUSTED",
        Phase.TIMESTAMP,
        "the TSA certificate chain did not validate (see tsa_trust)",
    )
    TIMESTAMP_TSA_NOT_CHECKED = (
        "TIMESTAMP_TSA_NOT_CHECKED",
        Phase.TIMESTAMP,
        "no trust store was given: the TSA was not validated",
    )
    TIMESTAMP_BEFORE_SIGNING_TIME = (
        "TIMESTAMP_BEFORE_SIGNING_TIME",
        Phase.TIMESTAMP,
        "the certified time precedes Digital Signature DateTime",
    )
    TIMESTAMP_INVALID = (
        "TIMESTAMP_INVALID",
        Phase.TIMESTAMP,
        "a certified timestamp is present but does not verify",
    )
    TIMESTAMP_INDETERMINATE = (
        "TIMESTAMP_INDETERMINATE",
        Phase.TIMESTAMP,
        "a certified timestamp is present but could not be checked",
    )
    TIMESTAMP_REQUIRED = (
        "TIMESTAMP_REQUIRED",
        Phase.PROFILE,
        "timestamp required: no valid signature carries a valid timestamp",
    )
    TIMESTAMP_MOMENT_UNAVAILABLE = (
        "TIMESTAMP_MOMENT_UNAVAILABLE",
        Phase.TIMESTAMP,
        "validation at the timestamp asked for, without a valid timestamp: validated now",
    )
    RECORD_MALFORMED = (
        "RECORD_MALFORMED",
        Phase.EVIDENCE,
        "the record is not a decodable RFC 4998 EvidenceRecord",
    )
    DATA_NOT_COVERED = (
        "DATA_NOT_COVERED",
        Phase.EVIDENCE,
        "the data's hash is not in the first hash tree: the file changed",
    )
    RENEWAL_NOT_COVERED = (
        "RENEWAL_NOT_COVERED",
        Phase.EVIDENCE,
        "a renewal does not cover the previous timestamp or sequence",
    )
    TREE_MISMATCH = (
        "TREE_MISMATCH",
        Phase.EVIDENCE,
        "the reduced hash tree does not climb to the timestamp's imprint",
    )
    TOKEN_INVALID = (
        "TOKEN_INVALID",
        Phase.EVIDENCE,
        "a timestamp token does not verify (signature, EKU, validity, format)",
    )
    HASH_MISMATCH = (
        "HASH_MISMATCH",
        Phase.EVIDENCE,
        "a timestamp's imprint hash is not its chain's hash algorithm",
    )
    TIME_ORDER = (
        "TIME_ORDER",
        Phase.EVIDENCE,
        "a renewal is older than the timestamp it renews",
    )
    TSA_NOT_CHECKED = (
        "TSA_NOT_CHECKED",
        Phase.EVIDENCE,
        "no TSA trust anchors were given: the timestamps cannot be trusted",
    )
    TSA_UNTRUSTED = (
        "TSA_UNTRUSTED",
        Phase.EVIDENCE,
        "a TSA chain did not validate at the timestamp's time with the kept data",
    )
    TSA_REVOKED = (
        "TSA_REVOKED",
        Phase.EVIDENCE,
        "a TSA certificate was revoked before the timestamp was made",
    )
    TSA_CERT_MISSING = (
        "TSA_CERT_MISSING",
        Phase.EVIDENCE,
        "a TSA certificate is neither in its token nor in the kept data",
    )
    RENEWAL_LATE = (
        "RENEWAL_LATE",
        Phase.EVIDENCE,
        "a renewal came after the previous timestamp lost its value (the proven time moves to the"
        " renewal once the earlier timestamps' algorithms are no longer secure)",
    )
    RENEWAL_OVERDUE = (
        "RENEWAL_OVERDUE",
        Phase.EVIDENCE,
        "the last timestamp's algorithms are no longer secure at the moment",
    )
    RENEWAL_DUE = (
        "RENEWAL_DUE",
        Phase.EVIDENCE,
        "the last timestamp lost its value (a TSA certificate expired) and was not renewed: still"
        " proven with the kept validation data while its algorithms stay secure; a renewal keeps"
        " that time until they end and proves existence from the renewal on after (warning)",
    )
    SIGNATURE_REQUIRED = (
        "SIGNATURE_REQUIRED",
        Phase.PROFILE,
        "signature (or item signature) required: no valid signature of the main data set (or "
        "anywhere)",
    )
    NOTHING_VERIFIED = (
        "NOTHING_VERIFIED",
        Phase.PROFILE,
        "a requirement was given but no DICOM file was verified (run level)",
    )
    EVIDENCE_BROKEN = (
        "EVIDENCE_BROKEN",
        Phase.EVIDENCE,
        "evidence checked: the file's evidence record does not prove it (error)",
    )
    EVIDENCE_MISSING = (
        "EVIDENCE_MISSING",
        Phase.EVIDENCE,
        "evidence checked: no evidence record for the file (warning)",
    )
    EVIDENCE_NOT_PROVABLE = (
        "EVIDENCE_NOT_PROVABLE",
        Phase.EVIDENCE,
        "evidence checked: the evidence record cannot be proven now (warning)",
    )
    KEY_MISMATCH = (
        "KEY_MISMATCH",
        Phase.SIGNING,
        "sign: the private key does not match the signer certificate",
    )
    REQUEST_UID_MISMATCH = (
        "REQUEST_UID_MISMATCH",
        Phase.INPUT,
        "dsig serve: the object's SOP UIDs, as verified, differ from the C-STORE request's (the "
        "Orthanc verifier: the File Meta's), or it has no SOP Instance UID",
    )
    DUPLICATE_DIFFERS = (
        "DUPLICATE_DIFFERS",
        Phase.INPUT,
        "dsig serve: the store holds another object under this SOP Instance UID",
    )
    VERIFY_ABORTED = (
        "VERIFY_ABORTED",
        Phase.INPUT,
        "dsig serve: verification was killed (time or memory) and the object quarantined",
    )


def meanings(*phases: Phase, also: tuple[FindingCode, ...] = ()) -> dict[str, str]:
    """``{code: meaning}`` of the given phases (all when none) and ``also``: the views that
    replace the former hand-kept ``FINDING_CODES`` dicts."""
    chosen = [c for c in FindingCode if not phases or c.phase in phases or c in also]
    return {c.value: c.meaning for c in chosen}
