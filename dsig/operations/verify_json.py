"""The one serializer of ``dsig verify --json`` / ``--jsonl`` (the contract of
``dsig/schema/verify.schema.json``): the document, its lines, and their version fields.

Per-file objects come from :meth:`dsig.results.FileResult.to_json` (built in the workers);
everything around them is built here, so a field is added in one place.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any, cast

from dsig.results import FileResult

#: Version of the JSON contract: bumped only when a field changes meaning or goes away (new
#: fields are additive and keep the version).
VERIFY_SCHEMA_VERSION = "1"
#: The JSON Schema (draft 2020-12) of the document and of a line, shipped in the package.
SCHEMA_RESOURCE = ("schema", "verify.schema.json")
#: ``indication`` of a --jsonl line for a file that was not verified (not DICOM).
SKIPPED = "SKIPPED"


def json_versions() -> dict[str, str]:
    """``schema_version`` and ``dsig_version``: the first fields of the document."""
    from dsig import __version__

    return {"schema_version": VERIFY_SCHEMA_VERSION, "dsig_version": __version__}


def json_file_object(result: FileResult) -> dict[str, Any]:
    """One element of ``files`` (and, with ``schema_version``, a --jsonl file line)."""
    return result.to_json()


def jsonl_file_line(record: Mapping[str, Any]) -> dict[str, Any]:
    """The --jsonl line of a verified file's object: every line names its schema version, so a
    line read alone (a journal, ``grep``) is still self-describing."""
    return {"schema_version": VERIFY_SCHEMA_VERSION, **record}


def jsonl_skipped_line(path: str, reason: str) -> dict[str, Any]:
    """The --jsonl line of a file that was not verified (``reason``: why)."""
    return {
        "schema_version": VERIFY_SCHEMA_VERSION,
        "path": path,
        "indication": SKIPPED,
        "reason": reason,
    }


def jsonl_summary_line(
    summary: Mapping[str, Any], findings: list[dict[str, str]], stated: Mapping[str, object]
) -> dict[str, Any]:
    """The last --jsonl line: the run's ``summary``, run ``findings`` and the policy stated
    (``stated`` from the CLI's policy statement; its ``dsig_version`` is replaced by ours)."""
    return {**json_versions(), "summary": dict(summary), "findings": findings, **_policy(stated)}


def json_document_fields(
    files: Iterable[dict[str, Any]],
    summary: Mapping[str, Any],
    skipped: Iterable[str],
    findings: list[dict[str, str]],
    stated: Mapping[str, object],
) -> list[tuple[str, Any]]:
    """The --json document as ordered ``(key, value)`` pairs, versions first; ``files`` may be
    an iterator (the CLI writes it an element at a time)."""
    return [
        *json_versions().items(),
        ("files", files),
        ("summary", dict(summary)),
        ("skipped", skipped),
        ("findings", findings),
        *_policy(stated).items(),
    ]


def _policy(stated: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in stated.items() if k not in ("schema_version", "dsig_version")}


def verify_schema() -> dict[str, Any]:
    """The JSON Schema of ``dsig verify --json`` (``$defs.line``: a ``--jsonl`` line)."""
    text = resources.files("dsig").joinpath(*SCHEMA_RESOURCE).read_text(encoding="utf-8")
    return cast(dict[str, Any], json.loads(text))
