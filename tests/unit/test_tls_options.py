"""The DICOM TLS options of ``dsig serve`` and ``dsig send`` (dsig.cli._tls_options): one
declaration, one check and one conversion to the library's TlsConfig for both commands."""

from __future__ import annotations

from pathlib import Path

import typer.main
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from dsig.cli import _full_app
from dsig.cli._tls_options import ClientCertChoice, TlsArgs


def _key(path: Path, password: bytes | None) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    path.write_bytes(pem)
    return path


def _run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(_full_app(), list(args))
    return r.exit_code, r.output


def _serve(tmp_path: Path, *args: str) -> tuple[int, str]:
    store, quarantine = tmp_path / "store", tmp_path / "quarantine"
    return _run("serve", "--store", str(store), "--quarantine", str(quarantine), *args)


def _send(tmp_path: Path, *args: str) -> tuple[int, str]:
    obj = tmp_path / "a.dcm"
    obj.write_bytes(b"not read before the TLS options are checked")
    return _run("send", "127.0.0.1", "11112", str(obj), *args)


def test_serve_needs_its_own_certificate_and_key(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("unread")
    code, out = _serve(tmp_path, "--tls-ca", str(ca))
    assert code == 2
    assert out.strip() == "dsig: error: DICOM TLS needs --tls-cert and --tls-key"
    code, out = _serve(tmp_path, "--forward", "PEER@127.0.0.1:1", "--forward-tls")
    assert code == 2
    assert out.strip() == "dsig: error: DICOM TLS needs --tls-cert and --tls-key"
    assert not (tmp_path / "store").exists()


def test_certificate_and_key_go_together_on_both_commands(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("unread")
    key = _key(tmp_path / "k.pem", None)
    for code, out in (
        _serve(tmp_path, "--tls-cert", str(cert)),
        _send(tmp_path, "--tls-key", str(key)),
    ):
        assert code == 2
        assert out.strip() == "dsig: error: --tls-cert and --tls-key go together"


def test_an_encrypted_key_without_a_password_source_is_one_line(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("unread")
    key = _key(tmp_path / "k.pem", b"secret")
    wanted = (
        f"dsig: error: {key} is encrypted: give --tls-key-password-file or --tls-key-password-env"
    )
    for code, out in (
        _serve(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key)),
        _send(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key)),
    ):
        assert (code, out.strip()) == (4, wanted)


def test_config_from_the_values(tmp_path: Path) -> None:
    assert TlsArgs().config(server=True) is None
    assert TlsArgs().config(server=False) is None
    assert TlsArgs(tls_key_password_env="UNUSED").config(server=False) is None
    client = TlsArgs(tls=True).config(server=False)
    assert client is not None and client.cert is None and client.check_hostname
    ca = tmp_path / "ca.pem"
    unchecked = TlsArgs(tls_ca=ca, tls_no_hostname_check=True).config(server=False)
    assert unchecked is not None and unchecked.ca == ca and not unchecked.check_hostname
    key = _key(tmp_path / "k.pem", b"secret")
    password = tmp_path / "password"
    password.write_bytes(b"secret\n")
    server = TlsArgs(
        tls_cert=tmp_path / "c.pem", tls_key=key, tls_key_password_file=password,
        tls_client_cert=ClientCertChoice.optional,
    ).config(server=True)  # fmt: skip
    assert server is not None
    assert (server.key, server.key_password, server.client_cert) == (key, b"secret", "optional")
    plain = _key(tmp_path / "plain.pem", None)
    unencrypted = TlsArgs(tls_cert=tmp_path / "c.pem", tls_key=plain).config(server=True)
    assert unencrypted is not None and unencrypted.key_password is None


def _tls_options(command: str) -> list[str]:
    params = typer.main.get_command(_full_app()).commands[command].params  # type: ignore[attr-defined]
    return [o for p in params for o in p.opts if o.startswith("--tls")]


def test_each_command_offers_its_tls_options_in_order() -> None:
    assert _tls_options("serve") == [
        "--tls-cert", "--tls-key", "--tls-ca", "--tls-client-cert", "--tls-key-password-file",
        "--tls-key-password-env",
    ]  # fmt: skip
    assert _tls_options("send") == [
        "--tls", "--tls-cert", "--tls-key", "--tls-ca", "--tls-key-password-file",
        "--tls-key-password-env", "--tls-no-hostname-check",
    ]  # fmt: skip
