"""Build an :class:`~dsig.explain.model.Explanation`: verify with the verifier, then add what
it does not keep (stream entries, digests, trust steps, the deciding step)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from asn1crypto import algos
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydicom.dataset import Dataset
from pydicom.uid import UID

from dsig.encoding.reader import read_dicom
from dsig.encoding.tags import tag_name
from dsig.encoding.values import raw_text
from dsig.encoding.walk import Walks
from dsig.errors import DsigError
from dsig.explain.entries import stream_entries
from dsig.explain.model import (
    Explanation,
    SignatureExplanation,
    Step,
    StepStatus,
    StreamEntry,
    UncoveredElement,
)
from dsig.explain.particulars import particulars
from dsig.explain.tree import element_tree
from dsig.explain.trust_steps import TRUST_ORDER, timestamp_step, trust_steps
from dsig.operations.verifier import VerifyOptions, dump_mac_stream, verify_dataset
from dsig.results import FileResult, Indication, SignatureResult, exit_code
from dsig.signature.mac_stream import StreamOptions
from dsig.signature.model import (
    DATA_ELEMENTS_SIGNED,
    MAC_ALGORITHM,
    MAC_ID_NUMBER,
    SignatureRef,
    find_signatures,
    mac_parameters,
    raw_tags,
    raw_ushort,
    signature_value,
    signer_certificate,
)
from tokens.digest import HashAlgorithm
from tokens.errors import UnsupportedAlgorithmError

T = TypeVar("T")


@dataclass(frozen=True)
class ExplainOptions:
    """``verify``: exactly what ``dsig verify`` would use; ``signature``: explain only the
    signature with this UID; ``reference``: an earlier copy of the file whose per-element
    stream digests are compared to localise a change."""

    verify: VerifyOptions = field(default_factory=VerifyOptions)
    signature: str | None = None
    reference: Path | None = None
    tree: bool = True


def explain_file(path: Path, options: ExplainOptions = ExplainOptions()) -> Explanation:
    """Explain every signature of ``path`` (raises DsigError for unreadable input)."""
    ds = read_dicom(path, options.verify.limits, read=options.verify.read)
    reference = None
    if options.reference is not None:
        reference = read_dicom(options.reference, options.verify.limits, read=options.verify.read)
    return explain_dataset(ds, options, path=str(path), reference=reference)


def explain_dataset(
    ds: Dataset,
    options: ExplainOptions = ExplainOptions(),
    *,
    path: str = "",
    reference: Dataset | None = None,
) -> Explanation:
    """Explain the signatures of ``ds``; the verdict is :func:`verify_dataset`'s."""
    from dsig.errors import SignatureNotFoundError

    result = verify_dataset(ds, options.verify, path=path)
    refs = find_signatures(ds, options.verify.limits)
    pairs = list(zip(refs, result.signatures, strict=True))
    if options.signature is not None:
        pairs = [(r, s) for r, s in pairs if s.uid == options.signature]
        if not pairs:
            raise SignatureNotFoundError(f"no signature with UID {options.signature}")
    ref_digests = _reference_digests(reference, options) if reference is not None else None
    sigs = [
        _guarded(functools.partial(_explain_one, ref, sig, result, options, ref_digests), sig)
        for ref, sig in pairs
    ]
    covered = {t for s in result.signatures if not s.location for t in s.signed_tags}
    undecodable: list[str] = []
    tree = (
        tuple(_or_note(lambda: element_tree(ds, covered, undecodable), ())) if options.tree else ()
    )
    file_steps = tuple(
        Step(f.code, _FILE_STATUS.get(f.severity, StepStatus.WARNING), f.message)
        for f in result.findings
    ) + _undecodable_step(undecodable)  # fmt: skip
    decided_by, decision = _file_decision(result, sigs, file_steps)
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    sop = raw_text(ds, 0x00080016) or ""
    return Explanation(
        path=path,
        verdict=result.indication.value,
        exit_code=exit_code([result]),
        object_kind=f"{UID(sop).name} ({sop})" if sop else "unknown SOP class",
        transfer_syntax=f"{UID(ts).name} ({ts})" if ts else "unknown",
        particulars=tuple(_or_note(lambda: particulars(ds, ts))),
        signatures=tuple(sigs),
        file_steps=file_steps,
        decided_by=decided_by,
        decision=decision,
        tree=tree,
        result=result,
    )


_FILE_STATUS = {"error": StepStatus.FAILED, "warning": StepStatus.WARNING, "info": StepStatus.INFO}


