"""The PKCS#11 key provider: open a key by URI and sign host-computed digests on the token."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from tokens.api import CertifiedKey, SecretPrompt, SignatureScheme
from tokens.digest import Digest, HashAlgorithm
from tokens.errors import (
    BackendUnavailableError,
    KeyLoadError,
    KeyMismatchError,
    KeyNotFoundError,
    LoginError,
    MechanismNotSupportedError,
    TokenError,
    UnsupportedAlgorithmError,
)
from tokens.p11.modules import _describe, _import_pkcs11, candidate_modules, find_module
from tokens.p11.select import (
    FoundToken,
    _certificates_on_token,
    _issuer_chain,
    _key_desc,
    _obj_id,
    _obj_label,
    _select_key,
    _select_token,
    object_query,
    open_modules,
)
from tokens.p11.session import PinSupplier, _acquire_session, _release_session, _Shared
from tokens.p11.uri import InvalidPkcs11UriError, Pkcs11Uri, parse_pkcs11_uri

if TYPE_CHECKING:
    import pkcs11 as _p11


class Pkcs11KeyProvider(CertifiedKey):
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

    @property
    def scheme(self) -> SignatureScheme:
        """RSA PKCS#1 v1.5 for RSA keys, DER ECDSA for EC keys."""
        return self._scheme

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._session is None

    @property
    def module(self) -> str:
        """Path of the PKCS#11 module the key was found through."""
        return self._module

    @property
    def always_authenticate(self) -> bool:
        """True for a CKA_ALWAYS_AUTHENTICATE key (a context-specific login per signature)."""
        return self._always_authenticate

    @property
    def pkcs11_token(self) -> _p11.Token:
        """The python-pkcs11 token object (for inspection such as ``dsig tokens probe``)."""
        return self._token

    @property
    def pkcs11_key(self) -> _p11.PrivateKey:
        """The python-pkcs11 private key object (for inspection; sign with sign_digest)."""
        return self._key

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
    notice: Callable[[str], None] | None = None,
    allow_pin_in_uri: bool = False,
) -> Pkcs11KeyProvider:
    """Open the private key named by an RFC 7512 ``pkcs11:`` URI.

    The module is the URI's ``module-path``/``module-name`` when given; otherwise the token is
    searched in every module of :func:`~tokens.p11.modules.candidate_modules`
    (``$DSIG_PKCS11_MODULE``, p11-kit registrations, install paths), and a module that fails
    to load is skipped with a note to ``notice``. The PIN is ``pin``, else the URI's
    ``pin-source`` (a file only you can read) or ``pin-value`` (refused unless
    ``allow_pin_in_uri``: a command line is visible to every local user), else the reader's
    PIN pad (protected authentication path), else ``secrets("PIN for token 'X'")``, asked
    again after a wrong PIN up to :data:`~tokens.p11.session.MAX_PIN_PROMPTS` times while the
    token is not locked. The certificate is ``cert`` when given, else the token's certificate
    with the key's CKA_ID (or label); it must match the key.

    Raises the errors of :mod:`tokens.errors` (BackendUnavailableError, TokenNotFoundError,
    LoginError, KeyNotFoundError, KeyMismatchError, MechanismNotSupportedError, ...).
    """
    parsed = parse_pkcs11_uri(uri)
    if parsed.pin_value is not None and not allow_pin_in_uri:
        raise InvalidPkcs11UriError(
            "the key URI holds pin-value=, which puts the PIN on a command line every local "
            "user can read (ps); use pin-source= or a PIN file/variable, or allow it explicitly",
            option="allow_pin_in_uri",
        )
    found = find_token(parsed, notice=notice)
    module, lib, token = found.module, found.lib, found.token
    p11 = _import_pkcs11()
    pins = PinSupplier(parsed, token, pin, secrets, notice)
    try:
        shared = _acquire_session(module, lib, token, pins, pins.retry)
    except p11.PKCS11Error as e:
        raise LoginError(
            f"cannot open a session on token '{token.label}': {_describe(e)}"
        ) from None
    try:
        return _build_provider(parsed, module, token, shared, cert, pins)
    except BaseException as e:
        _release_session(module, token.slot.slot_id)
        if isinstance(e, p11.PKCS11Error):
            # Anything python-pkcs11 raises that we did not map: one line, no traceback.
            raise TokenError(f"token '{token.label}': {_describe(e)}") from None
        raise


def token_certificate(uri: str) -> x509.Certificate | None:
    """The certificate of the key ``uri`` names, read WITHOUT logging in (certificates are
    public objects): to show the signer before the PIN is asked. None when the token shows no
    single certificate with the URI's object/id."""
    parsed = parse_pkcs11_uri(uri)
    found = find_token(parsed)
    p11 = _import_pkcs11()
    query = object_query(parsed, "CERTIFICATE")
    try:
        with found.token.open() as session:
            values = [bytes(o[p11.Attribute.VALUE]) for o in session.get_objects(query)]
    except p11.PKCS11Error:
        return None
    if len(values) != 1:
        return None
    try:
        return x509.load_der_x509_certificate(values[0])
    except ValueError:
        return None


def find_token(parsed: Pkcs11Uri, *, notice: Callable[[str], None] | None = None) -> FoundToken:
    """The token a parsed URI names, searched in the URI's module or in every candidate."""
    if parsed.module_path or parsed.module_name:
        module = find_module(module_path=parsed.module_path, module_name=parsed.module_name)
        # The user named this module: it failing to load is the error, not a note.
        _opened, skipped = open_modules([module])
        if skipped:
            raise BackendUnavailableError(
                f"cannot load PKCS#11 module {module}: {skipped[0].reason}"
            )
        return _select_token(parsed, [module], notice)
    return _select_token(parsed, [c.path for c in candidate_modules()], notice)


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
        from tokens.certificates import load_certificate_file

        given = load_certificate_file(cert_path)
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
        "(same id or label); give one",
        option="cert",
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
