"""What a token and one of its keys offer, and whether dsig can sign with them
(``dsig tokens probe``): mechanisms, key type/size/curve, login flags, certificate, and each
MAC algorithm marked usable or not with the reason."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from cryptography import x509

from tokens.api import SecretPrompt, SignatureScheme
from tokens.digest import HashAlgorithm
from tokens.p11.listing import _flag_names, curve_of
from tokens.p11.modules import _import_pkcs11
from tokens.p11.provider import Pkcs11KeyProvider, open_pkcs11_provider

#: Mechanisms worth naming in a probe: the raw ones dsig uses and the ones it deliberately
#: does not (hash-on-token, PSS), so a user sees why a card works or not.
RELEVANT_MECHANISMS = (
    "RSA_PKCS",
    "RSA_PKCS_PSS",
    "SHA256_RSA_PKCS",
    "SHA384_RSA_PKCS",
    "SHA512_RSA_PKCS",
    "SHA256_RSA_PKCS_PSS",
    "ECDSA",
    "ECDSA_SHA256",
    "ECDSA_SHA384",
    "ECDSA_SHA512",
)

#: Why PSS is never used, even where a key offers it.
PSS_NOTE = (
    "RSASSA-PSS is not used: DICOM Signature (0400,0120) carries no algorithm parameters and "
    "the RSA profiles of PS3.15 use RSASSA-PKCS1-v1_5, the only RSA form dcmsign verifies"
)


@dataclass(frozen=True)
class MacSupport:
    """Whether one DICOM MAC algorithm can be used with this key, and why (not)."""

    algorithm: str
    usable: bool
    reason: str
    #: The option keyword (and value) that would make it usable; front ends add their flag.
    option: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class ProbeReport:
    """A token key as dsig sees it."""

    uri: str
    module: str
    token_label: str
    token_serial: str
    token_model: str
    token_flags: tuple[str, ...]
    key_label: str | None
    key_id_hex: str | None
    key_type: str
    key_size: int | None
    curve: str | None
    always_authenticate: bool
    mechanisms: tuple[str, ...]  # every mechanism the slot lists
    mechanism_used: str  # the raw one dsig signs with
    certificate_subject: str
    certificate_issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...]
    mac: tuple[MacSupport, ...]
    can_sign: bool
    problems: tuple[str, ...]
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (datetimes as ISO 8601)."""
        data = asdict(self)
        data["not_before"] = self.not_before.isoformat()
        data["not_after"] = self.not_after.isoformat()
        for name in ("token_flags", "mechanisms", "key_usage", "extended_key_usage"):
            data[name] = list(data[name])
        data["problems"] = list(self.problems)
        data["notes"] = list(self.notes)
        for mac in data["mac"]:  # the option hint is for front ends, not the JSON contract
            del mac["option"], mac["value"]
        return data


def probe_key(
    uri: str,
    *,
    pin: bytes | None = None,
    secrets: SecretPrompt | None = None,
    notice: Callable[[str], None] | None = None,
    allow_pin_in_uri: bool = False,
    now: dt.datetime | None = None,
) -> ProbeReport:
    """Open the key ``uri`` names (logging in as signing would) and describe it.

    Raises the errors of :func:`~tokens.p11.provider.open_pkcs11_provider`.
    """
    provider = open_pkcs11_provider(
        uri, pin=pin, secrets=secrets, notice=notice, allow_pin_in_uri=allow_pin_in_uri
    )
    try:
        return _describe(provider, now or dt.datetime.now(dt.UTC))
    finally:
        provider.close()


