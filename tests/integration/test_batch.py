"""``dsig verify DIR --recursive --jobs N``: skipping, summary, --json/--jsonl/--report, exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dsig.cli import app
from tests.conftest import CorePki
from tests.helpers.bigfile import write_small_image

runner = CliRunner()


def dsig(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def trust(core_pki: CorePki) -> list[object]:
    return ["--trust-store", core_pki.root, "--untrusted", core_pki.intermediate]


@pytest.fixture(scope="module")
def tree(core_pki: CorePki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 signed files (one tampered), 1 unsigned, 1 non-DICOM, 1 with markup in its name."""
    src = tmp_path_factory.mktemp("src")
    (src / "b").mkdir()
    for i in range(6):
        write_small_image(src / ("b" if i % 2 else "") / f"img{i}.dcm", seed=i)
    out = tmp_path_factory.mktemp("tree")
    r = dsig("sign", src, "--out-dir", out, "--recursive", "--key", core_pki.rsa_key,
             "--cert", core_pki.rsa_cert, "--no-password")  # fmt: skip
    assert r.exit_code == 0, r.output
    tampered = out / "b" / "img3.dcm"
    data = bytearray(tampered.read_bytes())
    data[-10] ^= 0xFF  # inside Pixel Data
    tampered.write_bytes(bytes(data))
    write_small_image(out / "unsigned.dcm", seed=99)
    (out / "notes.txt").write_text("not DICOM")
    (out / "<img src=x onerror=alert(1)>&.dcm").write_bytes((out / "img0.dcm").read_bytes())
    return out


def test_json_summary_skipped_and_exit_code(core_pki: CorePki, tree: Path) -> None:
    r = dsig("verify", tree, "--recursive", "--jobs", 2, "--json", *trust(core_pki))
    assert r.exit_code == 1  # one invalid file decides the run
    data = json.loads(r.stdout)
    s = data["summary"]
    assert (s["valid"], s["invalid"], s["unsigned"], s["error"], s["skipped"]) == (6, 1, 1, 0, 1)
    assert s["files"] == 8 and s["signatures"] == 7
    assert s["by_signer"]["CN=dsig rsa,O=dsig test"] == {"invalid": 1, "valid": 6}
    assert data["skipped"] == [str(tree / "notes.txt")]
    paths = [f["path"] for f in data["files"]]
    assert paths == sorted(paths, key=lambda p: (Path(p).parent != tree, p))  # walk order
    bad = next(f for f in data["files"] if f["path"].endswith("img3.dcm"))
    assert bad["signatures"][0]["findings"][0]["code"] == "MAC_MISMATCH"


def test_parallel_equals_serial(core_pki: CorePki, tree: Path) -> None:
    def run(jobs: int) -> list[tuple[str, str]]:
        r = dsig("verify", tree, "-r", "-j", jobs, "--json", *trust(core_pki))
        return [(f["path"], f["indication"]) for f in json.loads(r.stdout)["files"]]

    assert run(1) == run(2)


def test_jsonl_streams_one_line_per_file(core_pki: CorePki, tree: Path) -> None:
    r = dsig("verify", tree, "-r", "-j", 2, "--jsonl", "--integrity-only")
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(lines) == 10  # 8 files, 1 skipped, the summary
    assert lines[-1]["summary"]["skipped"] == 1
    skipped = [x for x in lines[:-1] if x["indication"] == "SKIPPED"]
    assert [x["path"] for x in skipped] == [str(tree / "notes.txt")]
    assert r.exit_code == 1


def test_explicit_non_dicom_file_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("hello, not DICOM at all")
    r = dsig("verify", f, "--json", "--integrity-only")
    assert r.exit_code == 4
    data = json.loads(r.stdout)
    assert data["files"][0]["indication"] == "ERROR" and data["summary"]["skipped"] == 0


def test_human_output_ends_with_summary_table(core_pki: CorePki, tree: Path) -> None:
    r = dsig("verify", tree, "-r", *trust(core_pki))
    assert r.exit_code == 1
    out = r.stdout
    assert "INVALID       " + str(tree / "b" / "img3.dcm") in out
    table = out[out.index("Summary") :]
    assert "CN=dsig rsa,O=dsig test" in table and "SKIPPED" in table
    assert "\x1b[" not in out  # no progress bar or colours when not on a terminal


def test_html_report_escapes_and_lists_failures_first(
    core_pki: CorePki, tree: Path, tmp_path: Path
) -> None:
    report = tmp_path / "audit.html"
    r = dsig("verify", tree, "-r", "-j", 2, "--report", report, *trust(core_pki))
    assert r.exit_code == 1
    doc = report.read_text()
    assert doc.startswith("<!DOCTYPE html>")
    assert "<img" not in doc and "&lt;img src=x onerror=alert(1)&gt;&amp;.dcm" in doc
    assert "http" not in doc.replace("http-equiv", "")  # self-contained: no external resource
    assert doc.index("img3.dcm") < doc.index("img0.dcm")  # the failure comes first
    assert "MAC_MISMATCH" in doc and "unsigned.dcm" in doc


def test_trust_evaluated_once_per_signer(
    core_pki: CorePki, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pki.chain
    import pki.evaluator

    calls: list[object] = []
    real = pki.chain.evaluate_chain

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(pki.evaluator, "evaluate_chain", counting)
    r = dsig("verify", tree, "-r", "-j", 1, "--json", *trust(core_pki))
    assert json.loads(r.stdout)["summary"]["valid"] == 6
    assert len(calls) == 1  # "now" is frozen for the run: one evaluation for 7 signatures


def test_directory_without_recursive_is_refused(tree: Path) -> None:
    r = dsig("verify", tree)
    assert r.exit_code == 4 and "--recursive" in r.output


def test_json_and_jsonl_exclude_each_other(tree: Path) -> None:
    assert dsig("verify", tree, "-r", "--json", "--jsonl").exit_code == 2


def test_parallel_sign_and_a_failing_input(core_pki: CorePki, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        write_small_image(src / f"i{i}.dcm", seed=i)
    key = ["--key", core_pki.rsa_key, "--cert", core_pki.rsa_cert, "--no-password"]
    r = dsig("sign", src, "--out-dir", tmp_path / "out", "-r", "-j", 2, *key)
    assert r.exit_code == 0, r.output
    assert [line.split()[1] for line in r.stdout.splitlines()] == [
        str(src / f"i{i}.dcm") for i in range(5)
    ]  # in input order
    v = dsig("verify", tmp_path / "out", "-r", "--json", *trust(core_pki))
    assert json.loads(v.stdout)["summary"]["valid"] == 5
    (src / "i2.dcm").write_bytes(b"not DICOM")
    r = dsig("sign", src, "--out-dir", tmp_path / "out2", "-r", "-j", 2, *key)
    assert r.exit_code == 4 and "i2.dcm" in r.output
