"""Tokens as they are in clinics, through the CLI: a card-like SoftHSM2 slot offering only raw
mechanisms (and brainpool keys), several registered modules, PIN prompts and the signing
confirmation on a real terminal. dcmsign verifies every signature made here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import sample
from tests.helpers import dcmtk
from tests.helpers.opencryptoki import OpenCryptokiToken, opencryptoki_available
from tests.helpers.opencryptoki import provision_keys as provision_ock_keys
from tests.helpers.opencryptoki import start as start_opencryptoki
from tests.helpers.softhsm import (
    ProvisionedToken,
    add_always_authenticate_key,
    delete_objects,
    find_softhsm_module,
)
from tests.helpers.softhsm_fixtures import skip_or_fail_without_softhsm
from tests.helpers.terminal import Terminal

pytestmark = pytest.mark.softhsm

REPO = Path(__file__).resolve().parents[2]
CARD_PIN = "card-4711"
CURVES = ("brainpoolP256r1", "brainpoolP384r1", "secp384r1")


@dataclass(frozen=True)
class Card:
    """A SoftHSM2 token in its own configuration (hence its own processes)."""

    label: str
    directory: Path
    env: dict[str, str]
    ca: Path


def _need_dcmsign() -> None:
    if dcmtk.dcmsign_available():
        return
    if os.environ.get("DSIG_REQUIRE_DCMTK") == "1":
        pytest.fail("DSIG_REQUIRE_DCMTK=1 but dcmsign is not installed")
    pytest.skip("dcmsign not installed")


def _provision(directory: Path, label: str, mechanisms: str | None) -> Card:
    skip_or_fail_without_softhsm()
    args = [sys.executable, "-m", "tests.helpers.softhsm", "provision", "--dir", str(directory),
            "--label", label, "--pin", CARD_PIN]  # fmt: skip
    for curve in CURVES:
        args += ["--curve", curve]
    if mechanisms:
        args.append(f"--mechanisms={mechanisms}")  # "=": a value may start with "-"
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    env = dict(os.environ)
    env.pop("DSIG_PKCS11_MODULE", None)
    env.update(SOFTHSM2_CONF=str(directory / "softhsm2.conf"), CARD_PIN=CARD_PIN)
    return Card(label, directory, env, directory / "demo-ca.pem")


@pytest.fixture(scope="module")
def raw_card(tmp_path_factory: pytest.TempPathFactory) -> Card:
    """Like a health-care card: only CKM_RSA_PKCS and CKM_ECDSA, nothing that hashes."""
    return _provision(tmp_path_factory.mktemp("raw-card"), "raw-card", "CKM_RSA_PKCS,CKM_ECDSA")


@pytest.fixture(scope="module")
def hash_only_card(tmp_path_factory: pytest.TempPathFactory) -> Card:
    """A token without the raw mechanisms: dsig must refuse it clearly."""
    return _provision(
        tmp_path_factory.mktemp("hash-card"), "hash-card", "CKM_SHA256_RSA_PKCS,CKM_SHA384_RSA_PKCS"
    )


def dsig(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dsig", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=REPO, stdin=subprocess.DEVNULL, check=False)  # fmt: skip


def _dcmsign_ok(path: Path, ca: Path) -> None:
    ok, output = dcmtk.dcmsign_verify(path, ca_files=[ca])
    assert ok, output


# ------------------------------------------------------------------- card-only mechanisms


@pytest.mark.parametrize(
    ("key", "mac"),
    [
        ("rsa-2048", "sha256"),
        ("rsa-2048", "sha512"),
        ("rsa-2048", "ripemd160"),
        ("ec-p256", "sha256"),
        ("ec-secp384r1", "sha384"),
        ("ec-brainpoolP256r1", "sha256"),
        ("ec-brainpoolP384r1", "sha384"),
    ],
)
def test_raw_mechanisms_only_card_signs_and_dcmsign_verifies(
    raw_card: Card, tmp_path: Path, key: str, mac: str
) -> None:
    _need_dcmsign()
    out = tmp_path / "signed.dcm"
    r = dsig("sign", sample("CT_small.dcm"), out, "--key", f"pkcs11:token={raw_card.label};object={key}",
             "--pin-env", "CARD_PIN", "--mac", mac, "--json", env=raw_card.env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    (record,) = json.loads(r.stdout)["files"]
    assert record["mac"] == mac.upper() and record["output"] == str(out)
    assert record["signer"].startswith(f"CN=dsig {raw_card.label} {key}")
    assert record["covered_tag_count"] > 100
    _dcmsign_ok(out, raw_card.ca)


def test_probe_of_a_raw_card(raw_card: Card) -> None:
    uri = f"pkcs11:token={raw_card.label};object=ec-brainpoolP384r1"
    r = dsig("tokens", "probe", uri, "--pin-env", "CARD_PIN", "--json", env=raw_card.env)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["mechanisms"] == ["ECDSA", "RSA_PKCS"]
    assert report["key_type"] == "EC" and report["curve"] == "brainpoolP384r1"
    assert report["key_size"] == 384 and report["can_sign"] is True
    usable = {m["algorithm"]: m["usable"] for m in report["mac"]}
    assert usable["SHA384"] and usable["RIPEMD160"] and not usable["SHA1"] and not usable["MD5"]
    assert "digital_signature" in report["key_usage"]
    human = dsig("tokens", "probe", uri, "--pin-env", "CARD_PIN", env=raw_card.env)
    assert "brainpoolP384r1" in human.stdout and "dsig can sign with this key" in human.stdout
    assert CARD_PIN not in human.stdout + human.stderr


def test_token_without_raw_mechanisms_is_refused_in_one_line(
    hash_only_card: Card, tmp_path: Path
) -> None:
    uri = f"pkcs11:token={hash_only_card.label};object=rsa-2048"
    r = dsig("sign", sample("CT_small.dcm"), tmp_path / "o.dcm", "--key", uri,
             "--pin-env", "CARD_PIN", env=hash_only_card.env)  # fmt: skip
    assert r.returncode == 4 and r.stderr.count("\n") == 1
    assert "does not offer RSA_PKCS" in r.stderr
    assert not (tmp_path / "o.dcm").exists()
    probe = dsig("tokens", "probe", uri, "--pin-env", "CARD_PIN", "--json", env=hash_only_card.env)
    # The provider refuses to open such a key at all: probe says why, exit 4.
    assert probe.returncode == 4 and "RSA_PKCS" in probe.stderr


# -------------------------------------------------------------------- several modules


def _p11kit_home(tmp_path: Path) -> Path:
    """A HOME whose p11-kit user configuration registers OpenSC, SoftHSM2 and a broken
    module, as on a clinic workstation with a card driver that fails to load."""
    home = tmp_path / "home"
    modules = home / ".config" / "pkcs11" / "modules"
    modules.mkdir(parents=True)
    softhsm = find_softhsm_module()
    assert softhsm is not None
    opensc = Path("/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so")
    if not opensc.is_file():
        pytest.skip("OpenSC is not installed (apt-get install opensc)")
    (modules / "opensc.module").write_text(f"module: {opensc}\n")
    (modules / "softhsm2.module").write_text(f"module: {softhsm}\n")
    broken = tmp_path / "vendor-card.so"
    broken.write_bytes(b"not a shared library")
    (modules / "vendor-card.module").write_text(f"module: {broken}\n")
    return home


def test_sign_and_list_with_several_modules_registered(raw_card: Card, tmp_path: Path) -> None:
    _need_dcmsign()
    env = {**raw_card.env, "HOME": str(_p11kit_home(tmp_path))}
    out = tmp_path / "signed.dcm"
    uri = f"pkcs11:token={raw_card.label};object=rsa-2048"
    r = dsig("sign", sample("CT_small.dcm"), out, "--key", uri, "--pin-env", "CARD_PIN", env=env)
    assert r.returncode == 0, r.stderr
    assert "note: skipped PKCS#11 module vendor-card.so" in r.stderr
    _dcmsign_ok(out, raw_card.ca)

    listing = dsig("tokens", "list", "--json", env=env)
    assert listing.returncode == 0, listing.stderr
    survey = json.loads(listing.stdout)
    modules = {Path(m).name for m in survey["modules"]}
    assert {"opensc-pkcs11.so", "libsofthsm2.so"} <= modules
    assert [Path(s["module"]).name for s in survey["skipped_modules"]] == ["vendor-card.so"]
    assert any(t["label"] == raw_card.label for t in survey["tokens"])
    human = dsig("tokens", "list", env=env)
    assert "opensc-pkcs11.so\n  no token present" in human.stdout
    assert f"token '{raw_card.label}'" in human.stdout


def test_no_matching_token_lists_what_each_module_shows(raw_card: Card, tmp_path: Path) -> None:
    env = {**raw_card.env, "HOME": str(_p11kit_home(tmp_path))}
    r = dsig("sign", sample("CT_small.dcm"), tmp_path / "o.dcm", "--key",
             "pkcs11:token=no-such-card;object=x", "--pin-env", "CARD_PIN", env=env)  # fmt: skip
    assert r.returncode == 4
    error = r.stderr.splitlines()[-1]
    assert "no token matches token='no-such-card'" in error
    assert "opensc-pkcs11.so: none" in error and f"'{raw_card.label}'" in error
    assert "skipped vendor-card.so" in error


# ------------------------------------------------------------------ pin-value in a URI


def test_pin_value_in_uri_needs_allow_pin_in_uri(raw_card: Card, tmp_path: Path) -> None:
    uri = f"pkcs11:token={raw_card.label};object=rsa-2048?pin-value={CARD_PIN}"
    r = dsig("sign", sample("CT_small.dcm"), tmp_path / "o.dcm", "--key", uri, env=raw_card.env)
    assert r.returncode == 4 and "every local user" in r.stderr
    assert CARD_PIN not in r.stderr and not (tmp_path / "o.dcm").exists()
    r = dsig("sign", sample("CT_small.dcm"), tmp_path / "o.dcm", "--key", uri,
             "--allow-pin-in-uri", env=raw_card.env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert CARD_PIN not in r.stdout + r.stderr


# ------------------------------------------------------------- terminal: confirmation, PIN


def _terminal(card: Card, *args: object) -> Terminal:
    env = {k: v for k, v in card.env.items() if k != "CARD_PIN"}
    return Terminal([sys.executable, "-m", "dsig", *map(str, args)], env=env, cwd=str(REPO))


def test_confirmation_before_the_pin_then_pin_retry(raw_card: Card, tmp_path: Path) -> None:
    _need_dcmsign()
    out = tmp_path / "signed.dcm"
    term = _terminal(raw_card, "sign", sample("CT_small.dcm"), out, "--key",
                     f"pkcs11:token={raw_card.label};object=rsa-2048", "--purpose", "1")  # fmt: skip
    try:
        shown = term.expect("Sign this file? [y/N]:")
        assert "PIN" not in shown  # nothing asked before the confirmation
        assert "patient:     CompressedSamples^CT1  ID 1CT1" in shown
        assert "modality:    CT" in shown and "CT Image Storage" in shown
        assert "covers:      257 elements" in shown
        assert "purpose: 1 Author's Signature" in shown
        assert f"signer:      CN=dsig {raw_card.label} rsa-2048" in shown
        # Secrets are on screen now: the process must not be able to dump core.
        limits = Path(f"/proc/{term.pid}/limits").read_text()
        (core,) = [ln for ln in limits.splitlines() if ln.startswith("Max core file size")]
        assert core.split()[4:6] == ["0", "0"], core
        term.send("y\n")
        term.expect(f"PIN for token '{raw_card.label}': ")
        term.send("0000-wrong\n")
        # SoftHSM2 flags USER_PIN_COUNT_LOW after a failure ("tries left are low").
        term.expect(f"wrong PIN for token '{raw_card.label}'")
        term.expect(f". PIN for token '{raw_card.label}': ")
        term.send(CARD_PIN + "\n")
        assert term.wait() == 0, term.output
    finally:
        term.close()
    assert CARD_PIN not in term.output and "0000-wrong" not in term.output
    _dcmsign_ok(out, raw_card.ca)


def test_declining_signs_nothing_and_never_asks_the_pin(raw_card: Card, tmp_path: Path) -> None:
    out = tmp_path / "signed.dcm"
    term = _terminal(raw_card, "sign", sample("CT_small.dcm"), out, "--key",
                     f"pkcs11:token={raw_card.label};object=ec-p256")  # fmt: skip
    try:
        term.expect("Sign this file? [y/N]:")
        term.send("n\n")
        assert term.wait() == 4
    finally:
        term.close()
    assert "declined" in term.output and "PIN for token" not in term.output
    assert not out.exists()


def test_yes_skips_the_confirmation(raw_card: Card, tmp_path: Path) -> None:
    out = tmp_path / "signed.dcm"
    term = _terminal(raw_card, "sign", sample("CT_small.dcm"), out, "--yes", "--key",
                     f"pkcs11:token={raw_card.label};object=ec-p256")  # fmt: skip
    try:
        before = term.expect(f"PIN for token '{raw_card.label}': ")
        assert "Sign this file" not in before
        term.send(CARD_PIN + "\n")
        assert term.wait() == 0, term.output
    finally:
        term.close()
    assert out.exists()


def test_no_confirmation_without_a_terminal(raw_card: Card, tmp_path: Path) -> None:
    r = dsig("sign", sample("CT_small.dcm"), tmp_path / "o.dcm", "--key",
             f"pkcs11:token={raw_card.label};object=ec-p256", "--pin-env", "CARD_PIN",
             env=raw_card.env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Sign this file" not in r.stdout + r.stderr


def test_batch_with_an_always_authenticate_key(
    softhsm_token: ProvisionedToken, tmp_path: Path
) -> None:
    """CKA_ALWAYS_AUTHENTICATE: a context-specific login before each C_Sign, one PIN entry."""
    _need_dcmsign()
    cert = add_always_authenticate_key(softhsm_token, "always-auth", b"\x0a")
    try:
        indir = tmp_path / "in"
        indir.mkdir()
        for name in ("CT_small.dcm", "MR_small.dcm", "waveform_ecg.dcm"):
            (indir / name).write_bytes(sample(name).read_bytes())
        env = {**os.environ, "DSIG_TEST_PIN": softhsm_token.pin}
        r = dsig("sign", indir, "--recursive", "--out-dir", tmp_path / "out", "--key",
                 f"pkcs11:token={softhsm_token.label};object=always-auth",
                 "--pin-env", "DSIG_TEST_PIN", "--json", env=env)  # fmt: skip
        assert r.returncode == 0, r.stderr
        records = json.loads(r.stdout)["files"]
        assert len(records) == 3
        assert {rec["signer"] for rec in records} == {cert.subject.rfc4514_string()}
        for rec in records:
            _dcmsign_ok(Path(rec["output"]), softhsm_token.ca_cert)
    finally:
        delete_objects(softhsm_token, b"\x0a")


# ------------------------------------------- the same suite on a second implementation


OCK_PIN = "4711-ock"  # the soft token takes 4 to 8 characters


@pytest.fixture(scope="module")
def ock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenCryptokiToken]:
    """openCryptoki's soft token, private to this test module (see tests.helpers.opencryptoki)."""
    reason = opencryptoki_available()
    if reason is not None:
        if os.environ.get("DSIG_REQUIRE_SOFTHSM") == "1":
            pytest.fail(f"DSIG_REQUIRE_SOFTHSM=1 but openCryptoki is unusable: {reason}")
        pytest.skip(f"openCryptoki not usable: {reason}")
    token = start_opencryptoki(tmp_path_factory.mktemp("ock"), "ock-card", OCK_PIN)
    try:
        provision_ock_keys(token, sys.executable)
        yield token
    finally:
        token.stop()


