"""RFC 7512 URI parsing and PKCS#11 module discovery (no token, no python-pkcs11 needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tokens.errors import BackendUnavailableError, TokenError
from tokens.pkcs11 import (
    ENV_MODULE,
    InvalidPkcs11UriError,
    Pkcs11Uri,
    find_module,
    parse_pkcs11_uri,
)

REPO = Path(__file__).resolve().parents[2]


def test_full_uri_from_p11tool() -> None:
    uri = parse_pkcs11_uri(
        "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=c9214a7b1f35ce21;"
        "token=dicomsign-test;id=%20;object=leaf-rsa;type=private"
    )
    assert uri.model == "SoftHSM v2"
    assert uri.manufacturer == "SoftHSM project"
    assert uri.serial == "c9214a7b1f35ce21"
    assert uri.token == "dicomsign-test"
    assert uri.id == b"\x20"  # bytes, not the text " "
    assert uri.object == "leaf-rsa"
    assert uri.type == "private"


def test_id_is_percent_decoded_to_bytes() -> None:
    assert parse_pkcs11_uri("pkcs11:id=%01%02%ff%00").id == b"\x01\x02\xff\x00"
    # Unescaped characters are their ASCII bytes.
    assert parse_pkcs11_uri("pkcs11:id=A%42").id == b"AB"


def test_text_is_utf8() -> None:
    assert parse_pkcs11_uri("pkcs11:token=caf%C3%A9;object=a%3Bb").token == "café"
    assert parse_pkcs11_uri("pkcs11:object=a%3Bb").object == "a;b"


def test_query_attributes() -> None:
    uri = parse_pkcs11_uri(
        "pkcs11:token=t?module-path=/usr/lib/libx.so&pin-source=file:/run/pin.txt"
    )
    assert uri.module_path == "/usr/lib/libx.so"
    assert uri.pin_source == "file:/run/pin.txt"
    assert parse_pkcs11_uri("pkcs11:?module-name=softhsm2").module_name == "softhsm2"


def test_slot_id_and_empty_uri() -> None:
    assert parse_pkcs11_uri("pkcs11:slot-id=523619873").slot_id == 523619873
    assert parse_pkcs11_uri("pkcs11:") == Pkcs11Uri()
    with pytest.raises(InvalidPkcs11UriError, match="slot-id"):
        parse_pkcs11_uri("pkcs11:slot-id=abc")


def test_vendor_attributes_ignored() -> None:
    assert parse_pkcs11_uri("pkcs11:token=t;x-vendor=1?x-q=2").token == "t"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("pkcs11:token=a;token=b", "'token' appears twice"),
        ("pkcs11:id=%01;id=%02", "'id' appears twice"),
        ("pkcs11:?module-path=/a&module-path=/b", "'module-path' appears twice"),
        ("pkcs11:objet=key", "unknown PKCS#11 URI path attribute 'objet'"),
        ("pkcs11:?pin=1", "unknown PKCS#11 URI query attribute 'pin'"),
        ("pkcs11:type=secret", "type must be one of"),
        ("pkcs11:token", "has no '='"),
        ("file:key.pem", "must start with 'pkcs11:'"),
        ("pkcs11:token=%FF", "not UTF-8"),
    ],
)
def test_malformed(uri: str, message: str) -> None:
    with pytest.raises(InvalidPkcs11UriError, match=message):
        parse_pkcs11_uri(uri)


def test_malformed_is_a_token_error() -> None:
    with pytest.raises(TokenError):
        parse_pkcs11_uri("pkcs11:token=a;token=b")


SECRET = "s3cr3t-Pin-4711"


def test_pin_value_never_in_repr_or_str() -> None:
    uri = parse_pkcs11_uri(f"pkcs11:token=t;object=k?pin-value={SECRET}")
    assert uri.pin_value == SECRET
    assert SECRET not in repr(uri)
    assert SECRET not in str(uri)
    assert "pin-value=***" in str(uri)
    assert SECRET in uri.to_string(redact=False)


@pytest.mark.parametrize(
    "uri",
    [
        f"pkcs11:token=t?pin-value={SECRET}&pin-value={SECRET}x",
        f"pkcs11:token=t?pin-value={SECRET}&pin-source=file:/x",
        f"pkcs11:token=t;bogus=1?pin-value={SECRET}",
        f"pkcs11:token=t?pin-value={SECRET}&bogus=1",
    ],
)
def test_pin_value_never_in_errors(uri: str) -> None:
    with pytest.raises(InvalidPkcs11UriError) as info:
        parse_pkcs11_uri(uri)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


def test_round_trip() -> None:
    text = "pkcs11:token=my%20token;serial=01;slot-id=7;id=%01%AB;object=k%3B1;type=private"
    uri = parse_pkcs11_uri(text)
    assert parse_pkcs11_uri(str(uri)) == uri
    assert str(uri) == text


# ---------------------------------------------------------------------------- module discovery


def _fake_module(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_bytes(b"\x7fELF not really")
    return path


def test_module_path_wins(tmp_path: Path) -> None:
    mod = _fake_module(tmp_path, "libx.so")
    other = _fake_module(tmp_path, "liby.so")
    found = find_module(module_path=str(mod), env={ENV_MODULE: str(other)})
    assert found == str(mod)


def test_module_path_missing(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match=r"nope\.so does not exist"):
        find_module(module_path=str(tmp_path / "nope.so"), env={})


def test_env_override(tmp_path: Path) -> None:
    mod = _fake_module(tmp_path, "libx.so")
    assert find_module(env={ENV_MODULE: str(mod)}, p11kit_dirs=(), candidates=()) == str(mod)
    with pytest.raises(BackendUnavailableError, match=ENV_MODULE):
        find_module(env={ENV_MODULE: str(tmp_path / "gone.so")})


def test_p11kit_registration(tmp_path: Path) -> None:
    mod = _fake_module(tmp_path, "libsofthsm2.so")
    reg = tmp_path / "modules"
    reg.mkdir()
    (reg / "softhsm2.module").write_text(f"# comment\nmodule: {mod}\n")
    assert find_module(env={}, p11kit_dirs=(reg,), candidates=()) == str(mod)
    assert find_module(module_name="softhsm2", env={}, p11kit_dirs=(reg,)) == str(mod)


def test_several_registrations_need_a_choice(tmp_path: Path) -> None:
    reg = tmp_path / "modules"
    reg.mkdir()
    for name in ("softhsm2", "opensc"):
        mod = _fake_module(tmp_path, f"{name}.so")
        (reg / f"{name}.module").write_text(f"module: {mod}\n")
    with pytest.raises(BackendUnavailableError, match="several PKCS#11 modules"):
        find_module(env={}, p11kit_dirs=(reg,), candidates=())
    assert find_module(module_name="opensc", env={}, p11kit_dirs=(reg,)).endswith("opensc.so")


def test_candidates_and_module_name(tmp_path: Path) -> None:
    mod = _fake_module(tmp_path, "libsofthsm2.so")
    assert find_module(env={}, p11kit_dirs=(), candidates=[str(mod)]) == str(mod)
    assert find_module(module_name="softhsm2", env={}, p11kit_dirs=(), candidates=[str(mod)])
    with pytest.raises(BackendUnavailableError, match="named 'opensc'"):
        find_module(module_name="opensc", env={}, p11kit_dirs=(), candidates=[str(mod)])


def test_nothing_found_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError) as info:
        find_module(env={}, p11kit_dirs=(tmp_path,), candidates=["/nowhere/libsofthsm2.so"])
    message = str(info.value)
    assert "/nowhere/libsofthsm2.so" in message
    assert str(tmp_path) in message
    assert f"set ${ENV_MODULE}" in message


# ---------------------------------------------------------------------------- lazy import


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )


def test_core_import_does_not_load_pkcs11() -> None:
    done = _run(
        "import sys, tokens, dsig\n"
        "from tokens.pkcs11 import parse_pkcs11_uri, find_module\n"
        "parse_pkcs11_uri('pkcs11:token=t;id=%01')\n"
        "assert 'pkcs11' not in sys.modules, 'pkcs11 imported eagerly'\n"
        "print('ok')\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_missing_python_pkcs11_gives_install_hint(tmp_path: Path) -> None:
    mod = _fake_module(tmp_path, "libx.so")
    done = _run(
        "import sys\n"
        "sys.modules['pkcs11'] = None  # makes 'import pkcs11' raise ImportError\n"
        "from tokens.errors import BackendUnavailableError\n"
        "from tokens.pkcs11 import open_pkcs11_provider\n"
        "try:\n"
        f"    open_pkcs11_provider('pkcs11:token=t?module-path={mod}', pin=b'1')\n"
        "except BackendUnavailableError as e:\n"
        "    print(e)\n"
    )
    assert done.returncode == 0, done.stderr
    assert "python-pkcs11" in done.stdout
    assert "pip install" in done.stdout


# ---------------------------------------------------------------------------- chain from token


def test_issuer_chain_keeps_intermediates_and_drops_the_root() -> None:
    from tests.helpers.pki_factory import build_pki
    from tokens.p11.select import _issuer_chain

    pki = build_pki()
    leaf = pki.leaf("signer").cert
    unrelated = build_pki().intermediate.cert
    pool = [unrelated, pki.root.cert, pki.intermediate.cert, leaf]
    assert _issuer_chain(leaf, pool) == [pki.intermediate.cert]
    assert _issuer_chain(leaf, []) == []
