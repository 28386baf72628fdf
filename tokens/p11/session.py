"""Sessions and login: one login per token per process, shared and reference-counted; PINs."""

from __future__ import annotations

import os
import stat
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
    module: str,
    lib: _Lib,
    token: _p11.Token,
    pin_for: Callable[[], str | object],
    retry: Callable[[str], str | object | None] | None = None,
) -> _Shared:
    """The logged-in session for ``token``: the pooled one, or a new login (asks ``pin_for``).

    After a wrong PIN, ``retry(why)`` is asked for another one (None: give up); it is only
    given when the PIN came from a terminal prompt. Every successful call must be paired with
    :func:`_release_session`.
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
        session = _login(module, lib, token, pin_for(), retry)
        shared = _POOL[key] = _Shared(session, 1)
        return shared


#: Prompts at most this many PINs per login, even where the token never locks (SoftHSM2).
MAX_PIN_PROMPTS = 3


def _login(
    module: str,
    lib: _Lib,
    token: _p11.Token,
    pin: str | object,
    retry: Callable[[str], str | object | None] | None,
) -> _p11.Session:
    p11 = _import_pkcs11()
    locked = f"the user PIN of token '{token.label}' is locked; ask its officer to unblock it"
    for attempt in range(1, MAX_PIN_PROMPTS + 1):
        try:
            session: _p11.Session = token.open(user_pin=pin)
            return session
        except p11.PinIncorrect:
            _drop_leaked_session(module, lib)
            state = _tries_left(lib, token)
            why = f"wrong PIN for token '{token.label}'{state}"
            if state == LOCKED_NOW or retry is None or attempt == MAX_PIN_PROMPTS:
                raise LoginError(why) from None
            again = retry(why)
            if again is None:
                raise LoginError(why) from None
            pin = again
        except p11.PinLocked:
            _drop_leaked_session(module, lib)
            raise LoginError(locked) from None
        except p11.PinLenRange:
            _drop_leaked_session(module, lib)
            raise LoginError(f"wrong PIN for token '{token.label}' (length out of range)") from None
        except p11.UserAlreadyLoggedIn:
            # Logged in by someone else in this process (outside our pool): share that login.
            shared: _p11.Session = token.open()
            return shared
        except p11.PKCS11Error as e:
            _drop_leaked_session(module, lib)
            raise LoginError(f"login to token '{token.label}' failed: {_describe(e)}") from None
    raise AssertionError("unreachable")  # the loop returns or raises


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


LOCKED_NOW = "; the PIN is now locked: ask the token's officer to unblock it"


def _tries_left(lib: _Lib, token: _p11.Token) -> str:
    p11 = _import_pkcs11()
    fresh = _refetch_token(lib, token)
    flags = fresh.flags if fresh is not None else token.flags
    if flags & p11.TokenFlag.USER_PIN_LOCKED:
        return LOCKED_NOW
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


class PinSupplier:
    """Where the PIN for one token comes from; resolved once, then reused (a
    CKA_ALWAYS_AUTHENTICATE key needs it again before every signature, never a second prompt).

    Order: ``pin`` (the caller's, from env or file), the URI's ``pin-source`` then
    ``pin-value``, the reader's PIN pad (protected authentication path; ``notice`` tells the
    user to use it), then ``secrets``. Only a PIN from ``secrets`` is ever asked again.
    """

    def __init__(
        self,
        uri: Pkcs11Uri,
        token: _p11.Token,
        pin: bytes | None,
        secrets: SecretPrompt | None,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        self._uri, self._token, self._pin, self._secrets = uri, token, pin, secrets
        self._notice = notice
        self._value: str | object | None = None
        self.prompted = False

    def __call__(self) -> str | object:
        if self._value is None:
            self._value = self._resolve()
        return self._value

    def retry(self, why: str) -> str | object | None:
        """Another PIN from the prompt after ``why`` (a wrong PIN), or None when not prompted."""
        if not self.prompted or self._secrets is None:
            return None
        self._value = self._secrets(f"{why}. PIN for token '{self._token.label}'")
        return self._value

    def forget(self) -> None:
        self._value = None
        self._pin = None

    def _resolve(self) -> str | object:
        p11 = _import_pkcs11()
        token, uri = self._token, self._uri
        if self._pin is not None:
            return _pin_text(self._pin, token)
        if uri.pin_source is not None:
            return _pin_text(read_pin_source(uri.pin_source), token)
        if uri.pin_value is not None:
            return uri.pin_value
        if token.flags & p11.TokenFlag.PROTECTED_AUTHENTICATION_PATH:
            if self._notice is not None:
                self._notice(f"enter the PIN for token '{token.label}' on the reader's keypad")
            protected: object = p11.PROTECTED_AUTH
            return protected
        if self._secrets is not None:
            self.prompted = True
            answer: str = self._secrets(f"PIN for token '{token.label}'")
            return answer
        raise LoginError(f"a PIN is needed for token '{token.label}' and none was given")


def _resolve_pin(
    uri: Pkcs11Uri, token: _p11.Token, pin: bytes | None, secrets: SecretPrompt | None
) -> str | object:
    return PinSupplier(uri, token, pin, secrets)()


def _pin_text(pin: bytes, token: _p11.Token) -> str:
    # python-pkcs11 takes the PIN as str and encodes it as UTF-8 (PKCS#11 PINs are UTF-8).
    try:
        return pin.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise LoginError(f"the PIN for token '{token.label}' is not valid UTF-8") from None


def read_pin_source(source: str) -> bytes:
    """The first line of a ``pin-source`` file, which the user must own and nobody else may
    read (as ssh demands of private keys): a URI must not turn dsig into a reader of other
    people's files (``pin-source=file:///etc/shadow`` would be sent to the token)."""
    parsed = urlparse(source)
    if parsed.scheme not in ("", "file") or (parsed.scheme == "file" and parsed.netloc):
        raise InvalidPkcs11UriError("PKCS#11 URI pin-source must be a local file: URI or a path")
    path = Path(unquote(parsed.path) if parsed.scheme == "file" else source)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        raise LoginError(f"cannot read the PIN file {path}: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as fp:
        info = os.fstat(fp.fileno())  # the opened file itself: no check-then-open race
        if not stat.S_ISREG(info.st_mode):
            raise LoginError(f"the PIN file {path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise LoginError(f"the PIN file {path} is not owned by you: refused")
        if info.st_mode & 0o077:
            raise LoginError(
                f"the PIN file {path} is accessible to group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}): refused; chmod 600 it"
            )
        data = fp.read(4096)
    return data.splitlines()[0] if data else b""
