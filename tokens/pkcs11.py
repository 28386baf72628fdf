"""PKCS#11 key provider: sign digests with a smartcard, USB token or HSM.

This is the only module that imports python-pkcs11 (``pkcs11``), and it does so lazily: parsing
a ``pkcs11:`` URI (RFC 7512) or finding the module works without it.

Signing always hashes on the host and uses the token's raw mechanisms, which every card offers:

* RSA: ``CKM_RSA_PKCS`` over the DER DigestInfo (any hash, RIPEMD-160 included);
* EC: ``CKM_ECDSA`` over the digest, then the raw ``r||s`` is DER-encoded.

python-pkcs11's default mechanisms (SHA-512 based) are never used.
"""

from __future__ import annotations

import datetime as dt
import os
import sysconfig
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, unquote, unquote_to_bytes, urlparse

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from tokens.api import SecretPrompt, SignatureScheme
from tokens.digest import Digest, HashAlgorithm
from tokens.errors import (
    BackendUnavailableError,
    KeyLoadError,
    KeyMismatchError,
    KeyNotFoundError,
    LoginError,
    MechanismNotSupportedError,
    TokenError,
    TokenNotFoundError,
    UnsupportedAlgorithmError,
)

if TYPE_CHECKING:
    import pkcs11 as _p11
    from pkcs11._pkcs11 import lib as _Lib  # noqa: N812

__all__ = [
    "DEFAULT_P11KIT_DIRS",
    "ENV_MODULE",
    "InvalidPkcs11UriError",
    "ObjectInfo",
    "Pkcs11KeyProvider",
    "Pkcs11Uri",
    "TokenInfo",
    "find_module",
    "list_tokens",
    "open_pkcs11_provider",
    "parse_pkcs11_uri",
]

#: Environment variable naming the PKCS#11 module (shared library) to load.
ENV_MODULE = "DSIG_PKCS11_MODULE"
#: Where p11-kit registrations (``*.module`` files with a ``module:`` line) live.
DEFAULT_P11KIT_DIRS: tuple[Path, ...] = (
    Path("/usr/share/p11-kit/modules"),
    Path("/etc/pkcs11/modules"),
)

_INSTALL_HINT = "install it with: pip install 'python-pkcs11>=0.10,<0.11'"


# --------------------------------------------------------------------------------------------
# RFC 7512 URIs
# --------------------------------------------------------------------------------------------


class InvalidPkcs11UriError(TokenError):
    """The ``pkcs11:`` URI is malformed or uses an attribute we cannot honour."""


