"""Token and key selection by URI attributes; certificates and their issuer chain on the token."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from tokens.errors import (
    BackendUnavailableError,
    KeyNotFoundError,
    TokenNotFoundError,
)
from tokens.p11.modules import _describe, _import_pkcs11, _load_lib
from tokens.p11.uri import Pkcs11Uri

if TYPE_CHECKING:
    import pkcs11 as _p11
    from pkcs11._pkcs11 import lib as _Lib  # noqa: N812


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


@dataclass(frozen=True)
class SkippedModule:
    """A module that could not be used (not loadable, C_Initialize or slot listing failed)."""

    module: str
    reason: str

    def __str__(self) -> str:
        return f"{Path(self.module).name} ({self.reason})"


@dataclass(frozen=True)
class FoundToken:
    """A token, the module it was seen through, and that module's loaded library."""

    module: str
    lib: _Lib
    token: _p11.Token


def open_modules(
    modules: Sequence[str], notice: Callable[[str], None] | None = None
) -> tuple[list[tuple[str, _Lib, list[_p11.Token]]], list[SkippedModule]]:
    """Load each module and list its present tokens; a module that fails is skipped with a
    note (OpenSC without a reader, openCryptoki without pkcsslotd), never an error."""
    p11 = _import_pkcs11()
    opened: list[tuple[str, _Lib, list[_p11.Token]]] = []
    skipped: list[SkippedModule] = []
    for module in modules:
        try:
            lib = _load_lib(module)
            present = _present_tokens(lib)
        except (BackendUnavailableError, p11.PKCS11Error) as e:
            reason = str(e) if isinstance(e, BackendUnavailableError) else _describe(e)
            skipped.append(
                SkippedModule(module, reason.removeprefix(f"cannot load PKCS#11 module {module}: "))
            )
            if notice is not None:
                notice(f"note: skipped PKCS#11 module {skipped[-1]}")
            continue
        opened.append((module, lib, present))
    return opened, skipped


def _select_token(
    uri: Pkcs11Uri, modules: Sequence[str], notice: Callable[[str], None] | None = None
) -> FoundToken:
    """The one initialised token matching ``uri`` across ``modules``.

    When several tokens match and the URI names an object, tokens whose public objects
    (certificate, public key) show that label/id are preferred: no login is spent to decide.
    """
    p11 = _import_pkcs11()
    opened, skipped = open_modules(modules, notice)
    seen: list[str] = []
    matching: list[FoundToken] = []
    for module, lib, present in opened:
        # Uninitialised tokens (SoftHSM's spare slot) hold no keys; never pick one implicitly.
        usable = [t for t in present if t.flags & p11.TokenFlag.TOKEN_INITIALIZED]
        names = ", ".join(_token_desc(t) for t in usable) or "none"
        seen.append(f"{Path(module).name}: {names}")
        matching += [FoundToken(module, lib, t) for t in usable if _matches_token(uri, lib, t)]
    if len(matching) > 1 and (uri.object is not None or uri.id is not None):
        holding = [f for f in matching if _shows_object(uri, f.token)]
        matching = holding or matching
    if len(matching) == 1:
        return matching[0]
    where = "; ".join(seen) or "no module could be used"
    if skipped:
        where += "; skipped " + ", ".join(map(str, skipped))
    if not matching:
        raise TokenNotFoundError(f"no token matches {_token_criteria(uri)}; tokens seen: {where}")
    listing = ", ".join(f"{_token_desc(f.token)} in {Path(f.module).name}" for f in matching)
    raise TokenNotFoundError(
        f"several tokens match {_token_criteria(uri)}: {listing}; add token= or serial= "
        "(or module-name=) to the URI"
    )


def _shows_object(uri: Pkcs11Uri, token: _p11.Token) -> bool:
    """True when a public object with the URI's label/id is visible without login."""
    p11 = _import_pkcs11()
    try:
        with token.open() as session:
            return any(True for _ in session.get_objects(object_query(uri)))
    except p11.PKCS11Error:
        return False


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


def _attribute(obj: _p11.Object, name: str) -> Any:
    """The object's attribute ``name`` (a ``pkcs11.Attribute`` member), None when the token
    does not give it."""
    p11 = _import_pkcs11()
    try:
        return obj[p11.Attribute[name]]
    except p11.PKCS11Error:
        return None


def _obj_label(obj: _p11.Object) -> str | None:
    value = _attribute(obj, "LABEL")
    return value if isinstance(value, str) and value else None


def _obj_id(obj: _p11.Object) -> bytes | None:
    value = _attribute(obj, "ID")
    return bytes(value) if value else None


def object_query(uri: Pkcs11Uri, object_class: str | None = None) -> dict[Any, Any]:
    """The search template for the objects that ``uri``'s object (label) and id name, of
    ``object_class`` (a ``pkcs11.ObjectClass`` member) if given."""
    p11 = _import_pkcs11()
    query: dict[Any, Any] = {}
    if object_class is not None:
        query[p11.Attribute.CLASS] = p11.ObjectClass[object_class]
    if uri.object is not None:
        query[p11.Attribute.LABEL] = uri.object
    if uri.id is not None:
        query[p11.Attribute.ID] = uri.id
    return query


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
    try:
        found = list(session.get_objects(object_query(uri, "PRIVATE_KEY")))
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
