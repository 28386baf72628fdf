"""Verify every signature of a DICOM object: integrity first, then (optionally) trust."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

from dsig.encoding.blob import Blob, blob_of, source_blob
from dsig.encoding.der import der_surplus
from dsig.encoding.limits import DEFAULT_LIMITS, ParseLimits, check_verification_work
from dsig.encoding.read_options import DEFAULT_READ, ReadOptions
from dsig.encoding.reader import Layout, read_dicom
from dsig.encoding.tags import format_location, tag_str
from dsig.encoding.values import UNDEFINED, raw_text, read_range, stored
from dsig.encoding.walk import Walks
from dsig.errors import DicomFormatError, DsigError, OptionsError
from dsig.operations.inspect import Claims
from dsig.results import (
    FileIdentity,
    FileResult,
    Finding,
    Indication,
    PurposeReport,
    SignatureResult,
    TimestampReport,
    with_findings,
)
from dsig.signature.mac_stream import Sink, StreamOptions, UnsignableElementError, write_mac_stream
from dsig.signature.model import (
    CERTIFICATE_OF_SIGNER,
    CERTIFIED_TIMESTAMP,
    PURPOSE_SEQUENCE,
    SignatureRef,
    find_signature,
    find_signatures,
    parse_dicom_datetime,
    raw_bytes,
    sequence_datasets,
    signature_value,
    signer_certificate,
)
from dsig.signature.profiles import Profile, ProfileError, satisfied_profiles, tags_to_sign
from pki.results import NOT_CHECKED, TrustEvaluator, TrustFinding, TrustIndication, TrustResult
from tokens.api import SignatureScheme
from tokens.digest import HashAlgorithm, prehashed
from tokens.errors import UnsupportedAlgorithmError

_NATIVE_MAC_SYNTAXES = frozenset({"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99"})


@dataclass(frozen=True)
class VerifyOptions:
    """How to verify. ``trust=None`` leaves trust unchecked (INDETERMINATE unless
    ``integrity_only``)."""

    #: A :class:`pki.TrustPolicy` given here is turned into its (caching) evaluator.
    trust: TrustEvaluator | None = None
    integrity_only: bool = False
    old_format: bool = False
    #: Validation moment for trust: "auto" (the certified time of a VALID timestamp, else
    #: now), "timestamp", "now", "signing-time" or a datetime.
    at: str | dt.datetime = "auto"
    #: Profiles that at least one non-invalid signature must satisfy; "signature": one of
    #: the main data set; "item-signature": one anywhere (main data set or a sequence item).
    require: Sequence[str] = ()
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    #: Validates TSA certificates of timestamps; None = use ``trust``.
    tsa_trust: TrustEvaluator | None = None
    #: A weak MAC or signer key (WEAK_ALGORITHM) fails the signature unless ``allow_weak``
    #: names it; without ``strict`` it is a warning.
    strict: bool = False
    #: Weak algorithms tolerated under ``strict`` (pki's names: md5, sha1, rsa1024, ...).
    allow_weak: Sequence[str] = ()
    #: "all": every signable element present at the top level must be covered by a valid
    #: main-level signature; "profile": every element the file's profile demands. None = off.
    require_coverage: str | None = None
    #: Bounds on parsing (depth, signatures, elements, inflated size).
    limits: ParseLimits = DEFAULT_LIMITS
    #: How files are read (``--read`` / ``--read-xfer``; default: as the meta header says).
    read: ReadOptions = DEFAULT_READ
    #: A present certified timestamp that does not verify fails its signature (INVALID, or
    #: INDETERMINATE when the TSA cannot be validated); True downgrades that to a warning.
    timestamp_failures_warn: bool = False
    #: ``--evidence``: a directory of RFC 4998 records (or one record); a PROVEN record's
    #: time of existence is a certified validation moment for the file's signatures.
    evidence: Path | None = None
    #: Set per file by :func:`verify_file` from ``evidence`` (not an option to pass).
    proven_at: dt.datetime | None = None
    #: Hash each file (SHA-256) as it is read, for ``FileResult.sha256`` (audit reports).
    file_sha256: bool = False

    def __post_init__(self) -> None:
        if self.allow_weak:  # unknown names: TrustConfigError now
            from pki.policy import AlgorithmRule  # lazy: not needed by most runs

            AlgorithmRule.from_names(self.allow_weak)
        given: object = self.trust  # untyped callers pass a policy: evaluate it (cached)
        policy_module = sys.modules.get("pki.policy")  # not imported: cannot be a TrustPolicy
        if policy_module is not None and isinstance(given, policy_module.TrustPolicy):
            from pki.evaluator import PolicyEvaluator

            object.__setattr__(self, "trust", PolicyEvaluator(given))
        if self.require_coverage not in (None, "all", "profile"):
            raise OptionsError(
                f"require_coverage must be all or profile, not {self.require_coverage!r}"
            )


#: Start of ``FileResult.error`` when verification hit a bug rather than bad input.
INTERNAL_ERROR = "internal error"


def verify_file(path: Path | Blob, options: VerifyOptions = VerifyOptions()) -> FileResult:
    """Read and verify one file; operational problems become the result's ``error``.

    Never raises for any file content: a bug surfaces as an ERROR result whose message starts
    with :data:`INTERNAL_ERROR` (fail closed, and a batch goes on with the next file).
    """
    name = blob_of(path).name
    options = _one_verification(options)
    try:
        if options.evidence is not None and isinstance(path, Blob):
            raise OptionsError(f"{name}: evidence records are checked for local files only")
        walks = Walks()  # one walk per level, shared by reading and verifying
        ds = read_dicom(
            path, options.limits, read=options.read, file_sha256=options.file_sha256, walks=walks
        )
        if options.evidence is None or isinstance(path, Blob):
            return _verify_dataset(ds, options, name, walks)
        from dsig.evidence.hook import check_evidence

        at = options.at if isinstance(options.at, dt.datetime) else None
        proof = check_evidence(path, options.evidence, options.tsa_trust or options.trust, at)
        with_proof = dataclasses.replace(options, proven_at=proof.proven_time)
        result = _verify_dataset(ds, with_proof, name, walks)
        result = with_findings(result, *([proof.finding] if proof.finding else []))
        return dataclasses.replace(result, evidence=proof.report)
    except DsigError as e:
        return FileResult(name, error=str(e))
    except Exception as e:
        message = f"{INTERNAL_ERROR} while verifying ({type(e).__name__}: {e}); please report it"
        return FileResult(name, error=" ".join(message.split()))


def verify_dataset(ds: Dataset, options: VerifyOptions, *, path: str = "") -> FileResult:
    """Verify every signature in ``ds`` (main level and nested items)."""
    return _verify_dataset(ds, _one_verification(options), path, Walks())


def _one_verification(options: VerifyOptions) -> VerifyOptions:
    """Online, every trust evaluation of one file (signatures, timestamps, evidence) draws
    from one allowance of HTTP requests: 128 signers must not make 128 budgets."""
    if "pki.evaluator" not in sys.modules:  # no PolicyEvaluator exists: nothing to bound
        return options
    from pki.evaluator import PolicyEvaluator

    given = [t for t in (options.trust, options.tsa_trust) if isinstance(t, PolicyEvaluator)]
    online = [t for t in given if t.policy.online]
    if not online:
        return options
    allowance = online[0].allowance()
    trust, tsa_trust = (
        t.within(allowance) if isinstance(t, PolicyEvaluator) else t
        for t in (options.trust, options.tsa_trust)
    )
    return dataclasses.replace(options, trust=trust, tsa_trust=tsa_trust)


def _verify_dataset(ds: Dataset, options: VerifyOptions, path: str, walks: Walks) -> FileResult:
    identity = FileIdentity.of(ds)
    layout = getattr(ds, "dsig_layout", None)  # set by read_dicom
    notes = getattr(ds, "_dsig_charset_notes", ())  # set by read_dicom
    refs = find_signatures(ds, options.limits, walks=walks)
    weighted = getattr(ds, "dsig_weighted_elements", None)  # set by read_dicom
    if isinstance(weighted, int):
        size = getattr(ds, "dsig_input_bytes", None)  # set by read_dicom
        check_verification_work(len(refs), weighted, options.limits, size)
    result = FileResult(
        path,
        signatures=tuple(_verify_one(ref, options, walks) for ref in refs),
        findings=tuple(Finding("CHARACTER_SET_CORRECTED", note, "info") for note in notes),
        trailing_bytes=layout.trailing_bytes if isinstance(layout, Layout) else 0,
        identity=identity,
    )
    result = with_findings(result, *_item_only(result), *_requirements(result, options))
    # padding is read only when something will report or judge it
    hiding = bool(result.signatures or options.require_coverage) and _padding_holds_content(ds)
    if result.signatures:
        result = _with_uncovered(ds, result, walks, hiding)
    if options.require_coverage is not None:
        mode = options.require_coverage
        result = with_findings(result, *_coverage(ds, result, mode, options.require, hiding))
    if raw_text(ds, 0x00080016) == "1.2.840.10008.5.1.4.1.1.88.59":  # KOS: a study manifest?
        from dsig.manifest.model import manifest_note

        note = manifest_note(ds)
        if note:
            result = with_findings(result, Finding("STUDY_MANIFEST", note, "info"))
    return result


def _is_structural(tag: int) -> bool:
    """Elements that frame content rather than being content: group lengths, Length to End,
    the signatures and MAC parameters themselves."""
    return tag & 0xFFFF == 0 or tag in (0x00080001, 0xFFFAFFFA, 0x4FFE0001)


def uncovered_tags(level: Dataset, covered: set[int], *, padding: bool = True) -> list[int]:
    """Every element of ``level`` not in ``covered``, whatever its VR (UN included) or group
    (< 0008, padding): only the framing elements of :func:`_is_structural` are left out, and
    with ``padding=False`` the Data Set Trailing Padding too."""
    return sorted(
        t
        for t in (int(k) for k in level.keys())
        if t not in covered and not _is_structural(t) and (padding or not _is_padding(t))
    )


def _is_padding(tag: int) -> bool:
    """Data Set Trailing Padding (FFFC,FFFC): many modalities write it, empty or zeros, and no
    reader interprets its bytes, so such padding is listed as not covered but neither warns
    nor fails coverage. Padding holding any other byte (a polyglot hides a second data set
    there) is UNSIGNABLE_CONTENT and fails ``--require-coverage all``
    (:func:`_padding_holds_content`)."""
    return tag == 0xFFFCFFFC


def _padding_holds_content(ds: Dataset) -> bool:
    """Top-level trailing padding with a non-zero byte (read in chunks when left in the file)."""
    if 0xFFFCFFFC not in ds:
        return False
    elem = stored(ds, 0xFFFCFFFC, keep_deferred=True)
    if isinstance(elem, RawDataElement) and elem.value is None and elem.length:
        if elem.length == UNDEFINED:
            return True
        with source_blob([ds]).open() as fp:
            # an early return drops the generator, which stops its read-ahead thread
            return any(
                bytes(chunk).count(0) != len(chunk)
                for chunk in read_range(fp, elem.value_tell or 0, elem.length)
            )
    value = elem.value
    if isinstance(value, bytes | bytearray):
        return value.count(0) != len(value)
    return bool(value)


def _with_uncovered(ds: Dataset, result: FileResult, walks: Walks, hiding: bool) -> FileResult:
    """List what no valid main-level signature covers; UNSIGNABLE_CONTENT (a warning) names
    what a viewer may show but no signature can ever cover: VR UN, sequences holding UN,
    groups below 0008, bytes after the data set, trailing padding that is not all zeros
    (``hiding``; empty or zero padding is listed, not warned of)."""
    covered: set[int] = set()
    for sig in _covering(result):
        covered.update(_parse_tag_str(t) for t in sig.signed_tags)
    missing = uncovered_tags(ds, covered)
    walk = walks.of(ds)
    unsignable = [t for t in missing if not walk.signable(t) and (hiding or not _is_padding(t))]
    parts = []
    if unsignable:
        parts.append(
            f"{len(unsignable)} element(s) no signature can cover: "
            + ", ".join(tag_str(t) for t in unsignable)
        )
    if result.trailing_bytes:
        parts.append(f"{result.trailing_bytes} byte(s) after the end of the data set")
    found = [Finding("UNSIGNABLE_CONTENT", "; ".join(parts), "warning")] if parts else []
    uncovered = tuple(tag_str(t) for t in missing)
    return dataclasses.replace(result, uncovered=uncovered, findings=(*result.findings, *found))


#: (0040,A040) Value Type, (0040,A043) Concept Name Code Sequence, (0040,A730) Content Sequence.
_SR_MARKERS = (0x0040A040, 0x0040A043, 0x0040A730)
_COVERAGE_PROFILES = frozenset({"base", "creator", "authorization", "sr", "sr-verification"})


def _covering(result: FileResult) -> list[SignatureResult]:
    """Main-level signatures that count for coverage: intact and not failed otherwise."""
    return [
        s
        for s in result.signatures
        if not s.location
        and s.integrity is Indication.VALID
        and s.indication is not Indication.INVALID
    ]


def _parse_tag_str(text: str) -> int:
    return int(text[1:5], 16) << 16 | int(text[6:10], 16)


def _coverage(
    ds: Dataset, result: FileResult, mode: str, require: Sequence[str], hiding: bool
) -> list[Finding]:
    """COVERAGE_INCOMPLETE (file level) when a demanded element has no valid signature over it.

    Protects against signature wrapping: content added or left outside Data Elements Signed
    next to a valid signature. Only main-level signatures cover top-level elements.
    """
    covered: set[int] = set()
    for sig in _covering(result):
        covered.update(_parse_tag_str(t) for t in sig.signed_tags)
    present = {int(t) for t in ds.keys()}
    found: list[Finding] = []
    if mode == "all":
        demanded = set(uncovered_tags(ds, set(), padding=hiding))
        what = "element(s) present"
        if result.trailing_bytes:
            found.append(
                Finding(
                    "COVERAGE_INCOMPLETE",
                    f"coverage of all elements required: {result.trailing_bytes} byte(s) after "
                    "the end of the data set are covered by no signature",
                )
            )
        for sig in result.signatures:  # unsigned bytes stored in signature attributes
            for f in (f for f in sig.findings if f.code == "VALUE_TRAILING_BYTES"):
                found.append(
                    Finding(
                        "COVERAGE_INCOMPLETE",
                        f"coverage of all elements required: signature {sig.uid}: {f.message}",
                    )
                )
    else:
        names = [r for r in require if r in _COVERAGE_PROFILES]
        if not names:
            names = ["sr" if all(t in ds for t in _SR_MARKERS) else "creator"]
        demanded = set()
        for name in names:
            try:
                demanded |= {int(t) for t in tags_to_sign(Profile(name), ds, top_level=True)}
            except ProfileError as e:
                return [Finding("COVERAGE_INCOMPLETE", f"profile coverage required: {e}")]
        demanded &= present
        what = "element(s) required by the " + "/".join(names) + " profile"
    missing = sorted(demanded - covered)
    if missing:
        shown = ", ".join(tag_str(t) for t in missing)
        found.append(
            Finding(
                "COVERAGE_INCOMPLETE",
                f"coverage required ({mode}): {len(missing)} {what} are covered by no valid "
                f"signature: {shown}",
            )
        )
    return found


def _intact(result: FileResult) -> list[SignatureResult]:
    """Signatures whose MAC matched and that nothing else failed."""
    return [
        s
        for s in result.signatures
        if s.integrity is Indication.VALID and s.indication is not Indication.INVALID
    ]


def partial_coverage(result: FileResult) -> str | None:
    """A warning when valid signatures leave present top-level elements unsigned, else None."""
    if not _intact(result):
        return None
    main = _covering(result)
    if not main:
        return "valid signatures cover only sequence items, not the main data set"
    uncovered = set(main[0].unsigned_tags).intersection(*(s.unsigned_tags for s in main[1:]))
    if not uncovered:
        return None
    tags = sorted(uncovered)
    shown = ", ".join(tags)
    return (
        f"valid signatures cover only part of the object: {len(tags)} present element(s) "
        f"are signed by none: {shown}"
    )


#: File-level warning: the valid signatures all sit in sequence items.
ITEM_SIGNATURES_ONLY = "ITEM_SIGNATURES_ONLY"


def _item_only(result: FileResult) -> list[Finding]:
    """ITEM_SIGNATURES_ONLY when intact signatures exist but none over the main data set: an
    item signature says nothing about the patient, the study or the rest of the object."""
    valid = _intact(result)
    if not valid or _covering(result):
        return []
    where = ", ".join(sorted({s.location for s in valid}))
    return [
        Finding(
            ITEM_SIGNATURES_ONLY,
            f"valid signatures cover only sequence items ({where}), not the main data set: "
            "nothing outside those items is signed",
            "warning",
        )
    ]


def _requirements(result: FileResult, options: VerifyOptions) -> list[Finding]:
    """What ``options.require`` demands and no signature that counts gives."""
    candidates = [s for s in result.signatures if s.indication is not Indication.INVALID]
    found: list[Finding] = []
    for requirement in options.require:
        if requirement == "signature":
            if not any(not s.location for s in candidates):
                items = " (only item signatures: an item-signature requirement accepts those)"
                found.append(
                    Finding(
                        "SIGNATURE_REQUIRED",
                        "no valid signature of the main data set, but one is required"
                        + (items if candidates else ""),
                        option="require" if candidates else None,
                        value="item-signature" if candidates else None,
                    )
                )
        elif requirement == "item-signature":
            if not candidates:
                found.append(
                    Finding(
                        "SIGNATURE_REQUIRED",
                        "no valid signature (of the main data set or of an item), but one is "
                        "required",
                    )
                )
        elif requirement == "timestamp":
            from dsig.timestamp.dicom import check_timestamp_requirement

            found.extend(check_timestamp_requirement(result))
        elif not any(requirement in s.profiles for s in candidates):
            found.append(
                Finding(
                    "PROFILE_NOT_MET",
                    f"no valid signature satisfies the required '{requirement}' profile",
                )
            )
    return found


def _verify_one(ref: SignatureRef, options: VerifyOptions, walks: Walks) -> SignatureResult:
    res = SignatureResult(
        uid=ref.uid,
        location=format_location(ref.path),
        trust_required=not options.integrity_only,
    )
    return _verify_integrity(ref, ref.item, res, options, walks)


def _fail(
    res: SignatureResult,
    code: str,
    message: str,
    indication: Indication,
    option: str | None = None,
) -> SignatureResult:
    found = Finding(code, message, option=option)
    return dataclasses.replace(res, integrity=indication, findings=(*res.findings, found))


def _verify_integrity(
    ref: SignatureRef, item: Dataset, res: SignatureResult, options: VerifyOptions, walks: Walks
) -> SignatureResult:
    """``res`` with all that was found out; built by copying, so that a malformed part
    (MALFORMED_SIGNATURE) keeps in the report what was read before it."""
    try:
        level = ref.level
        claims = Claims(ref, item)
        mac_id = claims.mac_id
        res = dataclasses.replace(
            res, mac_id=mac_id, datetime=claims.datetime, purpose=_purpose(item)
        )
        if mac_id is None:
            raise DicomFormatError("the signature item has no MAC ID Number (0400,0005)")
        if claims.params is None:
            raise DicomFormatError(f"no MAC Parameters item with MAC ID {mac_id} at the same level")
        res = dataclasses.replace(
            res, mac_algorithm=claims.mac_algorithm, mac_transfer_syntax=claims.mac_transfer_syntax
        )
        signed = claims.signed  # missing: MALFORMED_SIGNATURE, the algorithm still reported
        signed_set = set(signed)
        res = dataclasses.replace(
            res,
            signed_tags=tuple(tag_str(t) for t in signed),
            unsigned_tags=tuple(
                tag_str(t) for t in uncovered_tags(level, signed_set, padding=False)
            ),
        )
        cert, signature = signer_certificate(item)
        try:  # cryptography parses names and keys lazily: hostile certificates fail here
            res = dataclasses.replace(res, signer=cert.subject.rfc4514_string())
            cert.public_key()
        except UnsupportedAlgorithm as e:
            message = f"signer certificate: {e}"
            return _fail(res, "UNSUPPORTED_ALGORITHM", message, Indication.INDETERMINATE)
        except Exception as e:  # ValueError, KeyError (unknown string type), ...
            raise DicomFormatError(
                f"Certificate of Signer cannot be decoded ({type(e).__name__}: {e})"
            ) from None
        res = with_findings(res, *_value_surplus(item, cert, signature))
        if claims.timestamped:
            res = _with_timestamp(item, res, options)
        try:
            mac = HashAlgorithm.from_name(res.mac_algorithm or "")
        except UnsupportedAlgorithmError:
            message = f"unknown MAC algorithm {res.mac_algorithm!r}"
            return _fail(res, "UNSUPPORTED_ALGORITHM", message, Indication.INDETERMINATE)
        mac_ts = res.mac_transfer_syntax or ""
        if mac_ts in (ImplicitVRLittleEndian, ExplicitVRBigEndian):
            raise DicomFormatError(
                f"MAC Calculation Transfer Syntax {mac_ts} is not explicit VR LE"
            )
        try:
            digest = _mac(ref, signed, item, mac, old_format=options.old_format, walks=walks)
        except UnsignableElementError as e:
            return _fail(res, "NOT_SIGNABLE", str(e), Indication.INVALID)
        except UnsupportedAlgorithmError as e:
            return _fail(res, "UNSUPPORTED_ALGORITHM", str(e), Indication.INDETERMINATE)

        ok, scheme, message = _check_crypto(cert, signature, mac, digest)
        if ok is None:
            return _fail(res, "UNSUPPORTED_ALGORITHM", message, Indication.INDETERMINATE)
        if not ok:
            res = _explain_mismatch(ref, signed, item, mac, cert, signature, res, options, message,
                                    walks)  # fmt: skip
        res = with_findings(res, *_weakness(mac, cert, options))
        moment = parse_dicom_datetime(res.datetime or "")
        if moment is None:
            message = f"bad Digital Signature DateTime {res.datetime!r}"
            res = with_findings(res, Finding("MALFORMED_SIGNATURE", message, "warning"))
        outside_validity = _outside_validity(moment, cert) if moment is not None else None
        profiles = res.profiles
        if scheme is not None:
            profiles = tuple(
                satisfied_profiles(
                    level,
                    signed_tags=signed_set,
                    top_level=not ref.path,
                    scheme=scheme,
                    mac=mac,
                    purpose=res.purpose.number if res.purpose is not None else None,
                    mac_transfer_syntax=mac_ts,
                )
            )
        # one copy for the outcome (a fault above is MALFORMED_SIGNATURE, whatever it set)
        integrity = Indication.VALID if ok else res.integrity
        trust = res.trust
        notes: list[Finding] = []
        if integrity is Indication.VALID or not options.integrity_only:
            trust, notes = _trust(cert, res, options)
        res = dataclasses.replace(
            res,
            integrity=integrity,
            profiles=profiles,
            trust=trust,
            findings=(*res.findings, *notes),
        )
        if outside_validity is not None:
            res = _judge_signing_time(res, outside_validity, options)
        return res
    except DicomFormatError as e:
        return _fail(res, "MALFORMED_SIGNATURE", str(e), Indication.INVALID)


def _with_timestamp(item: Dataset, res: SignatureResult, options: VerifyOptions) -> SignatureResult:
    from dsig.timestamp.dicom import check_signature_timestamp, timestamp_failure  # lazy: tsp

    try:
        return check_signature_timestamp(item, res, options)
    except Exception as e:  # an undecodable token part must not stop the verification
        message = " ".join(f"undecodable token part: {type(e).__name__}: {e}".split())
        malformed = (Finding("TIMESTAMP_MALFORMED", message),)
        report = TimestampReport(Indication.INVALID, None, None, None, malformed)
        failure = timestamp_failure(options, "INVALID", message)
        return dataclasses.replace(res, timestamp=report, findings=(*res.findings, failure))


def _value_surplus(item: Dataset, cert: x509.Certificate, signature: bytes) -> tuple[Finding, ...]:
    """VALUE_TRAILING_BYTES (a warning, as for bytes after the data set): the MAC excludes
    Certificate of Signer, Signature and Certified Timestamp, and each is read only up to its
    encoded length, so bytes stored after it are covered by nothing and would ride along."""
    surplus = {"Certificate of Signer": der_surplus(raw_bytes(item, CERTIFICATE_OF_SIGNER) or b"")}
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):  # k bytes, padded to an even length when k is odd
        k = (key.key_size + 7) // 8
        extra = max(0, len(signature) - k)
        surplus["Signature"] = 0 if extra == 1 and k % 2 and signature[-1] == 0 else extra
    else:
        surplus["Signature"] = der_surplus(signature)
    if CERTIFIED_TIMESTAMP in item:
        try:
            token = raw_bytes(item, CERTIFIED_TIMESTAMP) or b""
        except DicomFormatError:  # not binary: the timestamp check says TIMESTAMP_MALFORMED
            token = b""
        surplus["Certified Timestamp"] = der_surplus(token)
    return tuple(
        Finding(
            "VALUE_TRAILING_BYTES",
            f"{name} holds {count} byte(s) after its encoded value: covered by no MAC "
            "or signature, they are ignored",
            "warning",
        )
        for name, count in surplus.items()
        if count
    )


def _mac(
    ref: SignatureRef,
    signed: list[int],
    item: Dataset,
    mac: HashAlgorithm,
    *,
    old_format: bool,
    walks: Walks,
) -> bytes:
    hasher = mac.new()
    write_mac_stream(
        ref.level,
        signed,
        item,
        [hasher.update],
        ancestors=ref.ancestors,
        options=StreamOptions(old_format=old_format),
        walks=walks,
    )
    return hasher.digest()


def _explain_mismatch(
    ref: SignatureRef,
    signed: list[int],
    item: Dataset,
    mac: HashAlgorithm,
    cert: x509.Certificate,
    signature: bytes,
    res: SignatureResult,
    options: VerifyOptions,
    message: str,
    walks: Walks,
) -> SignatureResult:
    """Say why the MAC does not match: a missing element, transcoded pixels, the legacy
    DCMTK format, or changed content."""
    present = set(ref.level.keys())
    missing = [t for t in signed if t not in present]
    if missing:
        return _fail(res, "SIGNED_ELEMENT_MISSING",
                     "signed element(s) absent: " + ", ".join(tag_str(t) for t in missing),
                     Indication.INVALID)  # fmt: skip
    if _pixel_encoding_changed(ref.level, signed, res.mac_transfer_syntax or ""):
        return _fail(res, "PIXEL_ENCODING_CHANGED",
                     "pixel data was compressed or decompressed since signing; the MAC cannot "
                     "be recomputed", Indication.INDETERMINATE)  # fmt: skip
    if not options.old_format and _has_encapsulated(ref.level, signed):
        legacy = _mac(ref, signed, item, mac, old_format=True, walks=walks)
        if _check_crypto(cert, signature, mac, legacy)[0]:
            return _fail(res, "LEGACY_FORMAT",
                         "valid only in the pre-3.5.4 DCMTK format: verify in that format",
                         Indication.INVALID, option="old_format")  # fmt: skip
    return _fail(res, "MAC_MISMATCH", message, Indication.INVALID)


def _has_encapsulated(level: Dataset, signed: list[int]) -> bool:
    for tag in signed:
        if tag in level:
            elem = stored(level, tag, keep_deferred=True)
            if isinstance(elem, RawDataElement) and elem.length == UNDEFINED and elem.VR != "SQ":
                return True
    return False


def _pixel_encoding_changed(level: Dataset, signed: list[int], mac_ts: str) -> bool:
    if 0x7FE00010 not in signed or 0x7FE00010 not in level:
        return False
    encapsulated_now = _has_encapsulated(level, [0x7FE00010])
    encapsulated_then = mac_ts not in _NATIVE_MAC_SYNTAXES
    return encapsulated_now != encapsulated_then


def _check_crypto(
    cert: x509.Certificate, signature: bytes, mac: HashAlgorithm, digest: bytes
) -> tuple[bool | None, SignatureScheme | None, str]:
    """(ok, scheme, message); ok=None when the key type is not supported."""
    key = cert.public_key()
    sig = signature_value(cert, signature)
    if isinstance(key, rsa.RSAPublicKey):
        try:
            recovered = key.recover_data_from_signature(sig, padding.PKCS1v15(), None)
        except (InvalidSignature, ValueError):
            return False, SignatureScheme.RSA_PKCS1V15, "the RSA signature does not verify"
        if recovered == mac.digest_info(digest):
            return True, SignatureScheme.RSA_PKCS1V15, ""
        if recovered.endswith(digest):
            return False, SignatureScheme.RSA_PKCS1V15, "the signature names another hash"
        return False, SignatureScheme.RSA_PKCS1V15, "the MAC does not match the signed data"
    if isinstance(key, ec.EllipticCurvePublicKey | dsa.DSAPublicKey):
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(sig, digest, ec.ECDSA(prehashed(mac)))
            else:
                key.verify(sig, digest, prehashed(mac))
        except InvalidSignature:
            return False, SignatureScheme.ECDSA_DER, "the (EC)DSA signature does not verify"
        return True, SignatureScheme.ECDSA_DER, ""
    return None, None, f"unsupported signer key type {type(key).__name__}"


def check_signature_value(
    cert: x509.Certificate, signature: bytes, mac: HashAlgorithm, digest: bytes
) -> bool | None:
    """Whether ``signature`` over ``digest`` verifies with ``cert``'s key (None: key type not
    supported)."""
    return _check_crypto(cert, signature, mac, digest)[0]


def _weakness(mac: HashAlgorithm, cert: x509.Certificate, options: VerifyOptions) -> list[Finding]:
    """WEAK_ALGORITHM: a warning, or under ``strict`` an error unless ``allow_weak`` names it."""
    key = cert.public_key()
    small_key = isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey) and key.key_size < 2048
    if not (mac.weak or small_key):
        return []
    from pki.policy import AlgorithmRule, weak_refused  # lazy: only for weak algorithms

    rule = AlgorithmRule.from_names(options.allow_weak)
    weak: list[tuple[str, str, bool]] = []
    if mac.weak:
        name = mac.hashlib_name
        weak.append((f"{mac.value} is a weak MAC algorithm", name, name in rule.allowed_hashes))
    short = rule.short_key(key)
    if short is not None:
        bits, name, allowed = short
        weak.append((f"signer key is only {bits} bits", name, allowed))
    return [
        Finding("WEAK_ALGORITHM", weak_refused(message, name), option="allow_weak", value=name)
        if options.strict and not allowed
        else Finding("WEAK_ALGORITHM", message, "warning")
        for message, name, allowed in weak
    ]


def _outside_validity(moment: dt.datetime, cert: x509.Certificate) -> str | None:
    """Why the claimed signing time lies outside the certificate validity, else None."""
    if cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
        return None
    validity = f"{cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()}"
    return f"signed at {moment.isoformat()}, outside the certificate validity ({validity})"


def _judge_signing_time(
    res: SignatureResult, message: str, options: VerifyOptions
) -> SignatureResult:
    """SIGNING_TIME_OUTSIDE_VALIDITY is about the certificate, so a trust finding (the bytes
    are intact): trust INVALID, or only a warning when trust was declined (--integrity-only)."""
    code = "SIGNING_TIME_OUTSIDE_VALIDITY"
    if options.integrity_only:
        note = f"{message} (a trust finding, not judged: integrity only)"
        return with_findings(res, Finding(code, note, "warning"))
    trust = dataclasses.replace(
        res.trust,
        indication=TrustIndication.INVALID,
        findings=(*res.trust.findings, TrustFinding(code, message)),
    )
    return dataclasses.replace(res, trust=trust)


def _trust(
    cert: x509.Certificate, res: SignatureResult, options: VerifyOptions
) -> tuple[TrustResult, list[Finding]]:
    if options.trust is None:
        return NOT_CHECKED, []
    at: dt.datetime | None
    notes: list[Finding] = []
    if isinstance(options.at, dt.datetime):
        at = options.at
    elif options.at in ("auto", "timestamp"):
        moment = None
        if res.timestamp:  # dsig.timestamp (asn1crypto's CMS) loads only for a token
            from dsig.timestamp import certified_moment

            moment = certified_moment(res)
        if options.proven_at is not None:  # an evidence record proves existence too
            moment = min(moment or options.proven_at, options.proven_at)
        if moment is not None:
            from dsig.timestamp import trust_at_timestamp

            return trust_at_timestamp(options.trust, cert, moment), []
        if options.at == "timestamp":
            notes.append(
                Finding("TIMESTAMP_MOMENT_UNAVAILABLE",
                        "validation at the timestamp asked for: no valid certified timestamp, "
                        "validated now", "warning")
            )  # fmt: skip
        at = options.clock()
    elif options.at == "signing-time":
        claimed = parse_dicom_datetime(res.datetime or "")
        if claimed is not None:
            from dsig.timestamp import certified_moment, trust_at_timestamp
            from pki.moment import at_claimed_time

            certified = certified_moment(res)
            proven = trust_at_timestamp(options.trust, cert, certified) if certified else None
            return at_claimed_time(options.trust.evaluate(cert, at=claimed), claimed, proven), []
        at = options.clock()
    else:
        at = options.clock()
    return options.trust.evaluate(cert, at=at), notes


def _purpose(item: Dataset) -> PurposeReport | None:
    if PURPOSE_SEQUENCE not in item:
        return None
    items = sequence_datasets(item, PURPOSE_SEQUENCE)
    if not items:
        return None
    code = items[0]
    return PurposeReport(
        raw_text(code, 0x00080100) or "",
        raw_text(code, 0x00080102) or "",
        raw_text(code, 0x00080104) or "",
    )


def dump_mac_stream(
    ds: Dataset, uid: str, sinks: Sequence[Sink], *, old_format: bool = False
) -> None:
    """Write the exact stream that verification recomputes for signature ``uid``."""
    ref = find_signature(ds, uid)
    claims = Claims(ref)
    if claims.params is None:
        raise DicomFormatError(f"signature {uid} has no MAC Parameters item")
    write_mac_stream(
        ref.level,
        claims.signed,
        claims.item,
        sinks,
        ancestors=ref.ancestors,
        options=StreamOptions(old_format=old_format),
    )


__all__ = ["Profile", "VerifyOptions", "dump_mac_stream", "verify_dataset", "verify_file"]
