"""Verify a study manifest: its own signature (integrity and trust, as ``dsig verify``), then
every instance it lists against the files given: ok, modified, missing; instances of the
same study it does not list: extra."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from dsig.encoding.read_options import ReadOptions
from dsig.encoding.reader import read_dicom
from dsig.encoding.tags import tag_str
from dsig.encoding.values import UNDEFINED, raw_text, stored
from dsig.errors import DicomFormatError, DsigError
from dsig.manifest.mac import NATIVE_MAC_SYNTAXES, reference_mac, signable_tags
from dsig.manifest.model import EVIDENCE_SEQUENCE, Manifest, Reference, is_manifest, read_manifest
from dsig.manifest.scan import candidate_files, examine, map_files
from dsig.operations.verifier import VerifyOptions, verify_dataset
from dsig.results import FileResult, Indication, exit_code_for, worst
from dsig.signature.mac_stream import UnsignableElementError
from dsig.signature.model import SIGNATURE, find_signatures, raw_bytes
from pki.policy import AlgorithmRule, weak_refused
from tokens.digest import HashAlgorithm
from tokens.errors import UnsupportedAlgorithmError


class Status(enum.StrEnum):
    """What became of one instance."""

    OK = "ok"
    MODIFIED = "modified"
    MISSING = "missing"
    EXTRA = "extra"
    #: The MAC cannot be recomputed (pixel data (de)compressed, unknown MAC algorithm).
    INDETERMINATE = "indeterminate"
    #: A DICOM file that cannot be read: it may be an instance, nobody can tell which.
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class InstanceCheck:
    """The verdict on one referenced instance or one file."""

    status: Status
    sop_instance_uid: str | None
    path: str | None
    series_uid: str | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "status": self.status.value,
            "sop_instance_uid": self.sop_instance_uid,
            "series_instance_uid": self.series_uid,
            "path": self.path,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ManifestVerification:
    """The whole verdict: the manifest's own signature, then every instance."""

    path: str
    #: The manifest's signatures as ``dsig verify`` judges them.
    signature: FileResult
    #: Parsed references (None when the manifest could not be parsed).
    manifest: Manifest | None
    instances: tuple[InstanceCheck, ...]
    #: Files left out: (path, reason): not DICOM, another study, the manifest itself.
    skipped: tuple[tuple[str, str], ...] = ()
    #: Problems with the manifest beyond its signature (not covering the evidence...).
    problems: tuple[str, ...] = ()
    allow_extra: bool = False
    #: Informative notes (a weak reference MAC algorithm without ``strict``).
    warnings: tuple[str, ...] = ()

    @property
    def manifest_indication(self) -> Indication:
        """VALID only for a manifest with a valid main-level signature over its evidence."""
        if self.signature.error is not None:
            return Indication.ERROR
        if self.problems:
            return Indication.INVALID
        indication = self.signature.indication
        return Indication.INVALID if indication is Indication.UNSIGNED else indication

    def count(self, status: Status) -> int:
        """How many instances have ``status``."""
        return sum(1 for i in self.instances if i.status is status)

    @property
    def indication(self) -> Indication:
        """VALID only when the manifest is VALID and every instance ok, none missing, none
        extra (unless ``allow_extra``)."""
        manifest = self.manifest_indication
        # an instance not found may be in a file that could not be read: an error (exit 4),
        # as verify's for that file, not a proven absence
        unsure = self.count(Status.UNREADABLE) > 0
        statuses = {c.status for c in self.instances}
        if (
            Status.MODIFIED in statuses
            or (Status.MISSING in statuses and not unsure)
            or (Status.EXTRA in statuses and not self.allow_extra)
        ):
            return Indication.INVALID
        if manifest in (Indication.INVALID, Indication.ERROR):
            return manifest
        if unsure:  # whatever else was found: ERROR outranks INDETERMINATE, as in verify
            return Indication.ERROR
        if Status.INDETERMINATE in statuses:
            return worst(manifest, Indication.INDETERMINATE)
        return manifest

    @property
    def exit_code(self) -> int:
        """0 valid and complete; 1 invalid manifest or modified/missing/extra; 3 trust (or a
        MAC) indeterminate; 4 a file could not be read."""
        return exit_code_for([self.indication])

    def summary(self) -> dict[str, int]:
        """Counts per status (every status present, zero or not)."""
        return {s.value: self.count(s) for s in Status}

    def to_json(self) -> dict[str, Any]:
        """JSON form (schema in the README)."""
        return {
            "manifest": {
                "path": self.path,
                "sop_instance_uid": self.manifest.sop_instance_uid if self.manifest else None,
                "study_instance_uid": self.manifest.study_uid if self.manifest else None,
                "references": len(self.manifest.references) if self.manifest else None,
                "indication": self.manifest_indication.value,
                "problems": list(self.problems),
                "warnings": list(self.warnings),
                "verification": self.signature.to_json(),
            },
            "instances": [i.to_json() for i in self.instances],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "summary": self.summary(),
            "allow_extra": self.allow_extra,
            "indication": self.indication.value,
            "exit_code": self.exit_code,
        }


