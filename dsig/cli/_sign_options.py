"""Signing options shared by the commands that sign (``dsig sign``, ``dsig send --sign``):
one declaration each, so the same key, MAC, profile and secret options mean the same thing."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer


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
