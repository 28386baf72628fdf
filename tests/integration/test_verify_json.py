"""``dsig verify --json`` / ``--jsonl`` of real signed files validate against the published
JSON Schema (dsig/schema/verify.schema.json), and the schema can fail."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

import dsig
from dsig.cli import app
from tests.conftest import CorePki, sample

runner = CliRunner()
SCHEMA_FILE = Path(dsig.__file__).parent / "schema" / "verify.schema.json"


def schema() -> dict[str, Any]:
    return dsig.verify_schema()


def validator(definition: str | None = None) -> jsonschema.Draft202012Validator:
    full = schema()
    if definition is not None:  # one of its definitions, alone
        full = {"$schema": full["$schema"], "$defs": full["$defs"], "$ref": f"#/$defs/{definition}"}
    return jsonschema.Draft202012Validator(full)


def run(*args: object) -> tuple[int, str]:
    r = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.stdout


@pytest.fixture(scope="module")
def files(core_pki: CorePki, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("verify-json")
    valid, tampered = d / "valid.dcm", d / "tampered.dcm"
    code, out = run("sign", sample("CT_small.dcm"), valid, "--key", core_pki.rsa_key,
                    "--cert", core_pki.rsa_cert, "--no-password")  # fmt: skip
    assert code == 0, out
    data = bytearray(valid.read_bytes())
    at = data.index(b"CompressedSamples")  # a value under the signature (Image Comments... )
    data[at] ^= 0x20
    tampered.write_bytes(bytes(data))
    unsigned = d / "unsigned.dcm"
    unsigned.write_bytes(sample("CT_small.dcm").read_bytes())
    (d / "notes.txt").write_text("not DICOM\n")
    return {"valid": valid, "tampered": tampered, "unsigned": unsigned, "dir": d}


def test_the_schema_is_valid_and_shipped() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    assert json.loads(SCHEMA_FILE.read_text()) == schema()
    assert schema()["properties"]["schema_version"]["const"] == dsig.VERIFY_SCHEMA_VERSION
    assert schema()["$defs"]["code"]["enum"] == [c.value for c in dsig.FindingCode]


@pytest.mark.parametrize("with_trust", [True, False], ids=["trust-store", "no-trust"])
def test_json_documents_validate(
    files: dict[str, Path], core_pki: CorePki, with_trust: bool
) -> None:
    trust = ["--trust-store", core_pki.trust_bundle] if with_trust else []
    code, out = run("verify", "--json", "-r", *trust, files["dir"])
    doc = json.loads(out)
    validator().validate(doc)
    assert doc["schema_version"] == "1" and doc["dsig_version"] == dsig.__version__
    assert list(doc)[:2] == ["schema_version", "dsig_version"]
    by_name = {Path(f["path"]).name: f["indication"] for f in doc["files"]}
    assert by_name == {
        "valid.dcm": "VALID" if with_trust else "INDETERMINATE",
        "tampered.dcm": "INVALID",
        "unsigned.dcm": "UNSIGNED",
    }
    assert [Path(p).name for p in doc["skipped"]] == ["notes.txt"]
    assert code == 1
    tampered = next(f for f in doc["files"] if f["path"].endswith("tampered.dcm"))
    assert "MAC_MISMATCH" in {f["code"] for s in tampered["signatures"] for f in s["findings"]}


def test_json_of_one_file_with_options_validates(files: dict[str, Path]) -> None:
    code, out = run("verify", "--json", "--integrity-only", "--sha256", "--require",
                    "signature", files["valid"])  # fmt: skip
    assert code == 0, out
    validator().validate(json.loads(out))


def test_json_of_a_named_not_dicom_file_and_a_requirement_validates(files: dict[str, Path]) -> None:
    code, out = run("verify", "--json", "--integrity-only", "--require", "signature",
                    files["dir"] / "notes.txt", files["unsigned"])  # fmt: skip
    doc = json.loads(out)
    validator().validate(doc)
    by_name = {Path(f["path"]).name: f for f in doc["files"]}
    assert by_name["notes.txt"]["indication"] == "ERROR" and by_name["notes.txt"]["error"]
    assert by_name["unsigned.dcm"]["indication"] == "INVALID" and code == 1


def test_jsonl_lines_validate(files: dict[str, Path], core_pki: CorePki) -> None:
    for trust in (["--trust-store", core_pki.trust_bundle], ["--integrity-only"]):
        code, out = run("verify", "--jsonl", "-r", *trust, files["dir"])
        lines = [json.loads(line) for line in out.splitlines() if line.strip()]
        line = validator("line")
        for obj in lines:
            line.validate(obj)
            assert obj["schema_version"] == "1"
        assert "summary" in lines[-1] and lines[-1]["dsig_version"] == dsig.__version__
        kinds = sorted(o.get("indication", "summary") for o in lines)
        assert kinds == sorted(["INVALID", "SKIPPED", "UNSIGNED", "VALID", "summary"]), kinds
        assert code == 1


def test_jsonl_journal_lines_validate(files: dict[str, Path], tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    code, _ = run("verify", "--integrity-only", "-r", "--jsonl", journal, files["dir"])
    assert code == 1
    line = validator("line")
    for text in journal.read_text().splitlines():
        line.validate(json.loads(text))


def test_the_schema_rejects_what_breaks_the_contract(files: dict[str, Path]) -> None:
    _, out = run("verify", "--json", "--integrity-only", files["valid"])
    doc = json.loads(out)
    check = validator()
    check.validate(doc)
    for broken in (_without(doc, "schema_version"), _without(doc, "files"),
                   _file_without(doc, "indication"), _signature_without(doc, "integrity"),
                   _with_indication(doc, "MAYBE"), _with_code(doc, "NO_SUCH_CODE")):  # fmt: skip
        with pytest.raises(jsonschema.ValidationError):
            check.validate(broken)
    with pytest.raises(jsonschema.ValidationError):
        validator("line").validate({"path": "x.dcm", "indication": "VALID"})  # no version


def _without(doc: dict[str, Any], key: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    del out[key]
    return out


def _file_without(doc: dict[str, Any], key: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    del out["files"][0][key]
    return out


def _signature_without(doc: dict[str, Any], key: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    del out["files"][0]["signatures"][0][key]
    return out


def _with_indication(doc: dict[str, Any], value: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["files"][0]["indication"] = value
    return out


def _with_code(doc: dict[str, Any], code: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["files"][0]["signatures"][0]["findings"].append(
        {"code": code, "message": "m", "severity": "error"}
    )
    return out
