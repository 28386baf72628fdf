"""DICOM networking: a verifying C-STORE SCP (``dsig serve``) and a signing SCU (``dsig send``).

Built on pynetdicom, which is imported only when one of these names is first used::

    from dsig.net import ReceiveServer, ServerConfig   # the storage node
    from dsig.net import send_files, SendOptions        # the sender
    from dsig.net import StowServer, TlsConfig           # DICOMweb STOW-RS, DICOM TLS

``import dsig`` never imports this package, and ``import dsig.net`` does not import pynetdicom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsig.errors import DsigError
from pki._lazy import lazy_exports
from tokens.faults import BadEnvironmentError

if TYPE_CHECKING:
    from dsig.net.audit import check_audit_log
    from dsig.net.forward import ForwardEvent, ForwardTarget
    from dsig.net.scp import (
        SCP_APPLICATION_INFO,
        AuditRecord,
        ReceiveServer,
        ServerConfig,
    )
    from dsig.net.scu import SendOptions, SendResult, send_files
    from dsig.net.stow import StowServer
    from dsig.net.tls import TLS_PROFILE, TlsConfig, client_context


class NetError(DsigError, BadEnvironmentError):
    """A network or storage-node problem (cannot listen, connect, associate, write): exit 4."""


__getattr__ = lazy_exports(__name__)


__all__ = [
    "SCP_APPLICATION_INFO",
    "TLS_PROFILE",
    "AuditRecord",
    "ForwardEvent",
    "ForwardTarget",
    "NetError",
    "ReceiveServer",
    "SendOptions",
    "SendResult",
    "ServerConfig",
    "StowServer",
    "TlsConfig",
    "check_audit_log",
    "client_context",
    "send_files",
]