@dataclass(frozen=True)
class Backend:
    """One PKCS#11 implementation under test: how to run dsig against its token."""

    name: str
    label: str
    env: dict[str, str]
    ca: Path
    prefix: tuple[str, ...] = ()
    has_ec: bool = True

    def dsig(self, *args: object, pin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if pin is not None:
            env["TOKEN_PIN"] = pin
        return subprocess.run([*self.prefix, sys.executable, "-m", "dsig", *map(str, args)],
                              capture_output=True, text=True, env=env, cwd=REPO,
                              stdin=subprocess.DEVNULL, check=False, timeout=120)  # fmt: skip


@pytest.fixture(params=["softhsm2", "opencryptoki"])
def backend(request: pytest.FixtureRequest, raw_card: Card) -> Backend:
    if request.param == "softhsm2":
        return Backend("softhsm2", raw_card.label, raw_card.env, raw_card.ca)
    token: OpenCryptokiToken = request.getfixturevalue("ock")
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    env["DSIG_PKCS11_MODULE"] = token.module
    ca = token.directory / "demo-ca.pem"
    # openCryptoki 3.8 (Debian 12) predates usable EC support in its soft token.
    return Backend("opencryptoki", token.label, env, ca, tuple(token.prefix()), has_ec=False)


@pytest.mark.parametrize("key", ["rsa-2048", "ec-p256"])
@pytest.mark.parametrize("mac", ["sha256", "sha384", "ripemd160"])
def test_sign_on_each_implementation_and_dcmsign_verifies(
    backend: Backend, tmp_path: Path, key: str, mac: str
) -> None:
    _need_dcmsign()
    if key.startswith("ec") and not backend.has_ec:
        pytest.skip(f"EC unsupported on {backend.name} 3.8 (Debian 12): too old")
    pin = CARD_PIN if backend.name == "softhsm2" else OCK_PIN
    out = tmp_path / "signed.dcm"
    r = backend.dsig("sign", sample("CT_small.dcm"), out, "--key",
                     f"pkcs11:token={backend.label};object={key}", "--pin-env", "TOKEN_PIN",
                     "--mac", mac, "--json", pin=pin)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["files"][0]["mac"] == mac.upper()
    _dcmsign_ok(out, backend.ca)
    probe = backend.dsig("tokens", "probe", f"pkcs11:token={backend.label};object={key}",
                         "--pin-env", "TOKEN_PIN", "--json", pin=pin)  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout)["can_sign"] is True