def _describe(provider: Pkcs11KeyProvider, now: dt.datetime) -> ProbeReport:
    p11 = _import_pkcs11()
    token, key = provider.pkcs11_token, provider.pkcs11_key
    problems: list[str] = []
    notes: list[str] = []
    try:
        offered = tuple(sorted(m.name for m in token.slot.get_mechanisms() if m.name))
    except p11.PKCS11Error:
        offered = ()
        notes.append("the module cannot list its mechanisms; signing will tell")
    rsa = provider.scheme is SignatureScheme.RSA_PKCS1V15
    used = "RSA_PKCS" if rsa else "ECDSA"
    if offered and used not in offered:
        problems.append(
            f"the token does not offer CKM_{used}; dsig hashes on the host and needs the raw "
            "mechanism (hash-on-token mechanisms cannot sign a host-computed digest)"
        )
    key_size: int | None = None
    curve: str | None = None
    if rsa:
        try:
            key_size = len(bytes(key[p11.Attribute.MODULUS]).lstrip(b"\0")) * 8
        except p11.PKCS11Error:
            key_size = provider.certificate.public_key().key_size  # type: ignore[union-attr]
        if "RSA_PKCS_PSS" in offered:
            notes.append(PSS_NOTE)
    else:
        try:
            found = curve_of(bytes(key[p11.Attribute.EC_PARAMS]))
        except p11.PKCS11Error:
            found = None
        if found is not None:
            curve, key_size = found
        notes.append("ECDSA is outside PS3.15's profiles; DCMTK writes and verifies it (DER)")
    try:
        if not key[p11.Attribute.SIGN]:
            problems.append("the key's CKA_SIGN is false: the token will refuse to sign")
    except p11.PKCS11Error:
        pass  # unreadable attribute: the token decides at signing time
    cert = provider.certificate
    key_usage, ext_usage = _usages(cert)
    if key_usage and not {"digital_signature", "content_commitment"} & set(key_usage):
        problems.append(
            "the certificate's key usage allows neither digitalSignature nor nonRepudiation"
        )
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        start, end = cert.not_valid_before_utc.date(), cert.not_valid_after_utc.date()
        problems.append(f"the certificate is not valid now (valid {start} to {end})")
    mac = tuple(_mac_support(alg, rsa, key_size, used, offered) for alg in HashAlgorithm)
    label = provider.key_label
    return ProbeReport(
        uri=str(_key_uri(provider)),
        module=provider.module,
        token_label=token.label.strip(),
        token_serial=token.serial.decode("ascii", "replace").strip(),
        token_model=token.model.strip(),
        token_flags=_flag_names(token.flags),
        key_label=label,
        key_id_hex=provider.key_id.hex() if provider.key_id else None,
        key_type="RSA" if rsa else "EC",
        key_size=key_size,
        curve=curve,
        always_authenticate=provider.always_authenticate,
        mechanisms=offered,
        mechanism_used=f"CKM_{used}",
        certificate_subject=cert.subject.rfc4514_string(),
        certificate_issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_usage=key_usage,
        extended_key_usage=ext_usage,
        mac=mac,
        can_sign=not problems and any(m.usable for m in mac),
        problems=tuple(problems),
        notes=tuple(notes),
    )


def _key_uri(provider: Pkcs11KeyProvider) -> str:
    from tokens.p11.uri import _key_uri as key_uri

    return key_uri(provider.pkcs11_token, provider.key_label, provider.key_id)


def _mac_support(
    alg: HashAlgorithm, rsa: bool, key_size: int | None, used: str, offered: tuple[str, ...]
) -> MacSupport:
    if offered and used not in offered:
        return MacSupport(alg.value, False, f"no CKM_{used} on the token")
    if alg.weak:
        return MacSupport(
            alg.value,
            False,
            f"weak: refused unless {alg.value.lower()} is allowed as weak",
            option="allow_weak",
            value=alg.value.lower(),
        )
    if rsa:
        if key_size is not None and key_size < 2048:
            return MacSupport(
                alg.value,
                False,
                f"RSA-{key_size} is weak: refused unless rsa{key_size} is allowed as weak",
                option="allow_weak",
                value=f"rsa{key_size}",
            )
        need = len(alg.digest_info_prefix) + alg.digest_size + 11
        if key_size is not None and need > key_size // 8:
            return MacSupport(
                alg.value, False, f"a {alg.value} DigestInfo does not fit RSA-{key_size}"
            )
        return MacSupport(alg.value, True, "CKM_RSA_PKCS over a DigestInfo built on the host")
    return MacSupport(
        alg.value, True, "CKM_ECDSA over the host digest, r||s DER-encoded on the host"
    )


def _usages(cert: x509.Certificate) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        names = (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
        )
        key_usage = tuple(n for n in names if getattr(ku, n))
    except x509.ExtensionNotFound:
        key_usage = ()
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        ext = tuple(getattr(o, "_name", None) or o.dotted_string for o in eku)
    except x509.ExtensionNotFound:
        ext = ()
    return key_usage, ext


__all__ = ["PSS_NOTE", "MacSupport", "ProbeReport", "probe_key"]