_PATH_TEXT_ATTRS = {
    "token": "token",
    "manufacturer": "manufacturer",
    "serial": "serial",
    "model": "model",
    "object": "object",
    "type": "type",
    "slot-description": "slot_description",
    "slot-manufacturer": "slot_manufacturer",
    "library-manufacturer": "library_manufacturer",
    "library-description": "library_description",
    "library-version": "library_version",
}
_OBJECT_TYPES = ("private", "public", "cert", "secret-key", "data")
_QUERY_ATTRS = {
    "module-path": "module_path",
    "module-name": "module_name",
    "pin-source": "pin_source",
    "pin-value": "pin_value",
}
# RFC 7512 pk11-p-res / pk11-q-res plus unreserved may stay unescaped in output.
_PATH_SAFE = ":[]@!$'()*+,="
_QUERY_SAFE = ":[]@!$'()*+,=/?|"


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed RFC 7512 URI. ``id`` is raw bytes; ``pin_value`` never shows in repr/str."""

    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    object: str | None = None
    type: str | None = None
    id: bytes | None = None
    slot_id: int | None = None
    slot_description: str | None = None
    slot_manufacturer: str | None = None
    library_manufacturer: str | None = None
    library_description: str | None = None
    library_version: str | None = None
    module_path: str | None = None
    module_name: str | None = None
    pin_source: str | None = None
    pin_value: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        """The URI in canonical form, with ``pin-value`` redacted: safe for logs and errors."""
        return self.to_string(redact=True)

    def to_string(self, *, redact: bool = True) -> str:
        """Serialise; ``pin-value`` is shown as ``***`` unless ``redact=False``."""
        path: list[str] = []
        for name, attr in _PATH_TEXT_ATTRS.items():
            value = getattr(self, attr)
            if value is not None and name not in ("object", "type"):
                path.append(f"{name}={quote(value, safe=_PATH_SAFE)}")
        if self.slot_id is not None:
            path.append(f"slot-id={self.slot_id}")
        if self.id is not None:
            path.append("id=" + "".join(f"%{b:02X}" for b in self.id))
        for name in ("object", "type"):
            value = getattr(self, name)
            if value is not None:
                path.append(f"{name}={quote(value, safe=_PATH_SAFE)}")
        query: list[str] = []
        for name, attr in _QUERY_ATTRS.items():
            value = getattr(self, attr)
            if value is None:
                continue
            if attr == "pin_value" and redact:
                query.append("pin-value=***")
            else:
                query.append(f"{name}={quote(value, safe=_QUERY_SAFE)}")
        return "pkcs11:" + ";".join(path) + ("?" + "&".join(query) if query else "")


def parse_pkcs11_uri(uri: str) -> Pkcs11Uri:
    """Parse an RFC 7512 ``pkcs11:`` URI.

    Text values are percent-decoded as UTF-8; ``id`` is percent-decoded to bytes
    (``id=%01%02`` → ``b"\\x01\\x02"``). Vendor attributes (``x-...``) are ignored; any other
    unknown or repeated attribute is rejected, so a typo never widens the key search.
    Error messages name attributes, never the PIN value.
    """
    scheme, sep, rest = uri.partition(":")
    if not sep or scheme.lower() != "pkcs11":
        raise InvalidPkcs11UriError("a PKCS#11 key URI must start with 'pkcs11:'")
    path_part, _, query_part = rest.partition("?")
    values: dict[str, Any] = {}
    value: str | bytes | int
    for component in filter(None, path_part.split(";")):
        name, eq, raw = component.partition("=")
        name = name.strip().lower()
        if not eq:
            raise InvalidPkcs11UriError(f"PKCS#11 URI path attribute {name!r} has no '='")
        if name.startswith("x-"):
            continue
        if name == "id":
            key, value = "id", unquote_to_bytes(raw)
        elif name == "slot-id":
            key = "slot_id"
            try:
                value = int(unquote(raw), 10)
            except ValueError:
                raise InvalidPkcs11UriError(
                    "PKCS#11 URI slot-id must be a decimal number"
                ) from None
        elif name in _PATH_TEXT_ATTRS:
            key, value = _PATH_TEXT_ATTRS[name], _unquote_text(name, raw)
        else:
            raise InvalidPkcs11UriError(f"unknown PKCS#11 URI path attribute {name!r}")
        if key in values:
            raise InvalidPkcs11UriError(f"PKCS#11 URI path attribute {name!r} appears twice")
        values[key] = value
    for component in filter(None, query_part.split("&")):
        name, eq, raw = component.partition("=")
        name = name.strip().lower()
        if name.startswith("x-"):
            continue
        if name not in _QUERY_ATTRS:
            raise InvalidPkcs11UriError(f"unknown PKCS#11 URI query attribute {name!r}")
        if not eq:
            raise InvalidPkcs11UriError(f"PKCS#11 URI query attribute {name!r} has no '='")
        key = _QUERY_ATTRS[name]
        if key in values:
            # RFC 7512 allows repeated query attributes, but two PINs or modules are ambiguous.
            raise InvalidPkcs11UriError(f"PKCS#11 URI query attribute {name!r} appears twice")
        values[key] = _unquote_text(name, raw)
    if "pin_value" in values and "pin_source" in values:
        raise InvalidPkcs11UriError("PKCS#11 URI: use either pin-value or pin-source, not both")
    if values.get("type") is not None and values["type"] not in _OBJECT_TYPES:
        raise InvalidPkcs11UriError(
            f"PKCS#11 URI type must be one of {', '.join(_OBJECT_TYPES)}, got {values['type']!r}"
        )
    return Pkcs11Uri(**values)


def _unquote_text(name: str, raw: str) -> str:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPkcs11UriError(f"PKCS#11 URI attribute {name!r} is not UTF-8") from None


def _key_uri(token: _p11.Token, label: str | None, key_id: bytes | None) -> str:
    """The URI that selects the private key with this label/id on this token."""
    serial = token.serial.decode("ascii", "replace").strip()
    return str(
        Pkcs11Uri(
            token=token.label,
            serial=serial or None,
            id=key_id or None,
            object=label or None,
            type="private",
        )
    )


# --------------------------------------------------------------------------------------------
# Module discovery
# --------------------------------------------------------------------------------------------


def _multiarch() -> str:
    value = sysconfig.get_config_var("MULTIARCH")
    return value if isinstance(value, str) and value else "x86_64-linux-gnu"


def _standard_candidates() -> tuple[str, ...]:
    ma = _multiarch()
    return (
        f"/usr/lib/{ma}/softhsm/libsofthsm2.so",
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
        "/usr/lib64/pkcs11/libsofthsm2.so",
        "/usr/lib64/softhsm/libsofthsm2.so",
        f"/usr/lib/{ma}/opensc-pkcs11.so",
        f"/usr/lib/{ma}/pkcs11/opensc-pkcs11.so",
        "/usr/lib64/opensc-pkcs11.so",
        "/usr/local/lib/opensc-pkcs11.so",
        "/opt/homebrew/lib/softhsm/libsofthsm2.so",
    )


# p11-kit's trust module only holds CA anchors (no keys); it is registered on most desktops.
_NOT_KEY_MODULES = frozenset({"p11-kit-trust"})


def _p11kit_registrations(dirs: Sequence[Path]) -> dict[str, str]:
    """name → module path, from p11-kit ``*.module`` files (relative paths resolved)."""
    found: dict[str, str] = {}
    for directory in dirs:
        try:
            files = sorted(directory.glob("*.module"))
        except OSError:
            continue
        for file in files:
            try:
                lines = file.read_text(errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                key, _, value = line.partition(":")
                if key.strip() != "module" or not value.strip():
                    continue
                module = value.strip()
                if file.stem in _NOT_KEY_MODULES:
                    continue
                if not os.path.isabs(module):
                    # p11-kit resolves bare names against its module directory.
                    module = f"/usr/lib/{_multiarch()}/pkcs11/{module}"
                found.setdefault(file.stem, module)
    return found


def find_module(
    *,
    module_path: str | None = None,
    module_name: str | None = None,
    env: Mapping[str, str] | None = None,
    p11kit_dirs: Sequence[Path] = DEFAULT_P11KIT_DIRS,
    candidates: Sequence[str] | None = None,
) -> str:
    """Find the PKCS#11 module (shared library) to load.

    Order: ``module_path`` (the URI's ``module-path``); ``$DSIG_PKCS11_MODULE``; the p11-kit
    registration named ``module_name`` or, without a name, the only registration present;
    then the usual Debian/Fedora/Homebrew locations of SoftHSM2 and OpenSC.
    Raises BackendUnavailableError saying where it looked.
    """
    env = os.environ if env is None else env
    if module_path:
        if not Path(module_path).is_file():
            raise BackendUnavailableError(f"PKCS#11 module {module_path} does not exist")
        return module_path
    override = env.get(ENV_MODULE)
    if override:
        if not Path(override).is_file():
            raise BackendUnavailableError(
                f"PKCS#11 module {override} (${ENV_MODULE}) does not exist"
            )
        return override
    registered = {
        name: path
        for name, path in _p11kit_registrations(p11kit_dirs).items()
        if Path(path).is_file()
    }
    pool = _standard_candidates() if candidates is None else tuple(candidates)
    if module_name:
        stem = module_name.removesuffix(".so")
        if stem in registered:
            return registered[stem]
        for path in pool:
            base = Path(path).name.removesuffix(".so")
            if stem in (base, base.removeprefix("lib")) and Path(path).is_file():
                return path
        raise BackendUnavailableError(
            f"PKCS#11 module named {module_name!r} not found (p11-kit registrations: "
            f"{', '.join(sorted(registered)) or 'none'}); set ${ENV_MODULE} to its path"
        )
    if len(registered) == 1:
        return next(iter(registered.values()))
    if len(registered) > 1:
        raise BackendUnavailableError(
            f"several PKCS#11 modules are registered ({', '.join(sorted(registered))}); "
            f"choose one with module-name=/module-path= in the URI or ${ENV_MODULE}"
        )
    for path in pool:
        if Path(path).is_file():
            return path
    looked = [str(d) for d in p11kit_dirs] + list(pool)
    raise BackendUnavailableError(
        f"no PKCS#11 module found (looked in ${ENV_MODULE}, {', '.join(looked)}); "
        f"set ${ENV_MODULE} to the module path (e.g. libsofthsm2.so or opensc-pkcs11.so)"
    )


def _import_pkcs11() -> ModuleType:
    try:
        import pkcs11
    except ImportError as e:
        raise BackendUnavailableError(
            f"PKCS#11 support needs python-pkcs11, which is not installed ({e.name}); "
            f"{_INSTALL_HINT}"
        ) from None
    return pkcs11


def _load_lib(module: str) -> _Lib:
    p11 = _import_pkcs11()
    try:
        lib: _Lib = p11.lib(module)
    except (OSError, RuntimeError) as e:
        raise BackendUnavailableError(
            f"cannot load PKCS#11 module {module}: {_describe(e)}"
        ) from None
    return lib


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# --------------------------------------------------------------------------------------------
# Sessions: one login per token per process, shared and reference-counted
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Token and key selection
# --------------------------------------------------------------------------------------------


def _token_desc(token: _p11.Token) -> str:
    serial = token.serial.decode("ascii", "replace").strip()
    maker = f"{token.manufacturer_id.strip()} {token.model.strip()}"
    return f"'{token.label}' (serial {serial or '-'}, {maker})"


def _present_tokens(lib: _Lib) -> list[_p11.Token]:
    p11 = _import_pkcs11()
    tokens: list[_p11.Token] = []
    for slot in lib.get_slots(token_present=True):
        try:
            tokens.append(slot.get_token())
        except (p11.TokenNotPresent, p11.TokenNotRecognised):
            continue
    return tokens


def _matches_token(uri: Pkcs11Uri, lib: _Lib, token: _p11.Token) -> bool:
    serial = token.serial.decode("ascii", "replace").strip()
    checks = (
        (uri.token, token.label.strip()),
        (uri.manufacturer, token.manufacturer_id.strip()),
        (uri.model, token.model.strip()),
        (uri.serial, serial),
        (uri.slot_description, token.slot.slot_description.strip()),
        (uri.slot_manufacturer, token.slot.manufacturer_id.strip()),
        (uri.library_manufacturer, lib.manufacturer_id.strip()),
        (uri.library_description, lib.library_description.strip()),
        (uri.library_version, "{}.{}".format(*lib.library_version)),
    )
    if uri.slot_id is not None and token.slot.slot_id != uri.slot_id:
        return False
    return all(wanted is None or wanted == actual for wanted, actual in checks)


def _select_token(uri: Pkcs11Uri, lib: _Lib) -> _p11.Token:
    p11 = _import_pkcs11()
    present = _present_tokens(lib)
    # Uninitialised tokens (SoftHSM's spare slot) hold no keys; never pick one implicitly.
    usable = [t for t in present if t.flags & p11.TokenFlag.TOKEN_INITIALIZED]
    matching = [t for t in usable if _matches_token(uri, lib, t)]
    if len(matching) == 1:
        return matching[0]
    listing = ", ".join(_token_desc(t) for t in usable) or "none"
    if not matching:
        raise TokenNotFoundError(
            f"no token matches {_token_criteria(uri)}; tokens present: {listing}"
        )
    raise TokenNotFoundError(
        f"several tokens match {_token_criteria(uri)} ({listing}); add token= or serial= to the URI"
    )


def _token_criteria(uri: Pkcs11Uri) -> str:
    parts = [
        f"{name}={value!r}"
        for name, value in (
            ("token", uri.token),
            ("serial", uri.serial),
            ("manufacturer", uri.manufacturer),
            ("model", uri.model),
            ("slot-id", uri.slot_id),
        )
        if value is not None
    ]
    return " ".join(parts) or "the URI"


def _obj_label(obj: _p11.Object) -> str | None:
    p11 = _import_pkcs11()
    try:
        value = obj[p11.Attribute.LABEL]
    except p11.PKCS11Error:
        return None
    return value if isinstance(value, str) and value else None


def _obj_id(obj: _p11.Object) -> bytes | None:
    p11 = _import_pkcs11()
    try:
        value = obj[p11.Attribute.ID]
    except p11.PKCS11Error:
        return None
    return bytes(value) if value else None


def _key_desc(obj: _p11.Object) -> str:
    label, key_id = _obj_label(obj), _obj_id(obj)
    return f"{label or '(no label)'} [id {key_id.hex() if key_id else '-'}]"


def _select_key(uri: Pkcs11Uri, session: _p11.Session, token: _p11.Token) -> _p11.PrivateKey:
    p11 = _import_pkcs11()
    if uri.type not in (None, "private"):
        raise KeyNotFoundError(
            f"the key URI must name a private key: use type=private, not type={uri.type} "
            "(the private key has the same id/object as its certificate)"
        )
    query: dict[Any, Any] = {p11.Attribute.CLASS: p11.ObjectClass.PRIVATE_KEY}
    if uri.object is not None:
        query[p11.Attribute.LABEL] = uri.object
    if uri.id is not None:
        query[p11.Attribute.ID] = uri.id
    try:
        found = list(session.get_objects(query))
    except p11.PKCS11Error as e:
        raise KeyNotFoundError(f"cannot search token '{token.label}': {_describe(e)}") from None
    if len(found) == 1:
        return cast("_p11.PrivateKey", found[0])
    all_keys = list(session.get_objects({p11.Attribute.CLASS: p11.ObjectClass.PRIVATE_KEY}))
    listing = ", ".join(_key_desc(k) for k in all_keys) or "none"
    wanted = (
        " ".join(
            s
            for s in (
                f"object={uri.object!r}" if uri.object is not None else "",
                f"id={uri.id.hex()}" if uri.id is not None else "",
            )
            if s
        )
        or "(any)"
    )
    if not found:
        raise KeyNotFoundError(
            f"no private key {wanted} on token '{token.label}'; private keys present: {listing}"
        )
    raise KeyNotFoundError(
        f"several private keys match {wanted} on token '{token.label}' ({listing}); "
        "add object= or id= to the URI"
    )


def _certificates_on_token(session: _p11.Session) -> list[tuple[_p11.Object, x509.Certificate]]:
    p11 = _import_pkcs11()
    out: list[tuple[_p11.Object, x509.Certificate]] = []
    for obj in session.get_objects({p11.Attribute.CLASS: p11.ObjectClass.CERTIFICATE}):
        try:
            out.append((obj, x509.load_der_x509_certificate(bytes(obj[p11.Attribute.VALUE]))))
        except (p11.PKCS11Error, ValueError):
            continue  # a non-X.509 or unreadable certificate object is not ours to judge
    return out


def _issuer_chain(
    leaf: x509.Certificate, pool: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    """Walk up from ``leaf`` through ``pool`` (certificates stored next to the key).

    Returns the intermediates, leaf excluded; a self-signed root is left out too, since the
    verifier must take trust anchors from its own trust store, never from the signed object.
    A parent must have signed its child: equal names alone are not enough.
    """
    chain: list[x509.Certificate] = []
    current = leaf
    while current.issuer != current.subject and len(chain) < 8:
        parent = next(
            (c for c in pool if c not in chain and c != leaf and _issued_by(current, c)), None
        )
        if parent is None or parent.issuer == parent.subject:
            break
        chain.append(parent)
        current = parent
    return chain


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


# --------------------------------------------------------------------------------------------
# The provider
# --------------------------------------------------------------------------------------------


class Pkcs11KeyProvider:
    """A private key on a PKCS#11 token, with its certificate. Implements ``KeyProvider``.

    Open with :func:`open_pkcs11_provider`. One provider holds one logged-in session for its
    lifetime, so it can sign many digests with a single PIN entry; call :meth:`close` (or use
    it as a context manager) to log out.
    """

    def __init__(
        self,
        *,
        module: str,
        token: _p11.Token,
        shared: _Shared,
        key: _p11.PrivateKey,
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate],
        scheme: SignatureScheme,
        always_authenticate: bool,
        pin: str | object | None,
    ) -> None:
        self._module = module
        self._token = token
        self._slot_id: int = token.slot.slot_id
        self._session: _p11.Session | None = shared.session
        self._lock = shared.lock
        self._key = key
        self._certificate = certificate
        self._chain = tuple(chain)
        self._scheme = scheme
        self._always_authenticate = always_authenticate
        # Kept only for CKA_ALWAYS_AUTHENTICATE keys, which need a context-specific login
        # before every signature.
        self._pin = pin if always_authenticate else None
        self.token_label: str = token.label
        self.key_label: str | None = _obj_label(key)
        self.key_id: bytes | None = _obj_id(key)

    def __repr__(self) -> str:
        state = "closed" if self._session is None else "open"
        return (
            f"<Pkcs11KeyProvider token={self.token_label!r} key={self.key_label!r} "
            f"scheme={self._scheme.value} {state}>"
        )

    def __enter__(self) -> Pkcs11KeyProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def certificate(self) -> x509.Certificate:
        """The signer certificate (from the token unless one was given)."""
        return self._certificate

    @property
    def chain(self) -> Sequence[x509.Certificate]:
        """Issuer certificates found on the token or in the given file, leaf excluded."""
        return self._chain

    @property
    def scheme(self) -> SignatureScheme:
        """RSA PKCS#1 v1.5 for RSA keys, DER ECDSA for EC keys."""
        return self._scheme

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._session is None

    def sign_digest(self, digest: Digest) -> bytes:
        """Sign a host-computed digest on the token (RSA_PKCS over DigestInfo, or ECDSA → DER)."""
        if self._session is None:
            raise TokenError(f"the key on token '{self.token_label}' was already closed")
        p11 = _import_pkcs11()
        signer = cast("_p11.SignMixin", self._key)
        kwargs: dict[str, Any] = {}
        if self._always_authenticate:
            if not isinstance(self._pin, str):
                raise LoginError(
                    f"key {self.key_label!r} needs a PIN for every signature, "
                    "which a PIN pad login cannot give here"
                )
            kwargs["pin"] = self._pin
        try:
            with self._lock:
                if self._scheme is SignatureScheme.RSA_PKCS1V15:
                    data = digest.algorithm.digest_info(digest.value)
                    return bytes(signer.sign(data, mechanism=p11.Mechanism.RSA_PKCS, **kwargs))
                raw = bytes(signer.sign(digest.value, mechanism=p11.Mechanism.ECDSA, **kwargs))
        except p11.MechanismInvalid:
            raise MechanismNotSupportedError(
                f"token '{self.token_label}' does not support the mechanism "
                f"for {self._scheme.value}"
            ) from None
        except (p11.PinIncorrect, p11.PinLocked) as e:
            raise LoginError(
                f"context-specific login to token '{self.token_label}' failed: {type(e).__name__}"
            ) from None
        except p11.PKCS11Error as e:
            raise TokenError(f"token '{self.token_label}' failed to sign: {_describe(e)}") from None
        from pkcs11.util.ec import encode_ecdsa_signature

        return bytes(encode_ecdsa_signature(raw))

    def close(self) -> None:
        """Log out and close the session; safe to call more than once."""
        if self._session is None:
            return
        self._session = None
        self._pin = None
        _release_session(self._module, self._slot_id)


def open_pkcs11_provider(
    uri: str,
    *,
    cert: Path | None = None,
    pin: bytes | None = None,
    secrets: SecretPrompt | None = None,
) -> Pkcs11KeyProvider:
    """Open the private key named by an RFC 7512 ``pkcs11:`` URI.

    The module comes from the URI (``module-path``/``module-name``), ``$DSIG_PKCS11_MODULE``,
    p11-kit or the usual install paths. The PIN is ``pin``, else the URI's ``pin-source``
    (a ``file:`` URI) or ``pin-value``, else the token's PIN pad (protected authentication path),
    else ``secrets("PIN for token 'X'")``. The certificate is ``cert`` when given, else the
    token's certificate with the key's CKA_ID (or label); it must match the key.

    Raises the errors of :mod:`tokens.errors` (BackendUnavailableError, TokenNotFoundError,
    LoginError, KeyNotFoundError, KeyMismatchError, MechanismNotSupportedError, ...).
    """
    parsed = parse_pkcs11_uri(uri)
    module = find_module(module_path=parsed.module_path, module_name=parsed.module_name)
    lib = _load_lib(module)
    p11 = _import_pkcs11()
    try:
        token = _select_token(parsed, lib)
    except p11.PKCS11Error as e:
        raise TokenNotFoundError(f"cannot list tokens of {module}: {_describe(e)}") from None

    resolved: list[str | object] = []

    def pin_for() -> str | object:
        # Memoised: a CKA_ALWAYS_AUTHENTICATE key needs the same PIN again, never a 2nd prompt.
        if not resolved:
            resolved.append(_resolve_pin(parsed, token, pin, secrets))
        return resolved[0]

    try:
        shared = _acquire_session(module, lib, token, pin_for)
    except p11.PKCS11Error as e:
        raise LoginError(
            f"cannot open a session on token '{token.label}': {_describe(e)}"
        ) from None
    try:
        return _build_provider(parsed, module, token, shared, cert, pin_for)
    except BaseException as e:
        _release_session(module, token.slot.slot_id)
        if isinstance(e, p11.PKCS11Error):
            # Anything python-pkcs11 raises that we did not map: one line, no traceback.
            raise TokenError(f"token '{token.label}': {_describe(e)}") from None
        raise


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


def _build_provider(
    uri: Pkcs11Uri,
    module: str,
    token: _p11.Token,
    shared: _Shared,
    cert_path: Path | None,
    pin_for: Callable[[], str | object],
) -> Pkcs11KeyProvider:
    p11 = _import_pkcs11()
    session = shared.session
    key = _select_key(uri, session, token)
    try:
        key_type = key.key_type
    except p11.PKCS11Error as e:
        raise KeyNotFoundError(
            f"cannot read the key type of {_key_desc(key)}: {_describe(e)}"
        ) from None
    if key_type == p11.KeyType.RSA:
        scheme, mechanism = SignatureScheme.RSA_PKCS1V15, p11.Mechanism.RSA_PKCS
    elif key_type == p11.KeyType.EC:
        scheme, mechanism = SignatureScheme.ECDSA_DER, p11.Mechanism.ECDSA
    else:
        raise UnsupportedAlgorithmError(
            f"key {_key_desc(key)} is a {key_type.name} key; only RSA and EC keys can sign DICOM"
        )
    try:
        supported = token.slot.get_mechanisms()
    except p11.PKCS11Error:
        supported = {mechanism}  # some modules cannot list mechanisms; signing will tell
    if mechanism not in supported:
        raise MechanismNotSupportedError(
            f"token '{token.label}' does not offer {mechanism.name}, needed for {scheme.value}"
        )
    try:
        always_auth = bool(key[p11.Attribute.ALWAYS_AUTHENTICATE])
    except p11.PKCS11Error:
        always_auth = False

    on_token = _certificates_on_token(session)
    if cert_path is not None:
        from tokens.files import load_certificates  # shared PEM/DER bundle loader

        given = load_certificates(cert_path)
        leaf = given[0]
        pool = given[1:] + [c for _, c in on_token]
    else:
        leaf = _token_certificate(key, on_token, token)
        pool = [c for _, c in on_token]
    provider = Pkcs11KeyProvider(
        module=module,
        token=token,
        shared=shared,
        key=key,
        certificate=leaf,
        chain=_issuer_chain(leaf, pool),
        scheme=scheme,
        always_authenticate=always_auth,
        pin=pin_for() if always_auth else None,
    )
    _check_match(provider, key, session, leaf)
    return provider


def _token_certificate(
    key: _p11.Object,
    on_token: Sequence[tuple[_p11.Object, x509.Certificate]],
    token: _p11.Token,
) -> x509.Certificate:
    key_id, label = _obj_id(key), _obj_label(key)
    by_id = [c for o, c in on_token if key_id is not None and _obj_id(o) == key_id]
    by_label = [c for o, c in on_token if label is not None and _obj_label(o) == label]
    for candidates in (by_id, by_label):
        if candidates:
            return candidates[0]
    raise KeyLoadError(
        f"token '{token.label}' holds no certificate for key {_key_desc(key)} "
        "(same id or label); give one with --cert"
    )


def _check_match(
    provider: Pkcs11KeyProvider,
    key: _p11.PrivateKey,
    session: _p11.Session,
    cert: x509.Certificate,
) -> None:
    """Refuse a certificate that does not carry the token key's public key."""
    p11 = _import_pkcs11()
    cert_key = cert.public_key()
    mismatch = KeyMismatchError(
        f"the certificate ({cert.subject.rfc4514_string()}) does not match the key "
        f"{_key_desc(key)} on token '{provider.token_label}'"
    )
    if provider.scheme is SignatureScheme.RSA_PKCS1V15:
        if not isinstance(cert_key, rsa.RSAPublicKey):
            raise mismatch
        try:
            modulus = int.from_bytes(bytes(key[p11.Attribute.MODULUS]), "big")
        except p11.PKCS11Error:
            modulus = None  # some cards hide it; fall back to a test signature
        if modulus is not None:
            if modulus != cert_key.public_numbers().n:
                raise mismatch
            return
    else:
        if not isinstance(cert_key, ec.EllipticCurvePublicKey):
            raise mismatch
        point = _ec_point_of(key, session)
        if point is not None:
            expected = cert_key.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            # CKA_EC_POINT is a DER OCTET STRING by the spec; some modules store it bare.
            from asn1crypto.core import OctetString

            if point not in (expected, OctetString(expected).dump()):
                raise mismatch
            return
    # No public half readable: prove possession with one signature.
    probe = Digest(HashAlgorithm.SHA256, bytes(32))
    signature = provider.sign_digest(probe)
    try:
        if isinstance(cert_key, rsa.RSAPublicKey):
            cert_key.verify(
                signature, probe.value, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
            )
        elif isinstance(cert_key, ec.EllipticCurvePublicKey):
            cert_key.verify(signature, probe.value, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except InvalidSignature:
        raise mismatch from None


def _ec_point_of(key: _p11.PrivateKey, session: _p11.Session) -> bytes | None:
    """CKA_EC_POINT of the public key object paired with ``key`` (as stored), if any."""
    p11 = _import_pkcs11()
    query: dict[Any, Any] = {p11.Attribute.CLASS: p11.ObjectClass.PUBLIC_KEY}
    key_id, label = _obj_id(key), _obj_label(key)
    if key_id is not None:
        query[p11.Attribute.ID] = key_id
    elif label is not None:
        query[p11.Attribute.LABEL] = label
    else:
        return None
    try:
        pubs = list(session.get_objects(query))
        if len(pubs) != 1:
            return None
        raw = bytes(pubs[0][p11.Attribute.EC_POINT])
    except p11.PKCS11Error:
        return None
    return raw


# --------------------------------------------------------------------------------------------
# Listing (for `dsig tokens list`)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    """One object on a token (key or certificate) and the URI of the private key it goes with."""

    kind: str  # "private" | "public" | "cert"
    label: str | None
    id_hex: str | None
    key_type: str | None  # "RSA" | "EC" | ...
    key_size: int | None
    subject: str | None = None
    issuer: str | None = None
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    uri: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (datetimes as ISO 8601)."""
        data = asdict(self)
        for name in ("not_before", "not_after"):
            if data[name] is not None:
                data[name] = data[name].isoformat()
        return data


@dataclass(frozen=True)
class TokenInfo:
    """A token as seen through a module: slot, token description, flags and visible objects."""

    module: str
    slot_id: int
    slot_description: str
    label: str
    serial: str
    manufacturer: str
    model: str
    flags: tuple[str, ...]
    uri: str
    objects: tuple[ObjectInfo, ...] = ()
    logged_in: bool = False

    @property
    def initialized(self) -> bool:
        """False for blank tokens such as SoftHSM's spare slot."""
        return "TOKEN_INITIALIZED" in self.flags

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        data = asdict(self)
        data["flags"] = list(self.flags)
        data["objects"] = [o.to_dict() for o in self.objects]
        data["initialized"] = self.initialized
        return data


def list_tokens(
    module: str | None = None, *, pin: bytes | None = None, token: str | None = None
) -> list[TokenInfo]:
    """Describe the tokens visible through ``module`` (found as in :func:`find_module`).

    ``token`` limits the listing to tokens with that label. Without ``pin`` only public objects
    (public keys, certificates) are listed. With ``pin``, private keys are listed too: the PIN
    is tried on ONE token only (the one named by ``token``, or the only initialised token), so
    a PIN meant for one card never spends the retry counter of another.

    Raises BackendUnavailableError, TokenNotFoundError (no or several candidate tokens for the
    PIN) and LoginError (wrong or locked PIN).
    """
    path = find_module(module_path=module)
    lib = _load_lib(path)
    p11 = _import_pkcs11()
    try:
        present = _present_tokens(lib)
    except p11.PKCS11Error as e:
        raise TokenNotFoundError(f"cannot list the tokens of {path}: {_describe(e)}") from None
    if token is not None:
        chosen = [t for t in present if t.label.strip() == token]
        if not chosen:
            listing = ", ".join(_token_desc(t) for t in present if t.label.strip()) or "none"
            raise TokenNotFoundError(f"no token labelled '{token}'; tokens present: {listing}")
        present = chosen
    initialised = [t for t in present if t.flags & p11.TokenFlag.TOKEN_INITIALIZED]
    login_slot: int | None = None
    if pin is not None:
        if len(initialised) != 1:
            listing = ", ".join(_token_desc(t) for t in initialised) or "none"
            raise TokenNotFoundError(
                f"a PIN needs exactly one token to log in to, found {len(initialised)} "
                f"({listing}); name it with --token"
            )
        login_slot = initialised[0].slot.slot_id
    infos: list[TokenInfo] = []
    for tok in present:
        objects: tuple[ObjectInfo, ...] = ()
        logged_in = tok.slot.slot_id == login_slot
        if tok.flags & p11.TokenFlag.TOKEN_INITIALIZED:
            try:
                objects = _list_objects(path, lib, tok, pin if logged_in else None)
            except p11.PKCS11Error as e:
                raise TokenError(
                    f"cannot list objects on token '{tok.label}': {_describe(e)}"
                ) from None
        serial = tok.serial.decode("ascii", "replace").strip()
        infos.append(
            TokenInfo(
                module=path,
                slot_id=tok.slot.slot_id,
                slot_description=tok.slot.slot_description.strip(),
                label=tok.label.strip(),
                serial=serial,
                manufacturer=tok.manufacturer_id.strip(),
                model=tok.model.strip(),
                flags=_flag_names(tok.flags),
                uri=str(Pkcs11Uri(token=tok.label, serial=serial or None)),
                objects=objects,
                logged_in=logged_in,
            )
        )
    return infos


def _flag_names(flags: int) -> tuple[str, ...]:
    p11 = _import_pkcs11()
    return tuple(
        f.name for f in p11.TokenFlag if f.name and f.value and (flags & f.value) == f.value
    )


def _list_objects(
    module: str, lib: _Lib, token: _p11.Token, pin: bytes | None
) -> tuple[ObjectInfo, ...]:
    if pin is None:
        with token.open() as session:
            return tuple(_describe_objects(session, token))
    text = _pin_text(pin, token)
    shared = _acquire_session(module, lib, token, lambda: text)
    try:
        return tuple(_describe_objects(shared.session, token))
    finally:
        _release_session(module, token.slot.slot_id)


def _describe_objects(session: _p11.Session, token: _p11.Token) -> Iterator[ObjectInfo]:
    p11 = _import_pkcs11()
    kinds = (
        (p11.ObjectClass.PRIVATE_KEY, "private"),
        (p11.ObjectClass.PUBLIC_KEY, "public"),
        (p11.ObjectClass.CERTIFICATE, "cert"),
    )
    for object_class, kind in kinds:
        try:
            found = list(session.get_objects({p11.Attribute.CLASS: object_class}))
        except p11.PKCS11Error:
            continue
        for obj in sorted(found, key=lambda o: (_obj_label(o) or "", _obj_id(o) or b"")):
            label, key_id = _obj_label(obj), _obj_id(obj)
            uri = _key_uri(token, label, key_id)
            if kind == "cert":
                yield _describe_certificate(obj, label, key_id, uri)
                continue
            key_type, size = _key_type_and_size(obj)
            yield ObjectInfo(kind, label, key_id.hex() if key_id else None, key_type, size, uri=uri)


def _key_type_and_size(obj: _p11.Object) -> tuple[str | None, int | None]:
    p11 = _import_pkcs11()
    try:
        key_type = p11.KeyType(obj[p11.Attribute.KEY_TYPE])
    except (p11.PKCS11Error, ValueError):
        return None, None
    size: int | None = None
    try:
        if key_type == p11.KeyType.RSA:
            size = len(bytes(obj[p11.Attribute.MODULUS]).lstrip(b"\0")) * 8
        elif key_type == p11.KeyType.EC:
            size = _curve_size(bytes(obj[p11.Attribute.EC_PARAMS]))
    except p11.PKCS11Error:
        size = None
    return key_type.name, size


_CURVE_SIZES = {
    "1.2.840.10045.3.1.7": 256,
    "1.3.132.0.34": 384,
    "1.3.132.0.35": 521,
    "1.3.132.0.10": 256,
}


def _curve_size(params: bytes) -> int | None:
    from asn1crypto.core import ObjectIdentifier

    try:
        oid = ObjectIdentifier.load(params).dotted
    except ValueError:
        return None
    return _CURVE_SIZES.get(str(oid))


def _describe_certificate(
    obj: _p11.Object, label: str | None, key_id: bytes | None, uri: str
) -> ObjectInfo:
    p11 = _import_pkcs11()
    id_hex = key_id.hex() if key_id else None
    try:
        cert = x509.load_der_x509_certificate(bytes(obj[p11.Attribute.VALUE]))
    except (p11.PKCS11Error, ValueError):
        return ObjectInfo("cert", label, id_hex, None, None, uri=uri)
    pub = cert.public_key()
    key_type: str | None = None
    size: int | None = None
    if isinstance(pub, rsa.RSAPublicKey):
        key_type, size = "RSA", pub.key_size
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        key_type, size = "EC", pub.key_size
    return ObjectInfo(
        "cert",
        label,
        id_hex,
        key_type,
        size,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        uri=uri,
    )
