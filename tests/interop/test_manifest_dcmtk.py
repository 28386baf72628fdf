"""Study manifests against independent tools: dcmsign verifies every manifest's signature,
dicom3tools' ``dciodvfy`` finds no error in the KOS, and DCMTK's re-encodings (dcmconv) keep
instances ``ok`` while its decompressors (dcmdjpeg, dcmdrle) make them ``indeterminate``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from dsig.cli import app
from tests.helpers import dcmtk
from tests.helpers.pki_servers import make_crl
from tests.helpers.study import Study, build_study
from tests.interop.conftest import PkiFiles

runner = CliRunner()


def dsig(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines of dciodvfy (dicom3tools) for ``path``."""
    if shutil.which("dciodvfy") is None:
        if os.environ.get("DSIG_REQUIRE_DCMTK") == "1":
            pytest.fail("dciodvfy (dicom3tools) not found but DSIG_REQUIRE_DCMTK=1")
        pytest.skip("dciodvfy (Debian package dicom3tools) not installed")
    proc = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    lines = (proc.stdout + proc.stderr).splitlines()
    assert any("KeyObjectSelectionDocument" in line for line in lines), lines
    return [line for line in lines if line.startswith("Error")]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    return build_study(tmp_path_factory.mktemp("interop-study") / "study")


def create(study: Study, out: Path, key: Path, cert: Path, *extra: object) -> None:
    r = dsig("manifest", "create", study.directory, "-o", out, "--key", key, "--cert", cert,
             "--no-password", *extra)  # fmt: skip
    assert r.exit_code == 0, r.output


def mverify(pki: PkiFiles, manifest: Path, study: Path) -> tuple[int, dict[str, Any]]:
    crls: list[object] = []
    for ca in (pki._pki.root, pki._pki.intermediate):  # current, empty: nothing revoked
        crl = pki.directory / f"manifest-{ca.cert.serial_number}.crl"
        if not crl.exists():
            crl.write_bytes(make_crl(ca).public_bytes(serialization.Encoding.PEM))
        crls += ["--crl", crl]
    r = dsig("manifest", "verify", manifest, study, "--trust-store", pki.root, "--untrusted",
             pki.intermediate, *crls, "--json")  # fmt: skip
    return r.exit_code, json.loads(r.stdout)


@pytest.mark.parametrize(
    ("signer", "extra"),
    [
        ("rsa", ()),
        ("rsa", ("--mac", "sha384", "--profile", "sr")),
        ("ec", ("--mac", "sha512")),
    ],
    ids=["rsa-sha256", "rsa-sha384-sr-profile", "ec-sha512"],
)
def test_dcmsign_verifies_and_dciodvfy_accepts_every_manifest(
    pki: PkiFiles, study: Study, tmp_path: Path, signer: str, extra: tuple[str, ...]
) -> None:
    who = pki.rsa if signer == "rsa" else pki.ec
    out = tmp_path / "manifest.dcm"
    create(study, out, who.key, who.cert, *extra)
    ok, output = dcmtk.dcmsign_verify(out)
    assert ok, output
    assert dciodvfy_errors(out) == []
    code, report = mverify(pki, out, study.directory)
    assert code == 0, report
    assert report["summary"]["ok"] == len(study.files)


def _copy(study: Study, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(study.directory, target)
    return target


@pytest.mark.parametrize("flags", [("+ti",), ("+tb",), ("+te", "-e"), ("+te", "+e")])
def test_dcmconv_reencoding_keeps_native_instances_ok(
    pki: PkiFiles, study: Study, tmp_path: Path, flags: tuple[str, ...]
) -> None:
    out = tmp_path / "manifest.dcm"
    create(study, out, pki.rsa.key, pki.rsa.cert)
    copy = _copy(study, tmp_path)
    for name in ("ct/001.dcm", "mr/003.dcm"):
        path = copy / name
        converted = tmp_path / "converted.dcm"
        proc = dcmtk.dcmconv(path, converted, *flags)
        assert proc.returncode == 0, proc.stderr
        assert converted.read_bytes() != path.read_bytes()
        converted.replace(path)
    code, report = mverify(pki, out, copy)
    assert code == 0, report["instances"]


@pytest.mark.parametrize(
    ("tool", "name"), [("dcmdjpeg", "jpeg/005.dcm"), ("dcmdrle", "mr/004.dcm")]
)
def test_decompressed_instance_is_indeterminate(
    pki: PkiFiles, study: Study, tmp_path: Path, tool: str, name: str
) -> None:
    """Like a decompressed signed file (PIXEL_ENCODING_CHANGED): the MAC over the compressed
    pixel data cannot be recomputed from the decompressed one, so neither ok nor modified."""
    out = tmp_path / "manifest.dcm"
    create(study, out, pki.rsa.key, pki.rsa.cert)
    copy = _copy(study, tmp_path)
    path = copy / name
    decompressed = tmp_path / "native.dcm"
    proc = subprocess.run([tool, str(path), str(decompressed)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    decompressed.replace(path)
    code, report = mverify(pki, out, copy)
    assert code == 3
    assert report["indication"] == "INDETERMINATE"
    bad = [i for i in report["instances"] if i["status"] != "ok"]
    assert len(bad) == 1 and bad[0]["status"] == "indeterminate"
    assert Path(bad[0]["path"]).name == Path(name).name
    assert "compressed or decompressed" in bad[0]["reason"]
