"""Signing options shared by the commands that sign (``dsig sign``, ``dsig send --sign``,
``dsig manifest create``): one declaration each, so the same certificate, MAC, profile and
secret options mean the same thing, and one conversion of them to the library's values."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dsig.cli._groups import Declared, group_options

if TYPE_CHECKING:
    from dsig import Profile, SignOptions
    from tokens import HashAlgorithm, KeyProvider


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


#: ``@secret_options()``: declare --password-file/--password-env/--no-password/--pin-file/
#: --pin-env on a command in place of its keyword-only parameter ``secrets``, which receives a
#: :class:`SecretArgs`.
secret_options = group_options("secrets", SecretArgs, _SECRET_DECLARED)


@dataclasses.dataclass(frozen=True)
class SignerArgs:
    """The values of the signer options a command declares (see :func:`signer_options`); an
    option the command does not offer keeps its default."""

    cert: Path | None = None
    mac: MacChoice = MacChoice.sha256
    profile: ProfileChoice = ProfileChoice.none
    purpose: int | None = None
    force_certificate: bool = False
    policy_file: Path | None = None

    def algorithm(self) -> HashAlgorithm:
        """The MAC algorithm."""
        from tokens import HashAlgorithm

        return HashAlgorithm.from_name(self.mac.value)

    def signature_profile(self) -> Profile:
        """The signature profile enforced at creation."""
        from dsig import Profile

        return Profile(self.profile.value)

    def sign_options(
        self,
        *,
        tags: Sequence[int] | None = None,
        old_format: bool = False,
        allow_weak: Sequence[str] = (),
    ) -> SignOptions:
        """The library's signing options from these values and the command's own."""
        from dsig import SignOptions

        return SignOptions(
            mac=self.algorithm(), profile=self.signature_profile(), tags=tags,
            purpose=self.purpose, old_format=old_format, allow_weak=tuple(allow_weak),
        )  # fmt: skip

    def open_provider(
        self,
        key: str,
        secret: bytes | None,
        may_prompt: bool,
        *,
        notice: Callable[[str], None] | None = None,
        allow_pin_in_uri: bool = False,
    ) -> KeyProvider:
        """The key ``key`` (with ``--cert``), its secret as :meth:`SecretArgs.read` gave it: a
        prompt only when one may be shown, else one line saying how to pass it."""
        from dsig.cli._common import no_prompt, prompt_secret
        from tokens import open_key_provider

        return open_key_provider(
            key, cert=self.cert, password=secret,
            secrets=prompt_secret if may_prompt else no_prompt, notice=notice,
            allow_pin_in_uri=allow_pin_in_uri,
        )  # fmt: skip

    def check_certificate(self, provider: KeyProvider) -> None:
        """Refuse a certificate whose signatures can never verify (expired, key usage, EKU...,
        by the signer rules of ``--policy-file``), unless ``--force-certificate``."""
        if self.force_certificate:
            return
        import datetime as dt

        from dsig import check_signer, signer_rules

        check_signer(provider, at=dt.datetime.now(dt.UTC), rules=signer_rules(self.policy_file))


_SIGNER_DECLARED: Declared = {
    "cert": (CertOpt, None),
    "mac": (MacOpt, MacChoice.sha256),
    "profile": (ProfileOpt, ProfileChoice.none),
    "purpose": (PurposeOpt, None),
    "force_certificate": (ForceCertificateOpt, False),
    "policy_file": (SignPolicyFileOpt, None),
}

#: ``@signer_options(*names, after=...)``: declare the signer options ``names`` (all when
#: none are named) on a command in place of its keyword-only parameter ``signing``, which
#: receives a :class:`SignerArgs`.
signer_options = group_options("signing", SignerArgs, _SIGNER_DECLARED)
