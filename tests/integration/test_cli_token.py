"""`dsig sign --key pkcs11:...` end to end on a real SoftHSM2 token (issue 3 through the CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import sample
from tests.helpers.softhsm import ProvisionedToken

pytestmark = pytest.mark.softhsm


def run(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dsig", *map(str, args)], capture_output=True,
                          text=True, env=env, stdin=subprocess.DEVNULL, check=False)  # fmt: skip


@pytest.fixture
def env(softhsm_token: ProvisionedToken) -> dict[str, str]:
    e = dict(os.environ)
    e["DSIG_TEST_PIN"] = softhsm_token.pin
    return e


@pytest.mark.parametrize("which", ["rsa", "ec"])
def test_sign_many_files_on_token_then_verify_with_trust(
    softhsm_token: ProvisionedToken, env: dict[str, str], tmp_path: Path, which: str
) -> None:
    indir = tmp_path / "in"
    indir.mkdir()
    for name in ("CT_small.dcm", "JPEG-lossy.dcm", "waveform_ecg.dcm"):
        (indir / name).write_bytes(sample(name).read_bytes())
    uri = softhsm_token.rsa_uri if which == "rsa" else softhsm_token.ec_uri
    r = run("sign", indir, "--recursive", "--out-dir", tmp_path / "out", "--key", uri,
            "--pin-env", "DSIG_TEST_PIN", "--mac", "sha384", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert softhsm_token.pin not in r.stdout + r.stderr
    r = run("verify", tmp_path / "out", "--recursive", "--json", "--trust-store",
            softhsm_token.ca_cert, env=env)  # fmt: skip
    report = json.loads(r.stdout)
    problems = [
        (f["path"], s["findings"], s["trust"]) for f in report["files"] for s in f["signatures"]
    ]
    assert r.returncode == 0, problems
    assert report["summary"]["valid"] == 3
    sig = report["files"][0]["signatures"][0]
    assert sig["mac_algorithm"] == "SHA384" and sig["trust"]["indication"] == "VALID"


def test_wrong_pin_is_one_line_exit_4(
    softhsm_token: ProvisionedToken, env: dict[str, str], tmp_path: Path
) -> None:
    env["DSIG_TEST_PIN"] = "999999"
    r = run("sign", sample("CT_small.dcm"), tmp_path / "o.dcm", "--key", softhsm_token.rsa_uri,
            "--pin-env", "DSIG_TEST_PIN", env=env)  # fmt: skip
    assert r.returncode == 4
    assert r.stderr.startswith("dsig: error:") and r.stderr.count("\n") == 1
    assert "999999" not in r.stderr and not (tmp_path / "o.dcm").exists()


def test_unknown_key_lists_what_is_there(
    softhsm_token: ProvisionedToken, env: dict[str, str], tmp_path: Path
) -> None:
    uri = f"pkcs11:token={softhsm_token.label};object=no-such-key"
    r = run("sign", sample("CT_small.dcm"), tmp_path / "o.dcm", "--key", uri,
            "--pin-env", "DSIG_TEST_PIN", env=env)  # fmt: skip
    assert r.returncode == 4 and "no-such-key" in r.stderr


def test_pin_source_not_private_is_one_line_exit_4(
    softhsm_token: ProvisionedToken, env: dict[str, str], tmp_path: Path
) -> None:
    """``pin-source=`` names a file others can read, or a system file (the review's
    /etc/shadow): ``dsig sign`` refuses on one line, exit 4, never reads it to the token;
    the same file made private signs."""
    pin_file = tmp_path / "pin.txt"
    pin_file.write_text(softhsm_token.pin + "\n")
    pin_file.chmod(0o644)
    del env["DSIG_TEST_PIN"]  # the URI is the only PIN source
    out = tmp_path / "o.dcm"
    sources = {f"file:{pin_file}": "group or others (mode 0644): refused"}
    if Path("/etc/shadow").exists():
        sources["file:///etc/shadow"] = "refused"
    for source, why in sources.items():
        uri = f"{softhsm_token.rsa_uri}?pin-source={source}"
        r = run("sign", sample("CT_small.dcm"), out, "--key", uri, env=env)
        assert r.returncode == 4, r.stderr
        assert r.stderr.startswith("dsig: error:") and r.stderr.count("\n") == 1, r.stderr
        assert why in r.stderr and softhsm_token.pin not in r.stderr + r.stdout
        assert not out.exists()
    pin_file.chmod(0o600)
    r = run("sign", sample("CT_small.dcm"), out, "--key",
            f"{softhsm_token.rsa_uri}?pin-source=file:{pin_file}", env=env)  # fmt: skip
    assert r.returncode == 0 and out.exists(), r.stderr
