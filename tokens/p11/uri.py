"""RFC 7512 ``pkcs11:`` URIs: parse, print (PIN redacted), and the URI of a key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, unquote_to_bytes

from tokens.errors import (
    TokenError,
)
from tokens.faults import BadInputError

if TYPE_CHECKING:
    import pkcs11 as _p11


# --------------------------------------------------------------------------------------------
# RFC 7512 URIs
# --------------------------------------------------------------------------------------------


class InvalidPkcs11UriError(TokenError, BadInputError):
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