def test_wrong_pins_until_locked_on_opencryptoki(ock: OpenCryptokiToken, tmp_path: Path) -> None:
    """openCryptoki counts failed logins and locks the user PIN (SoftHSM2 never does)."""
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    backend = Backend("opencryptoki", ock.label, {**env, "DSIG_PKCS11_MODULE": ock.module},
                      ock.directory / "demo-ca.pem", tuple(ock.prefix()), has_ec=False)  # fmt: skip
    uri = f"pkcs11:token={ock.label};object=rsa-2048"
    messages = []
    for _ in range(4):
        r = backend.dsig("sign", sample("CT_small.dcm"), tmp_path / "o.dcm", "--key", uri,
                         "--pin-env", "TOKEN_PIN", pin="0000bad")  # fmt: skip
        assert r.returncode == 4 and r.stderr.count("\n") == 1, r.stderr
        messages.append(r.stderr.strip())
        if "locked" in r.stderr:
            break
    assert "locked" in messages[-1], messages
    # Even the right PIN is refused now, before a login is tried.
    r = backend.dsig("sign", sample("CT_small.dcm"), tmp_path / "o.dcm", "--key", uri,
                     "--pin-env", "TOKEN_PIN", pin=OCK_PIN)  # fmt: skip
    assert r.returncode == 4 and "locked" in r.stderr and not (tmp_path / "o.dcm").exists()
