"""The explanation of one file's signatures: plain frozen data, no behaviour."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from dsig.results import FileResult


class StepStatus(enum.StrEnum):
    """How one step of the verification came out."""

    PASSED = "passed"
    FAILED = "failed"  # decides the verdict against the signature
    WARNING = "warning"  # noted, does not change the verdict
    NOT_RUN = "not run"  # skipped (no trust store, an earlier failure...)
    INFO = "info"


@dataclass(frozen=True)
class Step:
    """One step: what was done and what came out."""

    name: str
    status: StepStatus
    summary: str
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class StreamEntry:
    """One element as it entered the MAC stream."""

    tag: str
    name: str
    vr: str
    how: str  # "header + value length 10", "3 fragments hashed as stored, ..."
    stream_bytes: int  # bytes this element contributed to the stream
    digest: str  # hex digest of those bytes alone, with the signature's MAC algorithm
    source: str = "data set"  # or "signature item" (appended after the data elements)


@dataclass(frozen=True)
class UncoveredElement:
    """An element present at the signature's level that the signature does not cover."""

    tag: str
    name: str
    reason: str  # "not listed in Data Elements Signed", "VR UN: no signature can cover it"


@dataclass(frozen=True)
class SignatureExplanation:
    """Everything about one signature, in the order verification did it."""

    uid: str
    location: str  # "" for the main data set
    signer: str | None
    signed_at: str | None
    mac_algorithm: str | None
    mac_transfer_syntax: str | None
    covered: tuple[StreamEntry, ...]
    absent: tuple[str, ...]  # listed in Data Elements Signed but not in the file
    not_covered: tuple[UncoveredElement, ...]
    stream_length: int | None
    digest_recomputed: str | None
    digest_carried: str | None
    digest_note: str
    steps: tuple[Step, ...]
    verdict: str  # VALID / INVALID / INDETERMINATE, as dsig verify says
    decided_by: str  # name of the step that decided the verdict
    decision: str  # why, in one sentence
    changed: tuple[str, ...] = ()  # elements shown to have changed (named, e.g. "PatientName")
    change_note: str = ""  # how ``changed`` was found, or why it cannot be


@dataclass(frozen=True)
class ElementNode:
    """One element of the file's tree; ``covered`` is None for framing elements (the
    signatures, group lengths) that no signature covers by design."""

    tag: str
    name: str
    vr: str
    summary: str
    covered: bool | None
    children: tuple[ElementNode, ...] = ()


@dataclass(frozen=True)
class Explanation:
    """The whole explanation of one file."""

    path: str
    verdict: str  # file verdict, as dsig verify prints it
    exit_code: int  # dsig verify's exit code for this file
    object_kind: str  # SOP Class name
    transfer_syntax: str  # name and UID
    particulars: tuple[str, ...]  # JPEG/JPEG 2000/RLE/waveform specifics
    signatures: tuple[SignatureExplanation, ...]
    file_steps: tuple[Step, ...]  # file-level findings (requirements, coverage)
    decided_by: str
    decision: str
    tree: tuple[ElementNode, ...] = ()
    result: FileResult | None = field(default=None, compare=False, repr=False)