def _undecodable_step(where: list[str]) -> tuple[Step, ...]:
    """One info step for text values the tree shows with U+FFFD (bytes invalid in their
    Specific Character Set), where pydicom would warn on stderr."""
    if not where:
        return ()
    shown = ", ".join(where[:5]) + (f" and {len(where) - 5} more" if len(where) > 5 else "")
    return (Step("VALUE_NOT_DECODABLE", StepStatus.INFO,
                 f"{len(where)} text value(s) hold bytes invalid in their Specific Character "
                 f"Set, shown with replacement characters: {shown}"),)  # fmt: skip


def _or_note(make: Callable[[], Sequence[T]], note: Sequence[T] | None = None) -> Sequence[T]:
    """Hostile structure the verifier judged already must not stop the explanation."""
    try:
        return make()
    except DsigError as e:
        return note if note is not None else [f"cannot be taken apart: {e}"]  # type: ignore[list-item]


def _guarded(
    explain: Callable[[], SignatureExplanation], sig: SignatureResult
) -> SignatureExplanation:
    """``explain()``; the verifier's verdict stands even when the signature cannot be taken
    apart."""
    try:
        return explain()
    except DsigError as e:
        findings = tuple(f"{f.code}: {f.message}" for f in sig.findings)
        ok = sig.integrity is Indication.VALID
        status = StepStatus.PASSED if ok else StepStatus.FAILED
        step = Step("signature check", status, f"integrity {sig.integrity.value}", findings)
        return SignatureExplanation(
            uid=sig.uid, location=sig.location, signer=sig.signer, signed_at=sig.datetime,
            mac_algorithm=sig.mac_algorithm, mac_transfer_syntax=sig.mac_transfer_syntax,
            covered=(), absent=(), not_covered=(), stream_length=None, digest_recomputed=None,
            digest_carried=None, digest_note=f"cannot be taken apart: {e}", steps=(step,),
            verdict=sig.indication.value, decided_by="signature check",
            decision="; ".join(findings) or f"integrity {sig.integrity.value}",
        )  # fmt: skip


def _mac(sig: SignatureResult) -> HashAlgorithm | None:
    try:
        return HashAlgorithm.from_name(sig.mac_algorithm or "")
    except UnsupportedAlgorithmError:
        return None


def _signed(ref: SignatureRef) -> list[int]:
    mac_id = raw_ushort(ref.item, MAC_ID_NUMBER)
    params = mac_parameters(ref.level, mac_id) if mac_id is not None else None
    return raw_tags(params, DATA_ELEMENTS_SIGNED) if params is not None else []


def _carried_digest(cert: x509.Certificate, signature: bytes) -> tuple[str | None, str]:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return None, (
            "an (EC)DSA signature does not carry the digest: it is checked against the "
            "recomputed one"
        )
    try:
        recovered = key.recover_data_from_signature(
            signature_value(cert, signature), padding.PKCS1v15(), None
        )
        info = algos.DigestInfo.load(recovered)
        name = info["digest_algorithm"]["algorithm"].native
        return bytes(info["digest"].native).hex(), f"recovered from the RSA signature ({name})"
    except Exception as e:  # InvalidSignature, ValueError, asn1crypto errors
        return None, f"no digest can be read from the RSA signature ({type(e).__name__})"


_INTEGRITY_CODES = frozenset(
    {"MAC_MISMATCH", "SIGNED_ELEMENT_MISSING", "NOT_SIGNABLE", "PIXEL_ENCODING_CHANGED",
     "LEGACY_FORMAT", "MALFORMED_SIGNATURE", "UNSUPPORTED_ALGORITHM"}
)  # fmt: skip


