"""The explanation as an outline: (depth, text, status) lines, shared by the terminal
renderers and the HTML page so they say the same thing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from dsig.explain.model import Explanation, SignatureExplanation, StepStatus


@dataclass(frozen=True)
class Line:
    """One outline line; ``status`` picks the colour."""

    depth: int
    text: str
    status: str = ""  # a StepStatus value, a verdict, or ""


def outline(ex: Explanation) -> Iterator[Line]:
    """The whole explanation, top to bottom."""
    yield Line(0, f"{ex.verdict}  {ex.path}", ex.verdict)
    yield Line(1, f"object: {ex.object_kind}")
    yield Line(1, f"transfer syntax: {ex.transfer_syntax}")
    for text in ex.particulars:
        yield Line(2, text)
    if not ex.signatures:
        yield Line(1, "no signature to explain")
    for n, sig in enumerate(ex.signatures, 1):
        yield from _signature(n, sig)
    for step in ex.file_steps:
        yield Line(1, f"file: {step.name}: {step.summary}", step.status.value)
    yield Line(0, f"verdict {ex.verdict}, decided by: {ex.decided_by}: {ex.decision}", ex.verdict)


def _signature(n: int, sig: SignatureExplanation) -> Iterator[Line]:
    where = sig.location or "main data set"
    yield Line(1, f"signature #{n} {sig.uid} ({where}): {sig.verdict}", sig.verdict)
    yield Line(2, f"signer {sig.signer}, signed {sig.signed_at}")
    yield Line(
        2, f"MAC algorithm {sig.mac_algorithm}, MAC transfer syntax {sig.mac_transfer_syntax}"
    )
    data = sum(1 for e in sig.covered if e.source == "data set")
    yield Line(
        2,
        f"phase 1, integrity: {len(sig.covered)} element(s) entered the MAC stream ({data} of "
        f"the data set, as dsig verify counts them, then {len(sig.covered) - data} of the "
        "signature item)",
    )
    for e in sig.covered:
        origin = " [signature item]" if e.source != "data set" else ""
        name = e.tag if e.name == e.tag else f"{e.name} {e.tag}"
        yield Line(3, f"{name} {e.vr}{origin}: {e.how}; {e.stream_bytes} bytes")
    for name in sig.absent:
        yield Line(3, f"{name}: listed in Data Elements Signed but ABSENT", "failed")
    yield Line(2, f"present but not covered: {len(sig.not_covered)} element(s)")
    for u in sig.not_covered:
        yield Line(3, f"{u.name} {u.tag}: {u.reason}", "warning")
    for step in sig.steps:
        if step.name in _TRUST_STEPS and step is _first_trust(sig):
            yield Line(2, "phase 2, trust:")
        depth = 3 if step.name in _TRUST_STEPS else 2
        yield Line(depth, f"{step.name}: {step.status.value}: {step.summary}", step.status.value)
        for detail in step.details:
            yield Line(depth + 1, detail)
    if sig.changed or sig.change_note:
        changed = ", ".join(sig.changed) if sig.changed else "cannot be named"
        yield Line(2, f"changed element(s): {changed} ({sig.change_note})",
                   StepStatus.FAILED.value if sig.changed else "")  # fmt: skip
    yield Line(2, f"verdict {sig.verdict}, decided by: {sig.decided_by}: {sig.decision}",
               sig.verdict)  # fmt: skip


_TRUST_STEPS = frozenset(
    {"trust", "validation moment", "certificate path", "certificate validity", "key usage",
     "revocation"}
)  # fmt: skip


def _first_trust(sig: SignatureExplanation) -> object:
    return next((s for s in sig.steps if s.name in _TRUST_STEPS), None)


def plain_text(ex: Explanation) -> str:
    """Indented plain text (pipes, files)."""
    return "\n".join("  " * line.depth + line.text for line in outline(ex)) + "\n"
