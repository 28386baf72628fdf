"""DICOM TLS options shared by ``dsig serve`` and ``dsig send`` (see :mod:`dsig.net.tls`):
declared once, checked once and turned into one :class:`~dsig.net.TlsConfig`."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dsig.cli._common import fail, prompt_secret, read_secret
from dsig.cli._groups import Declared, group_options

if TYPE_CHECKING:
    from dsig.net import TlsConfig


class ClientCertChoice(enum.StrEnum):
    """``--tls-client-cert``."""

    required = "required"
    optional = "optional"
    none = "none"


@dataclasses.dataclass(frozen=True)
class TlsArgs:
    """The values of the DICOM TLS options a command declares (see :func:`tls_options`); an
    option the command does not offer keeps its default."""

    tls: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls_client_cert: ClientCertChoice = ClientCertChoice.required
    tls_key_password_file: Path | None = None
    tls_key_password_env: str | None = None
    tls_no_hostname_check: bool = False

    def config(self, *, server: bool, forward_tls: bool = False) -> TlsConfig | None:
        """The TLS settings, or None when no option asks for TLS (``--tls``, a certificate,
        a key, CAs, or ``forward_tls``). A server needs its own certificate and key. The key
        password comes from a file, the environment or a prompt: never argv. Inconsistent
        options exit 2."""
        from dsig.net import TlsConfig

        given = (self.tls_cert, self.tls_key, self.tls_ca)
        if not (self.tls or forward_tls or any(p is not None for p in given)):
            return None
        if (self.tls_cert is None) != (self.tls_key is None):
            raise fail("--tls-cert and --tls-key go together", 2)
        if server and self.tls_cert is None:
            raise fail("DICOM TLS needs --tls-cert and --tls-key", 2)
        return TlsConfig(
            cert=self.tls_cert, key=self.tls_key, ca=self.tls_ca,
            client_cert=self.tls_client_cert.value, key_password=self._password(),
            check_hostname=not self.tls_no_hostname_check,
        )  # fmt: skip

    def _password(self) -> bytes | None:
        key = self.tls_key
        if key is None:
            return None
        password, may_prompt = read_secret(
            file=self.tls_key_password_file, env=self.tls_key_password_env, none=False,
            what="TLS key password",
        )  # fmt: skip
        if password is None and _encrypted(key):
            if not may_prompt:
                raise fail(
                    f"{key} is encrypted: give --tls-key-password-file or --tls-key-password-env"
                )
            password = prompt_secret(f"password of {key}").encode()
        return password


def _encrypted(key: Path) -> bool:
    try:
        return b"ENCRYPTED" in key.read_bytes()[:4096]
    except OSError as e:
        raise fail(f"cannot read {key}: {e.strerror or e}") from None


TlsOpt = Annotated[
    bool, typer.Option("--tls", help="DICOM TLS (implied by --tls-cert or --tls-ca)")
]
TlsCertOpt = Annotated[
    Path | None,
    typer.Option(help="DICOM TLS: our certificate (PEM, with its chain); enables TLS"),
]
TlsKeyOpt = Annotated[Path | None, typer.Option(help="DICOM TLS: the private key (PEM)")]
TlsCaOpt = Annotated[
    Path | None, typer.Option(help="DICOM TLS: CA certificates (PEM) the peer must chain to")
]
TlsClientCertOpt = Annotated[
    ClientCertChoice,
    typer.Option(
        help="client certificates (checked against --tls-ca): required, optional "
        "(checked when offered) or none"
    ),
]
TlsKeyPasswordFileOpt = Annotated[
    Path | None, typer.Option(help="read the TLS key's password from a file")
]
TlsKeyPasswordEnvOpt = Annotated[
    str | None, typer.Option(help="read the TLS key's password from this variable")
]
TlsNoHostnameCheckOpt = Annotated[
    bool,
    typer.Option(
        "--tls-no-hostname-check",
        help="accept a server certificate (chained to --tls-ca) that does not name HOST",
    ),
]

#: Each TLS option's declaration and default, in the order the commands list them.
_DECLARED: Declared = {
    "tls": (TlsOpt, False),
    "tls_cert": (TlsCertOpt, None),
    "tls_key": (TlsKeyOpt, None),
    "tls_ca": (TlsCaOpt, None),
    "tls_client_cert": (TlsClientCertOpt, ClientCertChoice.required),
    "tls_key_password_file": (TlsKeyPasswordFileOpt, None),
    "tls_key_password_env": (TlsKeyPasswordEnvOpt, None),
    "tls_no_hostname_check": (TlsNoHostnameCheckOpt, False),
}
#: What the server offers (its own certificate, and what it asks of clients).
SERVER_TLS_OPTIONS = (
    "tls_cert", "tls_key", "tls_ca", "tls_client_cert", "tls_key_password_file",
    "tls_key_password_env",
)  # fmt: skip
#: What the sender offers (TLS without a client certificate, and the host name check).
CLIENT_TLS_OPTIONS = (
    "tls", "tls_cert", "tls_key", "tls_ca", "tls_key_password_file", "tls_key_password_env",
    "tls_no_hostname_check",
)  # fmt: skip


#: ``@tls_options(*names)``: declare the TLS options ``names`` on a command in place of its
#: keyword-only parameter ``dicom_tls``, which receives one :class:`TlsArgs`.
tls_options = group_options("dicom_tls", TlsArgs, _DECLARED)


__all__ = ["CLIENT_TLS_OPTIONS", "SERVER_TLS_OPTIONS", "ClientCertChoice", "TlsArgs", "tls_options"]
