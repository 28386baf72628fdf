"""Open a key provider from what the user typed: a key file path or a ``pkcs11:`` URI."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tokens.api import KeyProvider, SecretPrompt


def open_key_provider(
    spec: str,
    *,
    cert: str | os.PathLike[str] | None = None,
    password: bytes | None = None,
    secrets: SecretPrompt | None = None,
    notice: Callable[[str], None] | None = None,
    allow_pin_in_uri: bool = False,
) -> KeyProvider:
    """Open the key named by ``spec``.

    ``spec`` is a file path (optionally ``file:``-prefixed) or an RFC 7512 ``pkcs11:`` URI.
    ``password`` is the key-file password or the token PIN when already known; otherwise
    ``secrets`` is asked when one is needed. For tokens, ``notice`` receives one-line notes
    (skipped modules, "use the reader's keypad") and ``allow_pin_in_uri`` accepts a URI's
    ``pin-value`` (refused by default: command lines are visible to every local user).
    The caller closes the provider (it is a context manager).
    """
    cert = Path(cert) if cert is not None else None
    if spec.startswith("pkcs11:"):
        from tokens import pkcs11  # lazy: the core never needs python-pkcs11

        return pkcs11.open_pkcs11_provider(
            spec,
            cert=cert,
            pin=password,
            secrets=secrets,
            notice=notice,
            allow_pin_in_uri=allow_pin_in_uri,
        )
    from tokens.files import FileKeyProvider

    path = Path(spec.removeprefix("file:"))
    return FileKeyProvider.from_files(path, cert, password=password, secrets=secrets)