def _explain_one(
    ref: SignatureRef,
    sig: SignatureResult,
    result: FileResult,
    options: ExplainOptions,
    ref_digests: dict[str, dict[str, str]] | None,
) -> SignatureExplanation:
    signed = _signed(ref)
    mac = _mac(sig)
    old_format = options.verify.old_format
    stream_options = StreamOptions(old_format=old_format)
    entries: list[StreamEntry] = []
    recomputed: str | None = None
    stream_length: int | None = None
    if mac is not None and sig.mac_id is not None:
        try:
            entries = stream_entries(ref.level, signed, ref.item, ref.ancestors, mac,
                                     stream_options)  # fmt: skip
            hasher = mac.new()
            counter = _Counter()
            dump_mac_stream(_root(ref), sig.uid, [hasher.update, counter], old_format=old_format)
            recomputed, stream_length = hasher.digest().hex(), counter.n
        except Exception:  # DicomFormatError...: the verifier's findings say what is wrong
            recomputed = None
    cert: x509.Certificate | None = None
    carried: str | None = None
    note = ""
    try:
        cert, signature = signer_certificate(ref.item)
        carried, note = _carried_digest(cert, signature)
    except Exception as e:  # DicomFormatError: reported by the verifier's findings
        note = f"no signer certificate/signature to read ({e})"
    present = set(ref.level.keys())
    absent = tuple(tag_name(t) for t in signed if t not in present)
    signable = Walks().of(ref.level, ref.ancestors).signable  # one walk, not one per tag
    not_covered = tuple(
        UncoveredElement(t, tag_name(_tag(t)),
                         "not listed in Data Elements Signed"
                         if signable(_tag(t))
                         else "no signature can cover it (VR UN, group below 0008, padding)")
        for t in sig.unsigned_tags
    )  # fmt: skip
    steps = _integrity_steps(sig, entries, absent, recomputed, carried, note, stream_length)
    ts = timestamp_step(sig.timestamp)
    if ts is not None:
        steps.append(ts)
    steps.extend(trust_steps(sig, cert, options.verify.at))
    steps.extend(
        Step("policy", StepStatus.FAILED if f.severity == "error" else StepStatus.WARNING,
             f"{f.code}: {f.message}")
        for f in sig.findings
        if f.code not in _INTEGRITY_CODES and not f.code.startswith("TIMESTAMP")
    )  # fmt: skip
    decided_by, decision = _decision(sig, steps)
    changed, change_note = _localise(ref, sig, result, entries, absent, ref_digests)
    return SignatureExplanation(
        uid=sig.uid, location=sig.location, signer=sig.signer, signed_at=sig.datetime,
        mac_algorithm=sig.mac_algorithm, mac_transfer_syntax=sig.mac_transfer_syntax,
        covered=tuple(entries), absent=absent, not_covered=not_covered,
        stream_length=stream_length, digest_recomputed=recomputed, digest_carried=carried,
        digest_note=note, steps=tuple(steps), verdict=sig.indication.value,
        decided_by=decided_by, decision=decision, changed=changed, change_note=change_note,
    )  # fmt: skip


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, data: bytes | memoryview) -> None:
        self.n += len(data)


def _root(ref: SignatureRef) -> Dataset:
    return ref.ancestors[-1] if ref.ancestors else ref.level


def _tag(text: str) -> int:
    return int(text[1:5], 16) << 16 | int(text[6:10], 16)


def _integrity_steps(
    sig: SignatureResult,
    entries: list[StreamEntry],
    absent: tuple[str, ...],
    recomputed: str | None,
    carried: str | None,
    note: str,
    length: int | None,
) -> list[Step]:
    integrity = [f for f in sig.findings if f.code in _INTEGRITY_CODES]
    failed = sig.integrity is not Indication.VALID
    data = sum(1 for e in entries if e.source == "data set")
    if recomputed is None:
        reason = "; ".join(f"{f.code}: {f.message}" for f in integrity) or "see the findings"
        return [
            Step("MAC stream", StepStatus.NOT_RUN, f"not built ({reason})"),
            Step("signature check", StepStatus.FAILED, f"integrity {sig.integrity.value}",
                 tuple(f"{f.code}: {f.message}" for f in integrity)),
        ]  # fmt: skip
    stream = Step(
        "MAC stream",
        StepStatus.FAILED if absent else StepStatus.PASSED,
        f"{data} data element(s) then {len(entries) - data} signature item element(s), "
        f"explicit VR little endian, {length} bytes"
        + (f"; listed but absent: {', '.join(absent)}" if absent else ""),
    )
    same = recomputed is not None and carried is not None and recomputed == carried
    if carried is None:
        digest_status = StepStatus.INFO
    else:
        digest_status = StepStatus.PASSED if same else StepStatus.FAILED
    digest = Step(
        "digest",
        digest_status,
        f"{sig.mac_algorithm} recomputed {recomputed}; "
        f"carried {carried or 'not readable'} ({note})"
        + (": they match" if same else (": they differ" if carried else "")),
    )  # fmt: skip
    check = Step(
        "signature check",
        StepStatus.FAILED if failed else StepStatus.PASSED,
        (f"integrity {sig.integrity.value}" if failed else
         "the signature verifies with the signer certificate's public key over the digest"),
        tuple(f"{f.code}: {f.message}" for f in integrity),
    )  # fmt: skip
    return [stream, digest, check]


_FINDING_LINE = re.compile(r"^[A-Z][A-Z_]+: ")


