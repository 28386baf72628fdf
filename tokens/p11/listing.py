"""Describe tokens, keys and certificates (for ``dsig tokens list``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tokens.errors import (
    BackendUnavailableError,
    TokenError,
    TokenNotFoundError,
)
from tokens.p11.modules import _describe, _import_pkcs11, candidate_modules, find_module
from tokens.p11.select import SkippedModule, _obj_id, _obj_label, _token_desc, open_modules
from tokens.p11.session import _acquire_session, _pin_text, _release_session
from tokens.p11.uri import Pkcs11Uri, _key_uri

if TYPE_CHECKING:
    import pkcs11 as _p11
    from pkcs11._pkcs11 import lib as _Lib  # noqa: N812


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


@dataclass(frozen=True)
class TokenSurvey:
    """What every module shows: its tokens, and the modules that could not be used."""

    tokens: list[TokenInfo]
    skipped: list[SkippedModule]
    modules: list[str] = field(default_factory=list)  # every module that loaded

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping: ``tokens`` and ``skipped_modules`` (``module``, ``reason``)."""
        return {
            "modules": list(self.modules),
            "tokens": [t.to_dict() for t in self.tokens],
            "skipped_modules": [{"module": m.module, "reason": m.reason} for m in self.skipped],
        }


def list_tokens(
    module: str | None = None, *, pin: bytes | None = None, token: str | None = None
) -> list[TokenInfo]:
    """The tokens of :func:`survey_tokens` (modules that fail to load are left out)."""
    return survey_tokens(module, pin=pin, token=token).tokens


def survey_tokens(
    module: str | None = None, *, pin: bytes | None = None, token: str | None = None
) -> TokenSurvey:
    """Describe the tokens visible through ``module``, or through every candidate module
    (``$DSIG_PKCS11_MODULE``, p11-kit registrations, install paths) when it is None; a
    candidate that fails to load or initialise is reported in ``skipped``, never an error.

    ``token`` limits the listing to tokens with that label. Without ``pin`` only public objects
    (public keys, certificates) are listed. With ``pin``, private keys are listed too: the PIN
    is tried on ONE token only (the one named by ``token``, or the only initialised token), so
    a PIN meant for one card never spends the retry counter of another.

    Raises BackendUnavailableError (a named module that cannot load, or no module at all),
    TokenNotFoundError (no or several candidate tokens for the PIN) and LoginError.
    """
    p11 = _import_pkcs11()
    if module is not None:
        path = find_module(module_path=module)
        opened, skipped = open_modules([path])
        if skipped:
            raise BackendUnavailableError(f"cannot use PKCS#11 module {path}: {skipped[0].reason}")
    else:
        opened, skipped = open_modules([c.path for c in candidate_modules()])
    present = [(path, lib, t) for path, lib, tokens in opened for t in tokens]
    if token is not None:
        chosen = [e for e in present if e[2].label.strip() == token]
        if not chosen:
            listing = ", ".join(_token_desc(t) for _, _, t in present if t.label.strip()) or "none"
            raise TokenNotFoundError(f"no token labelled '{token}'; tokens present: {listing}")
        present = chosen
    initialised = [e for e in present if e[2].flags & p11.TokenFlag.TOKEN_INITIALIZED]
    login: tuple[str, int] | None = None
    if pin is not None:
        if len(initialised) != 1:
            listing = ", ".join(_token_desc(t) for _, _, t in initialised) or "none"
            raise TokenNotFoundError(
                f"a PIN needs exactly one token to log in to, found {len(initialised)} "
                f"({listing}); name the token",
                option="token",
            )
        login = (initialised[0][0], initialised[0][2].slot.slot_id)
    infos: list[TokenInfo] = []
    for path, lib, tok in present:
        objects: tuple[ObjectInfo, ...] = ()
        logged_in = (path, tok.slot.slot_id) == login
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
    return TokenSurvey(infos, skipped, [path for path, _lib, _tokens in opened])


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


#: Named curves by OID: (name, field size in bits).
CURVES: dict[str, tuple[str, int]] = {
    "1.2.840.10045.3.1.7": ("secp256r1", 256),
    "1.3.132.0.34": ("secp384r1", 384),
    "1.3.132.0.35": ("secp521r1", 521),
    "1.3.132.0.10": ("secp256k1", 256),
    "1.3.36.3.3.2.8.1.1.7": ("brainpoolP256r1", 256),
    "1.3.36.3.3.2.8.1.1.11": ("brainpoolP384r1", 384),
    "1.3.36.3.3.2.8.1.1.13": ("brainpoolP512r1", 512),
}


def curve_of(params: bytes) -> tuple[str, int] | None:
    """(name, size) of a DER CKA_EC_PARAMS naming a known curve."""
    from asn1crypto.core import ObjectIdentifier

    try:
        oid = ObjectIdentifier.load(params).dotted
    except ValueError:
        return None
    return CURVES.get(str(oid))


def _curve_size(params: bytes) -> int | None:
    curve = curve_of(params)
    return curve[1] if curve is not None else None


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
