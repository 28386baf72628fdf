"""Sign on a real SoftHSM2 token through tokens.pkcs11 and check every signature with cryptography.

Needs the ``softhsm_token`` fixture (``tests.helpers.softhsm_fixtures``); skips without SoftHSM2
unless DSIG_REQUIRE_SOFTHSM=1.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from typer.testing import CliRunner

from tests.helpers.pki_factory import issue
from tests.helpers.softhsm import (
    ProvisionedToken,
    add_always_authenticate_key,
    delete_objects,
)
from tests.helpers.softhsm_fixtures import skip_or_fail_without_softhsm
from tokens import open_key_provider
from tokens.api import KeyProvider, SignatureScheme
from tokens.digest import Digest, HashAlgorithm
from tokens.errors import (
    BackendUnavailableError,
    KeyMismatchError,
    KeyNotFoundError,
    LoginError,
    TokenError,
    TokenNotFoundError,
)
from tokens.pkcs11 import Pkcs11KeyProvider, list_tokens, open_pkcs11_provider, parse_pkcs11_uri

pytestmark = pytest.mark.softhsm

REPO = Path(__file__).resolve().parents[2]
WRONG_PIN = "98765-wrong"


def _digest(alg: HashAlgorithm, data: bytes = b"dicom bytes") -> Digest:
    return Digest(alg, hashlib.new(alg.hashlib_name, data).digest())


def _pin(token: ProvisionedToken) -> bytes:
    return token.pin.encode()


def _serial(token: ProvisionedToken) -> str:
    (info,) = [t for t in list_tokens() if t.label == token.label]
    return info.serial


def _verify_rsa(cert: x509.Certificate, signature: bytes, digest: Digest) -> None:
    pub = cert.public_key()
    assert isinstance(pub, rsa.RSAPublicKey)
    recovered = pub.recover_data_from_signature(signature, padding.PKCS1v15(), None)
    assert recovered == digest.algorithm.digest_info(digest.value)


def _verify_ec(cert: x509.Certificate, signature: bytes, digest: Digest) -> None:
    pub = cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    prehashed = {
        HashAlgorithm.SHA1: hashes.SHA1(),
        HashAlgorithm.SHA256: hashes.SHA256(),
        HashAlgorithm.SHA384: hashes.SHA384(),
        HashAlgorithm.SHA512: hashes.SHA512(),
    }[digest.algorithm]
    pub.verify(signature, digest.value, ec.ECDSA(utils.Prehashed(prehashed)))


# ------------------------------------------------------------------------------------ signing


@pytest.mark.parametrize("alg", list(HashAlgorithm), ids=lambda a: a.value)
def test_rsa_signs_every_mac_algorithm(softhsm_token: ProvisionedToken, alg: HashAlgorithm) -> None:
    with open_pkcs11_provider(softhsm_token.rsa_uri, pin=_pin(softhsm_token)) as provider:
        assert isinstance(provider, KeyProvider)
        assert provider.scheme is SignatureScheme.RSA_PKCS1V15
        assert provider.certificate == softhsm_token.rsa_cert
        digest = _digest(alg)
        signature = provider.sign_digest(digest)
    assert len(signature) == 256
    _verify_rsa(softhsm_token.rsa_cert, signature, digest)


@pytest.mark.parametrize(
    "alg",
    [HashAlgorithm.SHA256, HashAlgorithm.SHA384, HashAlgorithm.SHA512, HashAlgorithm.SHA1],
    ids=lambda a: a.value,
)
def test_ec_p256_signs_der(softhsm_token: ProvisionedToken, alg: HashAlgorithm) -> None:
    with open_pkcs11_provider(softhsm_token.ec_uri, pin=_pin(softhsm_token)) as provider:
        assert provider.scheme is SignatureScheme.ECDSA_DER
        assert provider.certificate == softhsm_token.ec_cert
        digest = _digest(alg)
        signature = provider.sign_digest(digest)
    assert signature[0] == 0x30  # DER Ecdsa-Sig-Value, not raw r||s
    utils.decode_dss_signature(signature)
    _verify_ec(softhsm_token.ec_cert, signature, digest)


def test_one_provider_signs_many_digests_and_closes_twice(softhsm_token: ProvisionedToken) -> None:
    provider = open_pkcs11_provider(softhsm_token.rsa_uri, pin=_pin(softhsm_token))
    for i in range(50):
        digest = _digest(HashAlgorithm.SHA256, b"file %d" % i)
        _verify_rsa(softhsm_token.rsa_cert, provider.sign_digest(digest), digest)
    provider.close()
    provider.close()
    assert provider.closed
    with pytest.raises(Exception, match="already closed"):
        provider.sign_digest(_digest(HashAlgorithm.SHA256))


def test_two_providers_share_one_login(softhsm_token: ProvisionedToken) -> None:
    first = open_pkcs11_provider(softhsm_token.rsa_uri, pin=_pin(softhsm_token))
    second = open_pkcs11_provider(softhsm_token.ec_uri, pin=_pin(softhsm_token))
    first.close()
    # Closing one must not log the other out.
    digest = _digest(HashAlgorithm.SHA256)
    _verify_ec(softhsm_token.ec_cert, second.sign_digest(digest), digest)
    second.close()


def test_registry_opens_pkcs11_uris(softhsm_token: ProvisionedToken) -> None:
    provider = open_key_provider(softhsm_token.rsa_uri, password=_pin(softhsm_token))
    try:
        assert isinstance(provider, Pkcs11KeyProvider)
        digest = _digest(HashAlgorithm.SHA384)
        _verify_rsa(softhsm_token.rsa_cert, provider.sign_digest(digest), digest)
    finally:
        provider.close()


# ------------------------------------------------------------------------------ key selection


def test_key_by_label(softhsm_token: ProvisionedToken) -> None:
    uri = f"pkcs11:token={softhsm_token.label};object=ec-p256"
    with open_pkcs11_provider(uri, pin=_pin(softhsm_token)) as provider:
        assert provider.key_label == "ec-p256"
        assert provider.certificate == softhsm_token.ec_cert


def test_key_by_id(softhsm_token: ProvisionedToken) -> None:
    uri = f"pkcs11:token={softhsm_token.label};id=%01"
    with open_pkcs11_provider(uri, pin=_pin(softhsm_token)) as provider:
        assert provider.key_id == b"\x01"
        assert provider.certificate == softhsm_token.rsa_cert


def test_key_by_token_serial(softhsm_token: ProvisionedToken) -> None:
    uri = f"pkcs11:serial={_serial(softhsm_token)};object=rsa-2048;type=private"
    with open_pkcs11_provider(uri, pin=_pin(softhsm_token)) as provider:
        assert provider.token_label == softhsm_token.label
        digest = _digest(HashAlgorithm.SHA256)
        _verify_rsa(softhsm_token.rsa_cert, provider.sign_digest(digest), digest)


def test_module_path_in_uri(softhsm_token: ProvisionedToken) -> None:
    uri = f"{softhsm_token.rsa_uri}?module-path={softhsm_token.module}"
    with open_pkcs11_provider(uri, pin=_pin(softhsm_token)) as provider:
        assert provider.certificate == softhsm_token.rsa_cert


def test_listed_uris_open_their_key(softhsm_token: ProvisionedToken) -> None:
    (info,) = [t for t in list_tokens(pin=_pin(softhsm_token)) if t.label == softhsm_token.label]
    uris = {o.uri for o in info.objects if o.kind == "private"}
    assert len(uris) == 2
    for uri in uris:
        with open_pkcs11_provider(uri, pin=_pin(softhsm_token)) as provider:
            assert provider.key_label in ("rsa-2048", "ec-p256")


# ------------------------------------------------------------------------------------- PINs


def test_pin_from_pin_source(softhsm_token: ProvisionedToken, tmp_path: Path) -> None:
    pin_file = tmp_path / "pin.txt"
    pin_file.write_text(softhsm_token.pin + "\n")
    pin_file.chmod(0o600)
    uri = f"{softhsm_token.rsa_uri}?pin-source=file:{pin_file}"
    with open_pkcs11_provider(uri) as provider:
        assert provider.certificate == softhsm_token.rsa_cert


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
def test_pin_source_readable_by_others_is_refused(
    softhsm_token: ProvisionedToken, tmp_path: Path, mode: int
) -> None:
    pin_file = tmp_path / "pin.txt"
    pin_file.write_text(softhsm_token.pin + "\n")
    pin_file.chmod(mode)
    uri = f"{softhsm_token.rsa_uri}?pin-source=file:{pin_file}"
    with pytest.raises(LoginError, match=f"group or others \\(mode {mode:04o}\\): refused"):
        open_pkcs11_provider(uri)


def test_pin_source_of_another_owner_is_refused(
    softhsm_token: ProvisionedToken, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file to another user")
    pin_file = tmp_path / "pin.txt"
    pin_file.write_text(softhsm_token.pin + "\n")
    pin_file.chmod(0o600)
    os.chown(pin_file, 65534, 65534)  # nobody
    uri = f"{softhsm_token.rsa_uri}?pin-source=file:{pin_file}"
    with pytest.raises(LoginError, match="not owned by you"):
        open_pkcs11_provider(uri)
    # The attack of the security review: a system file named as the PIN source.
    shadow = Path("/etc/shadow")
    if shadow.exists():
        with pytest.raises(LoginError, match="refused"):
            open_pkcs11_provider(f"{softhsm_token.rsa_uri}?pin-source=file://{shadow}")


def test_pin_value_is_refused_unless_allowed(softhsm_token: ProvisionedToken) -> None:
    uri = f"{softhsm_token.ec_uri}?pin-value={softhsm_token.pin}"
    with pytest.raises(TokenError, match="every local user") as info:
        open_pkcs11_provider(uri)
    assert softhsm_token.pin not in str(info.value)


def test_prompted_pin_is_asked_again_after_a_wrong_one(softhsm_token: ProvisionedToken) -> None:
    asked: list[str] = []
    answers = iter([WRONG_PIN, softhsm_token.pin])

    def prompt(what: str) -> str:
        asked.append(what)
        return next(answers)

    with open_pkcs11_provider(softhsm_token.rsa_uri, secrets=prompt) as provider:
        digest = _digest(HashAlgorithm.SHA256)
        _verify_rsa(softhsm_token.rsa_cert, provider.sign_digest(digest), digest)
    assert len(asked) == 2
    assert asked[1].startswith(f"wrong PIN for token '{softhsm_token.label}'")
    assert WRONG_PIN not in "".join(asked)


def test_prompt_gives_up_after_max_tries(softhsm_token: ProvisionedToken) -> None:
    from tokens.pkcs11 import MAX_PIN_PROMPTS

    asked: list[str] = []

    def prompt(what: str) -> str:
        asked.append(what)
        return WRONG_PIN

    with pytest.raises(LoginError, match="wrong PIN"):
        open_pkcs11_provider(softhsm_token.rsa_uri, secrets=prompt)
    assert len(asked) == MAX_PIN_PROMPTS


def test_pin_from_env_or_file_is_never_asked_again(softhsm_token: ProvisionedToken) -> None:
    def prompt(what: str) -> str:
        raise AssertionError(f"prompted although the PIN was given: {what}")

    with pytest.raises(LoginError, match="wrong PIN"):
        open_pkcs11_provider(softhsm_token.rsa_uri, pin=WRONG_PIN.encode(), secrets=prompt)


def test_pin_value_works_and_is_never_shown(softhsm_token: ProvisionedToken) -> None:
    uri = f"{softhsm_token.ec_uri}?pin-value={softhsm_token.pin}"
    with open_pkcs11_provider(uri, allow_pin_in_uri=True) as provider:
        assert softhsm_token.pin not in repr(provider)
        assert softhsm_token.pin not in str(vars(provider).get("_pin"))


def test_pin_prompt_asked_once(softhsm_token: ProvisionedToken) -> None:
    asked: list[str] = []

    def prompt(what: str) -> str:
        asked.append(what)
        return softhsm_token.pin

    with open_pkcs11_provider(softhsm_token.rsa_uri, secrets=prompt) as provider:
        for _ in range(3):
            provider.sign_digest(_digest(HashAlgorithm.SHA256))
    assert asked == [f"PIN for token '{softhsm_token.label}'"]


def test_always_authenticate_key_relogs_in_for_each_signature(
    softhsm_token: ProvisionedToken,
) -> None:
    cert = add_always_authenticate_key(softhsm_token, "rsa-always-auth", b"\x09")
    try:
        asked: list[str] = []

        def prompt(what: str) -> str:
            asked.append(what)
            return softhsm_token.pin

        uri = f"pkcs11:token={softhsm_token.label};object=rsa-always-auth"
        with open_pkcs11_provider(uri, secrets=prompt) as provider:
            for alg in (HashAlgorithm.SHA256, HashAlgorithm.RIPEMD160, HashAlgorithm.SHA512):
                digest = _digest(alg)
                _verify_rsa(cert, provider.sign_digest(digest), digest)
            assert softhsm_token.pin not in repr(provider)
        assert len(asked) == 1  # SoftHSM rejects C_Sign without the context-specific login
    finally:
        delete_objects(softhsm_token, b"\x09")


def test_protected_authentication_path_is_used_without_pin() -> None:
    import pkcs11

    from tokens.p11 import session as p11mod

    flags = pkcs11.TokenFlag.LOGIN_REQUIRED | pkcs11.TokenFlag.PROTECTED_AUTHENTICATION_PATH
    token = _FakeToken(flags, None)

    def prompt(what: str) -> str:
        raise AssertionError("must not prompt when the reader has a PIN pad")

    uri = parse_pkcs11_uri("pkcs11:token=fake-card")
    resolved = p11mod._resolve_pin(uri, token, None, prompt)  # type: ignore[arg-type]
    assert resolved is pkcs11.PROTECTED_AUTH
    # An explicit PIN still wins over the PIN pad.
    assert p11mod._resolve_pin(uri, token, b"1234\n", prompt) == "1234"  # type: ignore[arg-type]


def test_no_pin_and_no_prompt(softhsm_token: ProvisionedToken) -> None:
    with pytest.raises(LoginError, match="a PIN is needed"):
        open_pkcs11_provider(softhsm_token.rsa_uri)


def test_wrong_pin(softhsm_token: ProvisionedToken) -> None:
    with pytest.raises(LoginError) as info:
        open_pkcs11_provider(softhsm_token.rsa_uri, pin=WRONG_PIN.encode())
    message = str(info.value)
    assert "wrong PIN" in message
    assert softhsm_token.label in message
    assert WRONG_PIN not in message
    assert WRONG_PIN not in repr(info.value)
    assert info.value.__cause__ is None  # no python-pkcs11 traceback leaking details
    # SoftHSM flags USER_PIN_COUNT_LOW after a failure; the message says so.
    assert "tries left are low" in message
    # The leaked session was cleaned up: the right PIN still logs in.
    with open_pkcs11_provider(softhsm_token.rsa_uri, pin=_pin(softhsm_token)) as provider:
        provider.sign_digest(_digest(HashAlgorithm.SHA256))


def test_wrong_pin_in_uri_not_echoed(softhsm_token: ProvisionedToken) -> None:
    uri = f"{softhsm_token.rsa_uri}?pin-value={WRONG_PIN}"
    with pytest.raises(LoginError) as info:
        open_pkcs11_provider(uri, allow_pin_in_uri=True)
    assert WRONG_PIN not in str(info.value)


# The PIN-locked path cannot be produced by SoftHSM2 (it never locks): fake token objects.


class _FakeToken:
    def __init__(self, flags: int, error: type[Exception] | None) -> None:
        self.label = "fake-card"
        self.flags = flags
        self.slot = SimpleNamespace(slot_id=4242)
        self._error = error
        self.opened: list[Any] = []

    def open(self, **kwargs: Any) -> Any:
        self.opened.append(kwargs)
        if self._error is not None:
            raise self._error()
        return SimpleNamespace(close=lambda: None)


class _FakeLib:
    def __init__(self, fresh: _FakeToken) -> None:
        self.fresh = fresh
        self.reinitialized = 0

    def get_slots(self, token_present: bool = False) -> list[Any]:
        return [SimpleNamespace(slot_id=4242, get_token=lambda: self.fresh)]

    def reinitialize(self) -> None:
        self.reinitialized += 1


def test_pin_locked_flag_refuses_before_login() -> None:
    import pkcs11

    from tokens.p11 import session as p11mod

    flags = pkcs11.TokenFlag.LOGIN_REQUIRED | pkcs11.TokenFlag.USER_PIN_LOCKED
    token = _FakeToken(flags, None)
    with pytest.raises(LoginError, match="PIN of token 'fake-card' is locked"):
        p11mod._acquire_session("fake.so", _FakeLib(token), token, lambda: "1111")  # type: ignore[arg-type]
    assert token.opened == []  # never spent a try


def test_pin_locked_error_maps_to_login_error() -> None:
    import pkcs11

    from tokens.p11 import session as p11mod

    token = _FakeToken(pkcs11.TokenFlag.LOGIN_REQUIRED, pkcs11.PinLocked)
    lib = _FakeLib(token)
    with pytest.raises(LoginError, match="locked"):
        p11mod._acquire_session("fake.so", lib, token, lambda: "1111")  # type: ignore[arg-type]
    assert lib.reinitialized == 1  # the session leaked by the failed C_Login is dropped


def test_final_try_is_announced() -> None:
    import pkcs11

    from tokens.p11 import session as p11mod

    token = _FakeToken(pkcs11.TokenFlag.LOGIN_REQUIRED, pkcs11.PinIncorrect)
    after = _FakeToken(pkcs11.TokenFlag.LOGIN_REQUIRED | pkcs11.TokenFlag.USER_PIN_FINAL_TRY, None)
    with pytest.raises(LoginError, match="final try") as info:
        p11mod._acquire_session("fake.so", _FakeLib(after), token, lambda: "1111")  # type: ignore[arg-type]
    assert "1111" not in str(info.value)


# ------------------------------------------------------------------------------------ errors


def test_token_not_found_lists_tokens(softhsm_token: ProvisionedToken) -> None:
    with pytest.raises(TokenNotFoundError) as info:
        open_pkcs11_provider("pkcs11:token=no-such-token;object=x", pin=_pin(softhsm_token))
    message = str(info.value)
    assert "no-such-token" in message
    assert f"'{softhsm_token.label}'" in message


def test_key_not_found_lists_keys(softhsm_token: ProvisionedToken) -> None:
    uri = f"pkcs11:token={softhsm_token.label};object=no-such-key"
    with pytest.raises(KeyNotFoundError) as info:
        open_pkcs11_provider(uri, pin=_pin(softhsm_token))
    message = str(info.value)
    assert "no-such-key" in message
    assert "rsa-2048 [id 01]" in message
    assert "ec-p256 [id 02]" in message


def test_ambiguous_key(softhsm_token: ProvisionedToken) -> None:
    with pytest.raises(KeyNotFoundError, match="several private keys"):
        open_pkcs11_provider(f"pkcs11:token={softhsm_token.label}", pin=_pin(softhsm_token))


def test_certificate_mismatch(softhsm_token: ProvisionedToken, tmp_path: Path) -> None:
    other = issue("dsig someone else", key_kind="rsa2048")
    _, other_cert = other.write(tmp_path, "other")
    with pytest.raises(KeyMismatchError, match="does not match"):
        open_pkcs11_provider(softhsm_token.rsa_uri, cert=other_cert, pin=_pin(softhsm_token))
    ec_cert = tmp_path / "ec.pem"
    ec_cert.write_bytes(softhsm_token.ec_cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(KeyMismatchError):
        open_pkcs11_provider(softhsm_token.rsa_uri, cert=ec_cert, pin=_pin(softhsm_token))
    other_ec = issue("dsig someone else ec", key_kind="ec-p256")
    _, other_ec_cert = other_ec.write(tmp_path, "other-ec")
    with pytest.raises(KeyMismatchError):
        open_pkcs11_provider(softhsm_token.ec_uri, cert=other_ec_cert, pin=_pin(softhsm_token))
    # The failed opens released their session: a normal open still works.
    with open_pkcs11_provider(softhsm_token.ec_uri, pin=_pin(softhsm_token)) as provider:
        provider.sign_digest(_digest(HashAlgorithm.SHA256))


def test_given_matching_certificate_is_used(
    softhsm_token: ProvisionedToken, tmp_path: Path
) -> None:
    path = tmp_path / "rsa.pem"
    path.write_bytes(softhsm_token.rsa_cert.public_bytes(serialization.Encoding.PEM))
    with open_pkcs11_provider(softhsm_token.rsa_uri, cert=path, pin=_pin(softhsm_token)) as p:
        assert p.certificate == softhsm_token.rsa_cert


def test_module_missing(softhsm_token: ProvisionedToken, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSIG_PKCS11_MODULE", "/nonexistent/libnothing.so")
    with pytest.raises(BackendUnavailableError, match="DSIG_PKCS11_MODULE"):
        open_pkcs11_provider(softhsm_token.rsa_uri, pin=_pin(softhsm_token))
    with pytest.raises(BackendUnavailableError, match="does not exist"):
        open_pkcs11_provider(
            "pkcs11:token=x?module-path=/nonexistent/libother.so", pin=_pin(softhsm_token)
        )


def test_module_that_is_not_pkcs11(softhsm_token: ProvisionedToken, tmp_path: Path) -> None:
    bogus = tmp_path / "libbogus.so"
    bogus.write_bytes(b"not a shared object")
    with pytest.raises(BackendUnavailableError, match="cannot load PKCS#11 module"):
        open_pkcs11_provider(f"pkcs11:token=x?module-path={bogus}", pin=_pin(softhsm_token))


# ------------------------------------------------------------------------------------ the CLI


def test_cli_tokens_list(softhsm_token: ProvisionedToken) -> None:
    from dsig.cli.tokens import tokens_app

    result = CliRunner().invoke(tokens_app, ["list", "--module", softhsm_token.module])
    assert result.exit_code == 0, result.output
    assert f"token '{softhsm_token.label}'" in result.output
    assert "rsa-2048" in result.output
    assert "ec-p256" in result.output
    assert f"pkcs11:token={softhsm_token.label};serial=" in result.output
    assert "id=%01;object=rsa-2048;type=private" in result.output
    assert "id=%02;object=ec-p256;type=private" in result.output


def test_cli_tokens_list_json_with_pin(
    softhsm_token: ProvisionedToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsig.cli.tokens import tokens_app

    monkeypatch.setenv("DSIG_TEST_PIN", softhsm_token.pin)
    result = CliRunner().invoke(tokens_app, ["list", "--json", "--pin-env", "DSIG_TEST_PIN"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    (token,) = [t for t in data["tokens"] if t["label"] == softhsm_token.label]
    kinds = sorted((o["kind"], o["label"]) for o in token["objects"])
    assert ("private", "rsa-2048") in kinds
    assert ("cert", "ec-p256") in kinds
    cert = next(o for o in token["objects"] if o["kind"] == "cert" and o["label"] == "rsa-2048")
    assert cert["key_size"] == 2048
    assert "dsig-test rsa-2048" in cert["subject"]
    assert cert["not_after"]
    assert softhsm_token.pin not in result.output


def test_cli_tokens_list_one_token(softhsm_token: ProvisionedToken, tmp_path: Path) -> None:
    from dsig.cli.tokens import tokens_app

    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm_token.pin + "\n")
    args = ["list", "--token", softhsm_token.label, "--pin-file", str(pin_file), "--json"]
    result = CliRunner().invoke(tokens_app, args)
    assert result.exit_code == 0, result.output
    (token,) = json.loads(result.output)["tokens"]
    assert token["logged_in"] is True
    result = CliRunner().invoke(tokens_app, ["list", "--token", "no-such-token"])
    assert result.exit_code == 4
    assert "dsig: error: no token labelled 'no-such-token'" in result.output
    assert f"'{softhsm_token.label}'" in result.output


def test_cli_tokens_list_wrong_pin(
    softhsm_token: ProvisionedToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsig.cli.tokens import tokens_app

    monkeypatch.setenv("DSIG_TEST_PIN", WRONG_PIN)
    result = CliRunner().invoke(tokens_app, ["list", "--pin-env", "DSIG_TEST_PIN"])
    assert result.exit_code == 4
    assert "dsig: error: wrong PIN" in result.output
    assert WRONG_PIN not in result.output


def test_cli_tokens_list_errors(softhsm_token: ProvisionedToken, tmp_path: Path) -> None:
    from dsig.cli.tokens import tokens_app

    result = CliRunner().invoke(tokens_app, ["list", "--module", str(tmp_path / "none.so")])
    assert result.exit_code == 4
    assert "dsig: error: PKCS#11 module" in result.output
    result = CliRunner().invoke(tokens_app, ["list", "--pin-env", "DSIG_SURELY_UNSET_VAR"])
    assert result.exit_code == 4
    assert "DSIG_SURELY_UNSET_VAR" in result.output


# ----------------------------------------------------------------------------- setup script


def test_setup_script_is_idempotent(tmp_path: Path) -> None:
    skip_or_fail_without_softhsm()
    bash = shutil.which("bash")
    assert bash is not None
    # A fresh machine's python3 has none of the project's packages: put a bare virtualenv's
    # python3 first on PATH so the script must use the project's own virtualenv.
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    bare_python = bare / "bin" / "python3"
    assert subprocess.run([str(bare_python), "-c", "import pkcs11"], check=False).returncode != 0
    env = {
        **os.environ,
        "DSIG_SOFTHSM_DIR": str(tmp_path / "hsm"),
        "PATH": f"{bare / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("SOFTHSM2_CONF", None)
    env.pop("VIRTUAL_ENV", None)
    outputs = []
    for _ in range(2):
        done = subprocess.run(
            [bash, str(REPO / "scripts" / "softhsm-setup.sh")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr + done.stdout
        outputs.append(done.stdout)
    for out in outputs:
        assert f"export SOFTHSM2_CONF={tmp_path / 'hsm' / 'softhsm2.conf'}" in out
        assert "export DSIG_PKCS11_MODULE=" in out
        assert "pkcs11:token=dsig-demo;object=rsa-2048;type=private" in out
    assert (tmp_path / "hsm" / "demo-ca.pem").is_file()
    # Exactly one dsig-demo token after two runs, and its keys sign.
    conf = tmp_path / "hsm" / "softhsm2.conf"
    check = subprocess.run(
        ["softhsm2-util", "--show-slots"],
        env={**env, "SOFTHSM2_CONF": str(conf)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.count("dsig-demo") == 1
    ca = x509.load_pem_x509_certificate((tmp_path / "hsm" / "demo-ca.pem").read_bytes())
    assert ca.subject == ca.issuer


def test_pin_pad_tells_the_user_to_use_the_keypad() -> None:
    """No SoftHSM2/openCryptoki token has a PIN pad: the token flags are faked here."""
    import pkcs11

    from tokens.p11.session import PinSupplier

    flags = pkcs11.TokenFlag.LOGIN_REQUIRED | pkcs11.TokenFlag.PROTECTED_AUTHENTICATION_PATH
    token = _FakeToken(flags, None)
    notes: list[str] = []

    def prompt(what: str) -> str:
        raise AssertionError("must not prompt when the reader has a PIN pad")

    uri = parse_pkcs11_uri("pkcs11:token=fake-card")
    pins = PinSupplier(uri, token, None, prompt, notes.append)  # type: ignore[arg-type]
    assert pins() is pkcs11.PROTECTED_AUTH
    assert notes == ["enter the PIN for token 'fake-card' on the reader's keypad"]
    assert pins.retry("wrong PIN") is None  # a PIN pad entry is never re-asked by dsig
