"""Every Python example of the README runs as written: those of "The Python API" section in
order, in a directory holding the files they name (a real key file, a SoftHSM2 token, real
PKI), the study manifest one over a real study, and the evidence one against a real TSA on
127.0.0.1."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import CorePki, sample
from tests.helpers.softhsm import ProvisionedToken
from tests.helpers.tsa import TimestampPki

README = Path(__file__).resolve().parents[2] / "README.md"


def examples(section: str | None = None) -> list[str]:
    """The Python examples of one ``## `` section (its title's start), or of the whole README."""
    text = README.read_text()
    if section is not None:
        text = text.split(f"\n## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def api_examples() -> list[str]:
    return examples("The Python API\n")


def test_every_python_example_of_the_readme_is_run_here() -> None:
    assert examples() == [
        *api_examples(), *examples("Study manifests"), *examples("Evidence records")
    ]  # fmt: skip


def test_the_section_has_the_examples_the_issue_asks_for() -> None:
    code = "\n".join(api_examples())
    for needed in ("sign_file(", "pkcs11:", "trust=policy", "verify_files(", "finding.code"):
        assert needed in code, needed


def test_readme_python_examples_run(
    core_pki: CorePki,
    softhsm_token: ProvisionedToken,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutil.copy(sample("CT_small.dcm"), tmp_path / "in.dcm")
    shutil.copy(core_pki.rsa_key, tmp_path / "signer.key.pem")
    shutil.copy(core_pki.rsa_cert, tmp_path / "signer.cert.pem")
    shutil.copy(core_pki.root, tmp_path / "roots.pem")
    shutil.copy(core_pki.intermediate, tmp_path / "inter.pem")
    (tmp_path / "incoming").mkdir()
    shutil.copy(sample("MR_small.dcm"), tmp_path / "incoming" / "unsigned.dcm")
    (tmp_path / "incoming" / "notes.txt").write_text("not DICOM")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIGNER_URI", softhsm_token.rsa_uri)
    monkeypatch.setenv("SIGNER_PIN", softhsm_token.pin)
    examples = api_examples()
    assert len(examples) == 4
    for index, code in enumerate(examples):
        if index == 3:  # the streamed directory: one file signed in the README's first example
            shutil.copy(tmp_path / "out.dcm", tmp_path / "incoming" / "signed.dcm")
        exec(compile(code, f"README.md example {index + 1}", "exec"), {})
    out = capsys.readouterr().out
    assert (tmp_path / "out.dcm").is_file() and (tmp_path / "card.dcm").is_file()
    assert "incoming/signed.dcm VALID" in out
    assert "incoming/notes.txt ERROR" in out
    assert "incoming/unsigned.dcm" in out
    assert softhsm_token.pin not in out


def test_readme_manifest_example_runs(
    core_pki: CorePki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "study").mkdir()
    shutil.copy(sample("CT_small.dcm"), tmp_path / "study" / "ct.dcm")
    shutil.copy(core_pki.rsa_key, tmp_path / "signer.key.pem")
    shutil.copy(core_pki.rsa_cert, tmp_path / "signer.cert.pem")
    shutil.copy(core_pki.root, tmp_path / "roots.pem")
    shutil.copy(core_pki.intermediate, tmp_path / "inter.pem")
    monkeypatch.chdir(tmp_path)
    [code] = examples("Study manifests")
    exec(compile(code, "README.md manifest example", "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith("0 VALID [('ok', ") and "study/ct.dcm" in out
    assert (tmp_path / "manifest.dcm").is_file()


def test_readme_evidence_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Evidence section's example as written, its TSA URL replaced by the test TSA's."""
    names = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")
    (tmp_path / "study").mkdir()
    for name in names:
        shutil.copy(sample(name), tmp_path / "study" / name)
    tp = TimestampPki(tmp_path / "pki")
    shutil.copy(tp.root_pem, tmp_path / "tsa-roots.pem")
    [code] = examples("Evidence records")
    assert "http://tsa.example/" in code
    monkeypatch.chdir(tmp_path)
    with tp.server() as tsa:
        code = code.replace("http://tsa.example/", tsa.url)
        exec(compile(code, "README.md evidence example", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{len(names)} records, 1 TSA request at ")
    assert lines[1].startswith("PROVEN ") and lines[1].endswith(" 0")
    # "later" in the example is after the TSA certificate expired
    assert tp.tsa.cert.not_valid_after_utc < dt.datetime.now(dt.UTC) + dt.timedelta(days=760)
    assert [line.split()[0] for line in lines[2:5]] == [
        "initial", "timestamp-renewal", "hash-tree-renewal"]  # fmt: skip
    assert len(lines) == 5 + len(names) and all(" none " in line for line in lines[5:])
    assert tsa.hits == 3
