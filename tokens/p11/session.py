"""Sessions and login: one login per token per process, shared and reference-counted; PINs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from tokens.api import SecretPrompt
from tokens.errors import (
    LoginError,
)
from tokens.p11.modules import _describe, _import_pkcs11
from tokens.p11.uri import InvalidPkcs11UriError, Pkcs11Uri

if TYPE_CHECKING:
    import pkcs11 as _p11
    from pkcs11._pkcs11 import lib as _Lib  # noqa: N812


# PKCS#11 login state belongs to the application (process), not to a session: a second
# C_Login fails with CKR_USER_ALREADY_LOGGED_IN and closing any logged-in session's C_Logout
# logs out every session. So providers on the same token share one session and one login.
_POOL_LOCK = threading.RLock()
_POOL: dict[tuple[str, int], _Shared] = {}


@dataclass
class _Shared:
    session: _p11.Session
    users: int
    # A PKCS#11 session runs one operation at a time: serialise C_SignInit/C_Sign pairs.
    lock: threading.Lock = field(default_factory=threading.Lock)


def _acquire_session(
    module: str, lib: _Lib, token: _p11.Token, pin_for: Callable[[], str | object]
) -> _Shared:
    """The logged-in session for ``token``: the pooled one, or a new login (asks ``pin_for``).

    Every successful call must be paired with :func:`_release_session`.
    """
    p11 = _import_pkcs11()
    key = (module, token.slot.slot_id)
    with _POOL_LOCK:
        shared = _POOL.get(key)
        if shared is not None:
            shared.users += 1
            return shared
        if token.flags & p11.TokenFlag.USER_PIN_LOCKED:
            raise LoginError(
                f"the user PIN of token '{token.label}' is locked; ask its officer to unblock it"
            )
        if not token.flags & p11.TokenFlag.LOGIN_REQUIRED:
            shared = _POOL[key] = _Shared(token.open(), 1)  # no login needed: never ask a PIN
            return shared
        pin = pin_for()
        try:
            session = token.open(user_pin=pin)
        except p11.PinIncorrect:
            _drop_leaked_session(module, lib)
            raise LoginError(
                f"wrong PIN for token '{token.label}'{_tries_left(lib, token)}"
            ) from None
        except p11.PinLocked:
            _drop_leaked_session(module, lib)
            raise LoginError(
                f"the user PIN of token '{token.label}' is locked; ask its officer to unblock it"
            ) from None
        except p11.PinLenRange:
            _drop_leaked_session(module, lib)
            raise LoginError(f"wrong PIN for token '{token.label}' (length out of range)") from None
        except p11.UserAlreadyLoggedIn:
            # Logged in by someone else in this process (outside our pool): share that login.
            session = token.open()
        except p11.PKCS11Error as e:
            _drop_leaked_session(module, lib)
            raise LoginError(f"login to token '{token.label}' failed: {_describe(e)}") from None
        shared = _POOL[key] = _Shared(session, 1)
        return shared


def _release_session(module: str, slot_id: int) -> None:
    p11 = _import_pkcs11()
    with _POOL_LOCK:
        shared = _POOL.get((module, slot_id))
        if shared is None:
            return
        shared.users -= 1
        if shared.users > 0:
            return
        del _POOL[(module, slot_id)]
        try:
            shared.session.close()  # C_Logout + C_CloseSession
        except p11.PKCS11Error:
            # Token removed or session already gone: nothing is logged in any more either way.
            return


def _drop_leaked_session(module: str, lib: _Lib) -> None:
    """python-pkcs11 leaves the session open when C_Login fails; reinitialise to close it.

    Only safe when no provider of ours uses this module, since C_Finalize ends every session.
    """
    p11 = _import_pkcs11()
    with _POOL_LOCK:
        if any(m == module for m, _ in _POOL):
            return
        try:
            lib.reinitialize()
        except p11.PKCS11Error:
            return


def _tries_left(lib: _Lib, token: _p11.Token) -> str:
    p11 = _import_pkcs11()
    fresh = _refetch_token(lib, token)
    flags = fresh.flags if fresh is not None else token.flags
    if flags & p11.TokenFlag.USER_PIN_LOCKED:
        return "; the PIN is now locked"
    if flags & p11.TokenFlag.USER_PIN_FINAL_TRY:
        return "; final try: one more wrong PIN locks the token"
    if flags & p11.TokenFlag.USER_PIN_COUNT_LOW:
        return "; tries left are low"
    return ""


def _refetch_token(lib: _Lib, token: _p11.Token) -> _p11.Token | None:
    # Token objects cache CK_TOKEN_INFO (flags) from when they were made.
    p11 = _import_pkcs11()
    try:
        for slot in lib.get_slots(token_present=True):
            if slot.slot_id == token.slot.slot_id:
                fresh: _p11.Token = slot.get_token()
                return fresh
    except p11.PKCS11Error:
        return None
    return None


def _resolve_pin(
    uri: Pkcs11Uri, token: _p11.Token, pin: bytes | None, secrets: SecretPrompt | None
) -> str | object:
    p11 = _import_pkcs11()
    if pin is not None:
        return _pin_text(pin, token)
    if uri.pin_source is not None:
        return _pin_text(_read_pin_source(uri.pin_source), token)
    if uri.pin_value is not None:
        return uri.pin_value
    if token.flags & p11.TokenFlag.PROTECTED_AUTHENTICATION_PATH:
        protected: object = p11.PROTECTED_AUTH
        return protected
    if secrets is not None:
        answer: str = secrets(f"PIN for token '{token.label}'")
        return answer
    raise LoginError(f"a PIN is needed for token '{token.label}' and none was given")


def _pin_text(pin: bytes, token: _p11.Token) -> str:
    # python-pkcs11 takes the PIN as str and encodes it as UTF-8 (PKCS#11 PINs are UTF-8).
    try:
        return pin.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise LoginError(f"the PIN for token '{token.label}' is not valid UTF-8") from None


def _read_pin_source(source: str) -> bytes:
    parsed = urlparse(source)
    if parsed.scheme not in ("", "file"):
        raise InvalidPkcs11UriError("PKCS#11 URI pin-source must be a file: URI or a path")
    path = Path(unquote(parsed.path) if parsed.scheme == "file" else source)
    try:
        return path.read_bytes().splitlines()[0] if path.stat().st_size else b""
    except OSError as e:
        raise LoginError(f"cannot read the PIN file {path}: {e.strerror or e}") from None
