"""DICOM TLS options shared by ``dsig serve`` and ``dsig send`` (see :mod:`dsig.net.tls`)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dsig.cli._common import fail, prompt_secret, read_secret

if TYPE_CHECKING:
    from dsig.net import TlsConfig


class ClientCertChoice(enum.StrEnum):
    """``--tls-client-cert``."""

    required = "required"
    optional = "optional"
    none = "none"


TlsCertOpt = Annotated[
    Path | None,
    typer.Option(help="DICOM TLS: our certificate (PEM, with its chain); enables TLS"),
]
TlsKeyOpt = Annotated[Path | None, typer.Option(help="DICOM TLS: the private key (PEM)")]
TlsCaOpt = Annotated[
    Path | None, typer.Option(help="DICOM TLS: CA certificates (PEM) the peer must chain to")
]
TlsKeyPasswordFileOpt = Annotated[
    Path | None, typer.Option(help="read the TLS key's password from a file")
]
TlsKeyPasswordEnvOpt = Annotated[
    str | None, typer.Option(help="read the TLS key's password from this variable")
]


def tls_config(
    *,
    cert: Path | None,
    key: Path | None,
    ca: Path | None,
    password_file: Path | None,
    password_env: str | None,
    client_cert: str = "required",
    check_hostname: bool = True,
) -> TlsConfig:
    """The TLS settings from the options (the key password from a file, the environment or
    a prompt: never argv); exits 2 for inconsistent options."""
    from dsig.net import TlsConfig

    if (cert is None) != (key is None):
        raise fail("--tls-cert and --tls-key go together", 2)
    password: bytes | None = None
    if key is not None:
        password, may_prompt = read_secret(
            file=password_file, env=password_env, none=False, what="TLS key password"
        )
        if password is None and _encrypted(key):
            if not may_prompt:
                raise fail(
                    f"{key} is encrypted: give --tls-key-password-file or --tls-key-password-env"
                )
            password = prompt_secret(f"password of {key}").encode()
    return TlsConfig(
        cert=cert, key=key, ca=ca, client_cert=client_cert, key_password=password,
        check_hostname=check_hostname,
    )  # fmt: skip


def _encrypted(key: Path) -> bool:
    try:
        return b"ENCRYPTED" in key.read_bytes()[:4096]
    except OSError as e:
        raise fail(f"cannot read {key}: {e.strerror or e}") from None


__all__ = [
    "ClientCertChoice",
    "TlsCaOpt",
    "TlsCertOpt",
    "TlsKeyOpt",
    "TlsKeyPasswordEnvOpt",
    "TlsKeyPasswordFileOpt",
    "tls_config",
]
