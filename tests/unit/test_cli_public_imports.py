"""The CLI is a caller of the library: its modules import dsig, pki and tokens through their
public places (a package's ``__all__``), read statically (function-level imports included).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_PLACES = (
    "dsig", "dsig.archive", "dsig.net", "dsig.manifest", "dsig.evidence", "dsig.explain", "dsig.orthanc",
    "dsig.reports", "dsig.timestamp", "pki", "tokens",
    "tokens.pkcs11",
)  # fmt: skip


def _public() -> dict[str, set[str]]:
    return {place: set(importlib.import_module(place).__all__) for place in PUBLIC_PLACES}


def private_imports() -> dict[str, set[str]]:
    """{module: names} the CLI imports from dsig, pki or tokens outside a public place."""
    public = _public()
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "dsig" / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                module = node.module
                if module.split(".")[0] not in ("dsig", "pki", "tokens"):
                    continue
                if module.startswith("dsig.cli"):
                    continue
                for alias in node.names:
                    if alias.name in public.get(module, set()):
                        continue
                    if (ROOT / module.replace(".", "/") / f"{alias.name}.py").is_file():
                        found.setdefault(f"{module}.{alias.name}", set()).add("*module*")
                        continue
                    found.setdefault(module, set()).add(alias.name)
    return found


def test_the_cli_imports_only_public_names() -> None:
    assert private_imports() == {}


def test_the_public_places_export_what_the_cli_uses() -> None:
    public = _public()
    assert {"sign_files", "verify_files", "read_dicom", "describe"} <= public["dsig"]
    assert {"TrustPolicy", "TrustEvaluator"} <= public["pki"]
    assert {"open_key_provider", "KeyProvider", "HashAlgorithm"} <= public["tokens"]
