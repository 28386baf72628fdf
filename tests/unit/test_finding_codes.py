"""Every finding code the source raises is a :class:`pki.FindingCode` member, and every member
is documented (meaning, phase, and the generated table in docs/finding-codes.md)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import dsig
import pki
from pki.codes import FindingCode, Phase

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "finding-codes.md"
_CODE_LIKE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$")
#: Export lists name constants, not codes.
_EXPORT_LISTS = {"__all__", "_EXPORTS", "_MODULES", "_LAZY"}
#: Code-shaped strings that are not finding codes (constants, statuses, DICOM values, env).
NOT_CODES = {
    "AUTHORIZATION_REQUIRED", "AUTHORIZATION_REQUIRED_IF_PRESENT", "CREATOR_REQUIRED",
    "CREATOR_REQUIRED_IF_PRESENT", "SR_REQUIRED", "SR_REQUIRED_IF_PRESENT",
    "SR_VERIFICATION_REQUIRED", "SR_VERIFICATION_REQUIRED_IF_PRESENT",  # profile rules
    "CMS_TSP", "X509_1993_SIG", "ISO_IR",  # DICOM values
    "DSIG_DEBUG",  # environment
    "TYPE_CHECKING",  # the guard whose imports pki._lazy reads
    "NOT_CHECKED", "NOT_PROVABLE", "NOT_VERIFIED",  # indications and statuses
    "DICOM_PROTOCOL", "REST_API",  # Orthanc names
}  # fmt: skip
#: Listed since the first release but raised by no code path (kept: the code is public).
NEVER_RAISED = {"IN_ORIGINAL_ATTRIBUTES"}


def _sources() -> Iterator[Path]:
    for package in ("dsig", "pki"):
        yield from (p for p in (ROOT / package).rglob("*.py") if p != ROOT / "pki" / "codes.py")


def _export_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id in _EXPORT_LISTS for t in targets):
                skip.update(id(n) for n in ast.walk(node))
    return skip


def code_like_literals() -> dict[str, str]:
    """``{literal: where}`` for every code-shaped string constant of dsig and pki."""
    found: dict[str, str] = {}
    for path in _sources():
        tree = ast.parse(path.read_text(), str(path))
        skip = _export_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skip or not isinstance(node, ast.Constant):
                continue
            if isinstance(node.value, str) and _CODE_LIKE.match(node.value):
                found.setdefault(node.value, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def finding_call_codes() -> dict[str, str]:
    """Literal codes passed straight to ``Finding``/``TrustFinding`` (positional or code=)."""
    found: dict[str, str] = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name not in ("Finding", "TrustFinding"):
                continue
            arg = (
                node.args[0]
                if node.args
                else next((k.value for k in node.keywords if k.arg == "code"), None)
            )
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found[arg.value] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return found


def test_the_scan_finds_codes() -> None:
    calls = finding_call_codes()
    assert {"MALFORMED_SIGNATURE", "NO_TRUSTED_PATH", "EVIDENCE_BROKEN"} <= set(calls)
    assert {"MAC_MISMATCH", "TIMESTAMP_INVALID", "CERT_EXPIRED"} <= set(code_like_literals())


def test_every_code_passed_to_a_finding_is_a_member() -> None:
    members = {c.value for c in FindingCode}
    assert {c: w for c, w in finding_call_codes().items() if c not in members} == {}


def test_every_code_shaped_literal_is_a_member_or_known_not_to_be_one() -> None:
    members = {c.value for c in FindingCode}
    unknown = {c: w for c, w in code_like_literals().items() if c not in members | NOT_CODES}
    assert unknown == {}, "add them to pki.codes.FindingCode (or, if not codes, to NOT_CODES)"


def test_every_member_is_raised_somewhere_and_documented() -> None:
    literals = code_like_literals()
    for code in FindingCode:
        assert (code.value in literals) != (code in NEVER_RAISED), f"{code}: raised?"
        assert code.name == code.value and code.meaning.strip() and isinstance(code.phase, Phase)
    assert DOC.read_text() == table(), f"regenerate: .venv/bin/python -m {__name__}"


def test_codes_are_strings_and_unknown_ones_fail() -> None:
    finding = dsig.Finding("MAC_MISMATCH", "changed")
    assert finding.code is FindingCode.MAC_MISMATCH and finding.code == "MAC_MISMATCH"
    assert pki.TrustFinding(FindingCode.CERT_EXPIRED, "x").code.phase is Phase.TRUST
    assert finding.to_json()["code"].__class__ is str
    with pytest.raises(ValueError, match="NO_SUCH_CODE"):
        dsig.Finding("NO_SUCH_CODE", "x")
    assert pki.TrustIndication is pki.Indication is dsig.Indication
    assert pki.FINDING_CODES["CERT_EXPIRED"] == FindingCode.CERT_EXPIRED.meaning


def table() -> str:
    """docs/finding-codes.md, generated from :class:`FindingCode`."""
    lines = [
        "# Finding codes",
        "",
        "Generated from `pki.codes.FindingCode` (`dsig.FindingCode`); "
        "`tests/unit/test_finding_codes.py` keeps it current.",
        "",
    ]
    for phase in Phase:
        codes = [c for c in FindingCode if c.phase is phase]
        lines += [f"## {phase.value}", "", "| Code | Meaning |", "|---|---|"]
        lines += [f"| `{c.value}` | {c.meaning.replace('|', '/')} |" for c in codes]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    DOC.write_text(table())
