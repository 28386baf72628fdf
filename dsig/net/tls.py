"""DICOM TLS (PS3.15 Annex B) for the storage node and the sender, with Python's ssl module.

One profile is implemented: the **Non-downgrading BCP 195 TLS Secure Transport Connection
Profile** (PS3.15 B.10; DCMTK's default ``--profile-bcp195-nd``): TLS 1.2 or 1.3 only (never
a fallback to 1.0/1.1 or SSL), no compression, no renegotiation, and for TLS 1.2 only the
BCP 195 (RFC 7525 section 4.2) AEAD cipher suites with forward secrecy:

- TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
- TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
- TLS_DHE_RSA_WITH_AES_128_GCM_SHA256, TLS_DHE_RSA_WITH_AES_256_GCM_SHA384.

TLS 1.3 uses OpenSSL's TLS 1.3 suites (all AEAD: AES-GCM, ChaCha20-Poly1305). Peers are
authenticated by certificates chained to ``ca`` (the sender also checks that the server's
certificate names the host it connects to, unless told otherwise).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsig.net import NetError

TLS_PROFILE = "non-downgrading BCP 195 (PS3.15 B.10)"
#: OpenSSL names of the TLS 1.2 suites of BCP 195 (see the module docstring).
BCP195_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
    )
)
#: ``--tls-client-cert``: what the server asks of clients.
CLIENT_CERT_POLICIES = ("required", "optional", "none")


@dataclass(frozen=True)
class TlsConfig:
    """Our certificate and key (PEM), the CA certificates peers must chain to, and for a
    server whether client certificates are required, checked when offered, or not asked."""

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    client_cert: str = "required"
    #: Password of an encrypted key (from a prompt, a file or the environment: never argv).
    key_password: bytes | None = None
    #: Client side: check that the server certificate names the host (SAN).
    check_hostname: bool = True

    def __post_init__(self) -> None:
        if self.client_cert not in CLIENT_CERT_POLICIES:
            raise ValueError(f"client_cert must be one of {CLIENT_CERT_POLICIES}")
        if (self.cert is None) != (self.key is None):
            raise ValueError("a TLS certificate needs its key and a key its certificate")


class _LazyHandshakeContext(ssl.SSLContext):
    """pynetdicom wraps accepted sockets in its accept loop: with the default eager handshake
    one silent client would stall every other connection. Here the handshake happens on the
    first read, in the association's own thread (where the idle watchdog bounds it)."""

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        if kwargs.get("server_side"):
            kwargs["do_handshake_on_connect"] = False
        return super().wrap_socket(*args, **kwargs)


def _profile(context: ssl.SSLContext) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(BCP195_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION


def _load_chain(context: ssl.SSLContext, config: TlsConfig) -> None:
    if config.cert is None or config.key is None:
        return
    password: Callable[[], bytes] | None = None
    if config.key_password is not None:
        secret = config.key_password
        password = lambda: secret  # noqa: E731  (ssl wants a callable or bytes)
    else:
        password = _no_password
    try:
        context.load_cert_chain(config.cert, config.key, password=password)
    except ssl.SSLError as e:
        raise NetError(
            f"cannot use TLS certificate {config.cert} with key {config.key}: {e.reason or e} "
            "(wrong key, or a wrong or missing key password)"
        ) from None
    except OSError as e:
        raise NetError(f"cannot read TLS certificate or key: {e.strerror or e}") from None


def _no_password() -> bytes:
    raise NetError("the TLS key is encrypted: its password is needed", option="tls_key_password")


def _load_ca(context: ssl.SSLContext, ca: Path) -> None:
    try:
        context.load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, OSError) as e:
        raise NetError(f"cannot read TLS CA certificates {ca}: {e}") from None


def server_context(config: TlsConfig) -> ssl.SSLContext:
    """The context ``dsig serve`` accepts connections with."""
    if config.cert is None:
        raise NetError("a TLS server needs a certificate and its key", option="tls_cert")
    context = _LazyHandshakeContext(ssl.PROTOCOL_TLS_SERVER)
    _profile(context)
    _load_chain(context, config)
    if config.client_cert == "none":
        context.verify_mode = ssl.CERT_NONE
        return context
    if config.ca is None:
        raise NetError(
            f"client certificates {config.client_cert} need CA certificates to check them",
            option="tls_ca",
        )
    _load_ca(context, config.ca)
    context.verify_mode = (
        ssl.CERT_REQUIRED if config.client_cert == "required" else ssl.CERT_OPTIONAL
    )
    return context


def client_context(config: TlsConfig) -> ssl.SSLContext:
    """The context ``dsig send`` (and forwarding) connects with: the server is always
    authenticated (against ``ca``, or the system's CAs without one)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _profile(context)
    _load_chain(context, config)
    if config.ca is not None:
        _load_ca(context, config.ca)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = config.check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    return context


__all__ = [
    "BCP195_CIPHERS",
    "CLIENT_CERT_POLICIES",
    "TLS_PROFILE",
    "TlsConfig",
    "client_context",
    "server_context",
]