def verify_manifest(
    manifest_path: Path,
    paths: Sequence[Path],
    options: VerifyOptions | None = None,
    *,
    allow_extra: bool = False,
    jobs: int = 1,
) -> ManifestVerification:
    """Verify the manifest at ``manifest_path`` and the study in ``paths``.

    ``options`` judge the manifest's own signature exactly as :func:`dsig.verify_file` does
    (``options.read``: how the instances are read; the manifest itself is read as a file)
    (no trust evaluator: INDETERMINATE unless ``integrity_only``). Raises DicomFormatError
    when the manifest file cannot be read or is not a study manifest. ``jobs``: worker
    processes that read and hash the instances (forked; 1 = this process).
    """
    options = options or VerifyOptions()
    ds = read_dicom(manifest_path, options.limits)
    if not is_manifest(ds):
        raise DicomFormatError(
            f"{manifest_path}: not a study manifest (no Key Object Selection Document titled "
            "'Signed Complete Acquisition Content')"
        )
    signature = verify_dataset(ds, options, path=str(manifest_path))
    problems: list[str] = []
    manifest: Manifest | None = None
    try:
        manifest = read_manifest(ds)
    except DicomFormatError as e:
        problems.append(f"malformed manifest: {e}")
    if not _evidence_covered(signature):
        problems.append(
            "no intact main-level signature covers the Current Requested Procedure Evidence "
            "Sequence (0040,A375)"
        )
    if manifest is None:
        return ManifestVerification(
            str(manifest_path), signature, None, (), (), tuple(problems), allow_extra
        )
    del ds
    warnings = _weak_macs(manifest, options, problems)
    checks, skipped = _check_files(manifest, paths, manifest_path, jobs, options.read)
    return ManifestVerification(
        str(manifest_path), signature, manifest, checks, skipped, tuple(problems), allow_extra,
        tuple(warnings),
    )  # fmt: skip


def _weak_macs(manifest: Manifest, options: VerifyOptions, problems: list[str]) -> list[str]:
    """Weak reference MAC algorithms (MD5, SHA-1): a problem under ``strict`` unless
    ``allow_weak`` names them, else a warning (as for a signature's own MAC)."""
    rule = AlgorithmRule.from_names(options.allow_weak)
    warnings = []
    for name in sorted({r.mac_algorithm for r in manifest.references if r.mac_algorithm}):
        try:
            algorithm = HashAlgorithm.from_name(name)
        except UnsupportedAlgorithmError:
            continue  # reported per instance as indeterminate
        if not algorithm.weak:
            continue
        message = f"references use the weak MAC algorithm {name}"
        short = algorithm.hashlib_name
        if options.strict and short not in rule.allowed_hashes:
            problems.append(weak_refused(message, short))
        else:
            warnings.append(message)
    return warnings


def _evidence_covered(result: FileResult) -> bool:
    """A main-level signature whose MAC and signature verify lists the evidence sequence
    (trust is judged by the file's indication)."""
    wanted = tag_str(EVIDENCE_SEQUENCE)
    return any(
        not sig.location and wanted in sig.signed_tags and sig.integrity is Indication.VALID
        for sig in result.signatures
    )


def _check_files(
    manifest: Manifest, paths: Sequence[Path], manifest_path: Path, jobs: int, read: ReadOptions
) -> tuple[tuple[InstanceCheck, ...], tuple[tuple[str, str], ...]]:
    refs = {r.sop_instance_uid: r for r in manifest.references}
    seen: set[str] = set()
    checks: list[InstanceCheck] = []
    skipped: list[tuple[str, str]] = []
    candidates = list(candidate_files(paths, exclude=[manifest_path]))

    def check(candidate: tuple[Path, bool]) -> InstanceCheck | tuple[str, str]:
        return _check_file(*candidate, manifest, refs, read)

    for outcome in map_files(check, candidates, jobs):
        if isinstance(outcome, tuple):
            skipped.append(outcome)
            continue
        checks.append(outcome)
        if outcome.status not in (Status.EXTRA, Status.UNREADABLE) and outcome.sop_instance_uid:
            seen.add(outcome.sop_instance_uid)
    unreadable = sum(1 for c in checks if c.status is Status.UNREADABLE)
    why = "listed in the manifest, found in no file given" + (
        f" (it may be in the {unreadable} unreadable file(s))" if unreadable else ""
    )
    for ref in manifest.references:
        if ref.sop_instance_uid not in seen:
            checks.append(
                InstanceCheck(Status.MISSING, ref.sop_instance_uid, None, ref.series_uid, why)
            )
    return tuple(checks), tuple(skipped)


