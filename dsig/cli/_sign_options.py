"""Signing options shared by the commands that sign (``dsig sign``, ``dsig send --sign``):
one declaration each, so the same key, MAC, profile and secret options mean the same thing."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from dsig.cli._groups import Declared, R, option_group


class MacChoice(enum.StrEnum):
    """--mac values."""

    sha256 = "sha256"
    sha384 = "sha384"
    sha512 = "sha512"
    ripemd160 = "ripemd160"
    sha1 = "sha1"
    md5 = "md5"


class ProfileChoice(enum.StrEnum):
    """--profile values."""

    none = "none"
    base = "base"
    creator = "creator"
    authorization = "authorization"
    sr = "sr"
    sr_verification = "sr-verification"


CertOpt = Annotated[Path | None, typer.Option(help="signer certificate (PEM/DER)")]
MacOpt = Annotated[MacChoice, typer.Option(help="MAC algorithm")]
ProfileOpt = Annotated[ProfileChoice, typer.Option(help="signature profile enforced at creation")]
PurposeOpt = Annotated[int | None, typer.Option(help="signature purpose code 1-18 (CID 7007)")]
PasswordFileOpt = Annotated[Path | None, typer.Option(help="read the key password from a file")]
PasswordEnvOpt = Annotated[
    str | None, typer.Option(help="read the key password from this variable")
]
NoPasswordOpt = Annotated[bool, typer.Option("--no-password", help="the key is not encrypted")]
PinFileOpt = Annotated[Path | None, typer.Option(help="token PIN from a file")]
PinEnvOpt = Annotated[str | None, typer.Option(help="token PIN from this variable")]
ForceCertificateOpt = Annotated[
    bool,
    typer.Option(
        "--force-certificate",
        help="sign even with a certificate whose signatures can never verify "
        "(expired, wrong key usage/EKU, CA, key mismatch)",
    ),
]
SignPolicyFileOpt = Annotated[
    Path | None,
    typer.Option("--policy-file", help="trust policy file: its signer rules (key usage, EKUs)"),
]
KeyOpt = Annotated[
    str, typer.Option("--key", help="key file (PEM/DER/PKCS#8/PKCS#12) or pkcs11: URI")
]


@dataclasses.dataclass(frozen=True)
class SecretArgs:
    """The values of the key password / token PIN options (see :func:`secret_options`)."""

    password_file: Path | None = None
    password_env: str | None = None
    no_password: bool = False
    pin_file: Path | None = None
    pin_env: str | None = None

    def read(self, key: str) -> tuple[bytes | None, bool]:
        """(secret, may_prompt) for ``key``: a PIN for a pkcs11: URI, else a password."""
        from dsig.cli._common import read_secret

        return read_secret(
            file=self.password_file or self.pin_file,
            env=self.password_env or self.pin_env,
            none=self.no_password,
            what="PIN" if key.startswith("pkcs11:") else "password",
        )


_SECRET_DECLARED: Declared = {
    "password_file": (PasswordFileOpt, None),
    "password_env": (PasswordEnvOpt, None),
    "no_password": (NoPasswordOpt, False),
    "pin_file": (PinFileOpt, None),
    "pin_env": (PinEnvOpt, None),
}


def secret_options() -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Declare --password-file/--password-env/--no-password/--pin-file/--pin-env on a command
    in place of its keyword-only parameter ``secrets``, which receives a :class:`SecretArgs`."""
    return option_group("secrets", SecretArgs, _SECRET_DECLARED, tuple(_SECRET_DECLARED))