def _decision(sig: SignatureResult, steps: list[Step]) -> tuple[str, str]:
    """The one step that decided: phase 1 first, then the timestamp, then trust."""
    if sig.indication is Indication.VALID:
        if not sig.trust_required:
            return "signature check", (
                "the bytes are intact; trust was declined (integrity only), so nothing here "
                "says who signed"
            )
        return "all steps", "every step passed: the bytes are intact and the signer is trusted"
    names = ["MAC stream", "signature check", "timestamp", "policy", *TRUST_ORDER]
    timestamp_counts = any(
        f.severity == "error" and f.code.startswith("TIMESTAMP") for f in sig.findings
    )
    for name in names:
        if name == "timestamp" and not timestamp_counts:
            continue
        if name in TRUST_ORDER and not sig.trust_required:
            continue
        for step in steps:
            if step.name == name and step.status in (StepStatus.FAILED, StepStatus.NOT_RUN):
                coded = [d for d in step.details if _FINDING_LINE.match(d)]
                why = (coded or list(step.details) or [""])[0]
                return name, step.summary + (f" ({why})" if why else "")
    return "signature check", f"integrity {sig.integrity.value}, trust {sig.trust.indication.value}"


def _file_decision(
    result: FileResult, sigs: list[SignatureExplanation], file_steps: tuple[Step, ...]
) -> tuple[str, str]:
    if result.error:
        return "reading", result.error
    for step in file_steps:
        if step.status is StepStatus.FAILED:
            return step.name, step.summary
    if not result.signatures:
        return "reading", "the file has no signature"
    worst = [s for s in sigs if s.verdict == result.indication.value]
    if not worst:  # the deciding signature was left out with --signature
        other = next(s for s in result.signatures if s.indication is result.indication)
        return "another signature", (
            f"signature {other.uid} (not shown: another signature was asked for) is "
            f"{other.indication.value}"
        )
    first = worst[0]
    return first.decided_by, f"signature {first.uid}: {first.decision}"


def _reference_digests(reference: Dataset, options: ExplainOptions) -> dict[str, dict[str, str]]:
    """Per signature UID of the reference copy: {element name: stream digest}."""
    out: dict[str, dict[str, str]] = {}
    for ref in find_signatures(reference, options.verify.limits):
        try:
            mac = HashAlgorithm.from_name(raw_text(_params(ref), MAC_ALGORITHM) or "")
        except (UnsupportedAlgorithmError, LookupError):
            continue  # the reference's own problem: nothing to compare for this signature
        entries = stream_entries(ref.level, _signed(ref), ref.item, ref.ancestors, mac,
                                 StreamOptions(old_format=options.verify.old_format))  # fmt: skip
        out[ref.uid] = {e.name: e.digest for e in entries}
    return out


def _params(ref: SignatureRef) -> Dataset:
    mac_id = raw_ushort(ref.item, MAC_ID_NUMBER)
    params = mac_parameters(ref.level, mac_id) if mac_id is not None else None
    if params is None:
        raise LookupError("no MAC parameters")
    return params


def _localise(
    ref: SignatureRef,
    sig: SignatureResult,
    result: FileResult,
    entries: list[StreamEntry],
    absent: tuple[str, ...],
    ref_digests: dict[str, dict[str, str]] | None,
) -> tuple[tuple[str, ...], str]:
    """Name what changed when the MAC does not match, as far as the file allows."""
    if sig.integrity is Indication.VALID:
        return (), ""
    if absent:
        return absent, "listed in Data Elements Signed but absent from the file"
    if ref_digests is not None:
        earlier = ref_digests.get(sig.uid)
        if earlier is None:
            return (), "the reference copy has no signature with this UID"
        now = {e.name: e.digest for e in entries}
        changed = tuple(n for n in sorted(set(now) | set(earlier)) if now.get(n) != earlier.get(n))
        return changed, "per-element stream digests differ from the reference copy"
    intact = [
        s
        for s in result.signatures
        if s.location == sig.location and s.integrity is Indication.VALID
    ]
    if intact:
        vouched = {t for s in intact for t in s.signed_tags}
        suspects = tuple(tag_name(_tag(t)) for t in sig.signed_tags if t not in vouched)
        if suspects:
            return suspects, (
                "the change lies among these: every other element this signature covers is "
                "also covered by an intact signature"
            )
    return (), (
        "a MAC covers all its elements at once, so the file alone cannot tell which one "
        "changed: compare with an earlier copy (a reference file) or compare the per-element "
        "digests shown here with those of the original"
    )