def _check_file(
    path: Path, explicit: bool, manifest: Manifest, refs: dict[str, Reference], read: ReadOptions
) -> InstanceCheck | tuple[str, str]:
    """One file's verdict, or (path, reason) when it is not part of the study."""
    found = examine(path, explicit, read)
    where = str(path)
    if found.error is not None:
        return InstanceCheck(Status.UNREADABLE, None, where, reason=found.error)
    if found.dataset is None:
        return where, found.skipped or ""
    ds = found.dataset
    uid = raw_text(ds, 0x00080018) or ""
    series = raw_text(ds, 0x0020000E)
    if uid == manifest.sop_instance_uid:
        return where, "the manifest itself"
    if raw_text(ds, 0x0020000D) != manifest.study_uid:
        return where, f"another study ({raw_text(ds, 0x0020000D)})"
    ref = refs.get(uid)
    if ref is None:
        return InstanceCheck(Status.EXTRA, uid, where, series, "not listed in the manifest")
    try:
        status, reason = check_instance(ds, ref)
    except DsigError as e:  # malformed beyond what reading found (signature attributes...)
        return InstanceCheck(Status.UNREADABLE, uid, where, series, str(e))
    return InstanceCheck(status, uid, where, series, reason)


def check_instance(ds: Dataset, ref: Reference) -> tuple[Status, str]:
    """Compare one instance with its reference: (status, reason)."""
    for tag, expected, name in (
        (0x00080016, ref.sop_class_uid, "SOP Class UID"),
        (0x0020000E, ref.series_uid, "Series Instance UID"),
    ):
        actual = raw_text(ds, tag)
        if actual != expected:
            return Status.MODIFIED, f"{name} is {actual}, the manifest says {expected}"
    if ref.mac is not None:
        status, reason = _check_mac(ds, ref)
        if status is not Status.OK:
            return status, reason
    if ref.signatures:
        status, reason = _check_signatures(ds, ref)
        if status is not Status.OK:
            return status, reason
    pinned = ["MAC"] if ref.mac is not None else []
    pinned += [f"signature {s.uid}" for s in ref.signatures]
    return Status.OK, "matches: " + ", ".join(pinned)


def _check_mac(ds: Dataset, ref: Reference) -> tuple[Status, str]:
    try:
        algorithm = HashAlgorithm.from_name(ref.mac_algorithm or "")
    except UnsupportedAlgorithmError:
        return Status.INDETERMINATE, f"unknown MAC algorithm {ref.mac_algorithm!r}"
    if _pixel_encoding_changed(ds, ref):
        return Status.INDETERMINATE, (
            "pixel data was compressed or decompressed since the manifest was made: the MAC "
            "cannot be recomputed (as for a signature: PIXEL_ENCODING_CHANGED)"
        )
    try:
        mac, missing = reference_mac(ds, ref.signed_tags, algorithm)
    except UnsignableElementError as e:
        return Status.MODIFIED, f"{e} any more"
    if missing:
        return Status.MODIFIED, "element(s) removed: " + _tags(missing)
    if mac != ref.mac:
        return Status.MODIFIED, f"the {ref.mac_algorithm} MAC differs: content changed"
    added = sorted(set(signable_tags(ds)) - set(ref.signed_tags))
    if added:
        return Status.MODIFIED, "element(s) added since the manifest: " + _tags(added)
    return Status.OK, ""


def _check_signatures(ds: Dataset, ref: Reference) -> tuple[Status, str]:
    main = {r.uid: r for r in find_signatures(ds) if not r.path}
    result: FileResult | None = None
    for pinned in ref.signatures:
        sig = main.get(pinned.uid)
        if sig is None:
            return Status.MODIFIED, f"referenced signature {pinned.uid} is gone"
        if raw_bytes(sig.item, SIGNATURE) != pinned.signature:
            return Status.MODIFIED, f"referenced signature {pinned.uid} has another value"
        if result is None:
            result = verify_dataset(ds, VerifyOptions(integrity_only=True))
        verdict = next(s for s in result.signatures if not s.location and s.uid == pinned.uid)
        if verdict.integrity is not Indication.VALID:
            codes = ", ".join(f.code for f in verdict.findings) or verdict.integrity.value
            status = (
                Status.INDETERMINATE
                if verdict.integrity is Indication.INDETERMINATE
                else Status.MODIFIED
            )
            return status, f"referenced signature {pinned.uid} no longer verifies ({codes})"
    return Status.OK, ""


def _pixel_encoding_changed(ds: Dataset, ref: Reference) -> bool:
    if 0x7FE00010 not in ref.signed_tags or 0x7FE00010 not in ds:
        return False
    elem = stored(ds, 0x7FE00010, keep_deferred=True)
    if isinstance(elem, RawDataElement):
        encapsulated_now = elem.length == UNDEFINED
    else:
        encapsulated_now = bool(elem.is_undefined_length)
    return encapsulated_now != (ref.mac_transfer_syntax not in NATIVE_MAC_SYNTAXES)


def _tags(tags: Sequence[int]) -> str:
    shown = ", ".join(tag_str(t) for t in tags[:8])
    return shown + (f" and {len(tags) - 8} more" if len(tags) > 8 else "")
