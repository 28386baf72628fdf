"""`dsig verify --trust-store ...`: the trust phase wired through the CLI (issue 4 contract)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from dsig.cli import app
from tests.conftest import CorePki, sample
from tests.helpers.pki_factory import NOW, Issued, issue
from tests.helpers.pki_servers import PkiServer, make_crl

runner = CliRunner()
PEM = serialization.Encoding.PEM


def dsig(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def signed_by(core_pki: CorePki, tmp_path: Path, leaf: Issued, name: str, *extra: object) -> Path:
    key, cert = leaf.write(tmp_path, name)
    out = tmp_path / f"{name}.dcm"
    r = dsig("sign", sample("CT_small.dcm"), out, "--key", key, "--cert", cert, "--no-password",
             *extra)  # fmt: skip
    assert r.exit_code == 0, r.output
    return out


def verify(path: Path, *args: object) -> tuple[int, dict[str, Any]]:
    r = dsig("verify", path, "--json", *args)
    return r.exit_code, json.loads(r.stdout)["files"][0]["signatures"][0]["trust"]


def codes(trust: dict[str, Any]) -> list[str]:
    return [f["code"] for f in trust["findings"]]


@pytest.fixture
def signed(core_pki: CorePki, tmp_path: Path) -> Path:
    out = tmp_path / "s.dcm"
    r = dsig("sign", sample("CT_small.dcm"), out, "--key", core_pki.rsa_key, "--cert",
             core_pki.rsa_cert, "--no-password")  # fmt: skip
    assert r.exit_code == 0
    return out


def test_chain_to_anchor_is_valid(core_pki: CorePki, signed: Path) -> None:
    code, trust = verify(
        signed, "--trust-store", core_pki.root, "--untrusted", core_pki.intermediate
    )
    assert code == 0 and trust["indication"] == "VALID"
    assert len(trust["chain"]) == 3
    code, trust = verify(signed, "--trust-store", core_pki.trust_bundle)
    assert code == 0


def test_missing_intermediate_and_wrong_anchor(
    core_pki: CorePki, signed: Path, tmp_path: Path
) -> None:
    code, trust = verify(signed, "--trust-store", core_pki.root)
    assert code == 1 and "NO_TRUSTED_PATH" in codes(trust)
    other = issue("some other root", ca=True)
    other_pem = tmp_path / "other.pem"
    other_pem.write_bytes(other.cert.public_bytes(PEM))
    code, trust = verify(signed, "--trust-store", other_pem, "--untrusted", core_pki.intermediate)
    assert code == 1 and "NO_TRUSTED_PATH" in codes(trust)


def test_revoked_by_crl_file_and_validation_moment(core_pki: CorePki, tmp_path: Path) -> None:
    leaf = core_pki.pki.leaf("to-revoke")
    signed = signed_by(core_pki, tmp_path, leaf, "revoked")
    revoked_at = NOW - dt.timedelta(hours=1)
    reason = x509.ReasonFlags.key_compromise
    issued = NOW - dt.timedelta(minutes=30)
    crl = make_crl(core_pki.pki.intermediate, [(leaf.cert.serial_number, revoked_at, reason)],
                   this_update=issued)  # fmt: skip
    crl_path = tmp_path / "inter.crl"
    crl_path.write_bytes(crl.public_bytes(PEM))
    root_crl = tmp_path / "root.crl"
    root_crl.write_bytes(make_crl(core_pki.pki.root, this_update=issued).public_bytes(PEM))
    base = ["--trust-store", core_pki.trust_bundle, "--crl", crl_path, "--crl", root_crl]
    code, trust = verify(signed, *base)
    assert code == 1 and "CERT_REVOKED" in codes(trust)
    before = (NOW - dt.timedelta(days=1)).isoformat()
    code, trust = verify(signed, *base, "--at", before)
    assert "CERT_REVOKED" not in codes(trust)


def test_expired_signer_at_now_vs_signing_time(core_pki: CorePki, tmp_path: Path) -> None:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    leaf = issue("short-lived", issuer=core_pki.pki.intermediate, not_after=soon)
    signed = signed_by(core_pki, tmp_path, leaf, "short")
    later = (soon + dt.timedelta(days=1)).isoformat()
    code, trust = verify(signed, "--trust-store", core_pki.trust_bundle, "--at", later)
    assert code == 1 and "CERT_EXPIRED" in codes(trust)
    code, trust = verify(signed, "--trust-store", core_pki.trust_bundle, "--at", "signing-time")
    assert code == 0, trust


def test_key_usage_is_enforced(core_pki: CorePki, tmp_path: Path) -> None:
    leaf = issue("encipher only", issuer=core_pki.pki.intermediate, key_usage={"key_encipherment"})
    signed = signed_by(core_pki, tmp_path, leaf, "ku", "--force-certificate")
    code, trust = verify(signed, "--trust-store", core_pki.trust_bundle)
    assert code == 1 and "KEY_USAGE" in codes(trust)


def test_online_ocsp_revocation_and_dead_responder(core_pki: CorePki, tmp_path: Path) -> None:
    with PkiServer() as server:
        root = issue("ocsp root", ca=True)
        server.add_authority("root", root)
        inter = issue("ocsp inter", issuer=root, ca=True,
                      extensions=server.revinfo_extensions("root", crl=False))  # fmt: skip
        auth = server.add_authority("inter", inter)
        good = issue("good", issuer=inter, extensions=server.revinfo_extensions("inter", crl=False))
        bad = issue("bad", issuer=inter, extensions=server.revinfo_extensions("inter", crl=False))
        auth.revoke(bad.cert, NOW - dt.timedelta(days=1))
        store = tmp_path / "store.pem"
        store.write_bytes(root.cert.public_bytes(PEM) + inter.cert.public_bytes(PEM))
        good_file = signed_by(core_pki, tmp_path, good, "good")
        bad_file = signed_by(core_pki, tmp_path, bad, "bad")
        code, trust = verify(good_file, "--trust-store", store, "--online")
        assert code == 0, trust
        code, trust = verify(bad_file, "--trust-store", store, "--online")
        assert code == 1 and "CERT_REVOKED" in codes(trust)
        offline_code, trust = verify(good_file, "--trust-store", store, "--revocation", "hard-fail")
        assert offline_code == 3 and "REVOCATION_UNAVAILABLE" in codes(trust)
    # The responder is gone now.
    code, trust = verify(good_file, "--trust-store", store, "--online", "--revocation", "hard-fail")
    assert code == 3 and "REVOCATION_UNAVAILABLE" in codes(trust)
    code, trust = verify(good_file, "--trust-store", store, "--online", "--revocation", "soft-fail")
    assert code == 0


def test_bad_trust_options_are_operational_errors(
    core_pki: CorePki, signed: Path, tmp_path: Path
) -> None:
    r = dsig("verify", signed, "--trust-store", tmp_path / "nope.pem")
    assert r.exit_code == 4 and r.stderr.startswith("dsig: error:")
    r = dsig("verify", signed, "--crl", core_pki.root)
    assert r.exit_code == 2
    r = dsig("verify", signed, "--trust-store", core_pki.root, "--at", "yesterday")
    assert r.exit_code == 2


def test_human_output_names_trust_findings(core_pki: CorePki, signed: Path) -> None:
    r = dsig("verify", signed, "--trust-store", core_pki.root)
    assert r.exit_code == 1
    assert "NO_TRUSTED_PATH" in r.stdout and r.stdout.startswith("INVALID")
