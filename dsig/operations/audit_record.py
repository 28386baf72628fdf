"""The compact per-file record the audit outputs (``--report`` HTML, ``--csv``) are built
from: one file's JSON result (:meth:`dsig.results.FileResult.to_json`) without the
signed tag lists, with the values a reader needs already in their shown form."""

from __future__ import annotations

import re
from typing import Any

from dsig.signature.model import parse_dicom_datetime

_OFFSET = re.compile(r"[+-]\d{4}$")

#: Per-file fields copied from the JSON result as they are.
FILE_FIELDS = ("path", "indication", "error", "sop_instance_uid", "study_instance_uid",
               "patient_id", "sha256")  # fmt: skip


def iso_datetime(value: object) -> str:
    """A DICOM DT (``20261203172800.000000+0000``) as ISO 8601, without an offset when the
    file gives none (none is invented); unparsable text as stored (an auditor sees what the
    file says), None as ""."""
    if not value:
        return ""
    text = str(value)
    moment = parse_dicom_datetime(text)
    if moment is None:
        return text
    if not _OFFSET.search(text.strip()):
        moment = moment.replace(tzinfo=None)
    return moment.isoformat()


def _finding(f: dict[str, Any]) -> str:
    return f"{f.get('code')}: {f.get('message')}"


def _purpose(purpose: dict[str, str] | None) -> str:
    if not purpose:
        return ""
    code, meaning = purpose.get("code", ""), purpose.get("meaning", "")
    return f"{code} {meaning}".strip()


def _timestamp(stamp: dict[str, Any] | None) -> str:
    """``VALID 2026-12-03T17:28:00+00:00 by CN=TSA`` or ""."""
    if not stamp:
        return ""
    parts = [str(stamp.get("indication") or "")]
    if stamp.get("time"):
        parts.append(str(stamp["time"]))
    if stamp.get("tsa"):
        parts.append(f"by {stamp['tsa']}")
    return " ".join(p for p in parts if p)


def _revocation(trust: dict[str, Any]) -> str:
    return "; ".join(
        f"{r.get('certificate')}: {r.get('status')}"
        + (f" ({r.get('source') or r.get('detail')})" if r.get("source") or r.get("detail") else "")
        for r in trust.get("revocation") or []
    )


def signature_record(sig: dict[str, Any]) -> dict[str, Any]:
    """One signature as the audit outputs show it."""
    trust = sig.get("trust") or {}
    stamp = sig.get("timestamp") or None
    findings = [*(sig.get("findings") or []), *(trust.get("findings") or [])]
    if stamp:
        findings += [f for f in stamp.get("findings") or [] if f.get("severity") != "info"]
    return {
        "uid": sig.get("uid"),
        "signer": sig.get("signer"),
        "indication": sig.get("indication"),
        "integrity": sig.get("integrity"),
        "trust": trust.get("indication"),
        "revocation": _revocation(trust),
        "chain": [str(c) for c in trust.get("chain") or []],
        "mac": sig.get("mac_algorithm"),
        "datetime": iso_datetime(sig.get("datetime")),
        "purpose": _purpose(sig.get("purpose")),
        "timestamp": _timestamp(stamp),
        "location": sig.get("location"),
        "findings": [_finding(f) for f in findings],
    }


def audit_record(data: dict[str, Any]) -> dict[str, Any]:
    """What the audit outputs keep of one file's JSON result."""
    out = {name: data.get(name) for name in FILE_FIELDS}
    out["findings"] = [_finding(f) for f in data.get("findings") or []]
    out["signatures"] = [signature_record(s) for s in data.get("signatures") or []]
    return out


__all__ = ["FILE_FIELDS", "audit_record", "iso_datetime", "signature_record"]
