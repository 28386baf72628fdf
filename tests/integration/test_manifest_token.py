"""`dsig manifest create --key pkcs11:...` on a real SoftHSM2 token: the instances are hashed in
forked workers while the token session stays open in the parent, which alone signs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.softhsm import ProvisionedToken
from tests.helpers.study import build_study

pytestmark = pytest.mark.softhsm


def run(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dsig", *map(str, args)], capture_output=True,
                          text=True, env=env, stdin=subprocess.DEVNULL, check=False)  # fmt: skip


def test_manifest_signed_on_token(softhsm_token: ProvisionedToken, tmp_path: Path) -> None:
    env = {**os.environ, "DSIG_TEST_PIN": softhsm_token.pin}
    study = build_study(tmp_path / "study")
    out = tmp_path / "m.dcm"
    r = run("manifest", "create", study.directory, "-o", out, "--key", softhsm_token.rsa_uri,
            "--pin-env", "DSIG_TEST_PIN", "--jobs", "2", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert softhsm_token.pin not in r.stdout + r.stderr
    r = run("manifest", "verify", out, study.directory, "--trust-store", softhsm_token.ca_cert,
            "--revocation", "off", "--json", env=env)  # fmt: skip
    report = json.loads(r.stdout)
    assert r.returncode == 0, report["manifest"]
    assert report["summary"]["ok"] == len(study.files)
