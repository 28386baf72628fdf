"""DICOM networking: a verifying C-STORE SCP (``dsig serve``) and a signing SCU (``dsig send``).

Built on pynetdicom, which is imported only when one of these names is first used::

    from dsig.net import ReceiveServer, ServerConfig   # the storage node
    from dsig.net import send_files, SendOptions        # the sender

``import dsig`` never imports this package, and ``import dsig.net`` does not import pynetdicom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsig.errors import DsigError
from pki._lazy import lazy_exports
from tokens.faults import BadEnvironmentError

if TYPE_CHECKING:
    from dsig.net.scp import (
        SCP_APPLICATION_INFO,
        AuditRecord,
        CachingEvaluator,
        ReceiveServer,
        ServerConfig,
    )
    from dsig.net.scu import SendOptions, SendResult, send_files


class NetError(DsigError, BadEnvironmentError):
    """A network or storage-node problem (cannot listen, connect, associate, write): exit 4."""


_LAZY = {
    "SCP_APPLICATION_INFO": "dsig.net.scp",
    "AuditRecord": "dsig.net.scp",
    "CachingEvaluator": "dsig.net.scp",
    "ReceiveServer": "dsig.net.scp",
    "ServerConfig": "dsig.net.scp",
    "SendOptions": "dsig.net.scu",
    "SendResult": "dsig.net.scu",
    "send_files": "dsig.net.scu",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "SCP_APPLICATION_INFO",
    "AuditRecord",
    "CachingEvaluator",
    "NetError",
    "ReceiveServer",
    "SendOptions",
    "SendResult",
    "ServerConfig",
    "send_files",
]
