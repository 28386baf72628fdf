"""PKCS#11 key provider: sign digests with a smartcard, USB token or HSM.

The public face of :mod:`tokens.p11`. python-pkcs11 (``pkcs11``) is imported lazily: parsing a
``pkcs11:`` URI (RFC 7512) or finding the module works without it.

Signing always hashes on the host and uses the token's raw mechanisms, which every card offers:

* RSA: ``CKM_RSA_PKCS`` over the DER DigestInfo (any hash, RIPEMD-160 included);
* EC: ``CKM_ECDSA`` over the digest, then the raw ``r||s`` is DER-encoded.

python-pkcs11's default mechanisms (SHA-512 based) are never used.
"""

from __future__ import annotations

from tokens.p11.listing import ObjectInfo, TokenInfo, TokenSurvey, list_tokens, survey_tokens
from tokens.p11.modules import (
    DEFAULT_P11KIT_DIRS,
    ENV_MODULE,
    ModuleCandidate,
    candidate_modules,
    find_module,
)
from tokens.p11.probe import RELEVANT_MECHANISMS, ProbeReport, probe_key
from tokens.p11.provider import (
    Pkcs11KeyProvider,
    find_token,
    open_pkcs11_provider,
    token_certificate,
)
from tokens.p11.select import SkippedModule
from tokens.p11.session import MAX_PIN_PROMPTS, read_pin_source
from tokens.p11.uri import InvalidPkcs11UriError, Pkcs11Uri, parse_pkcs11_uri

__all__ = [
    "DEFAULT_P11KIT_DIRS",
    "ENV_MODULE",
    "MAX_PIN_PROMPTS",
    "RELEVANT_MECHANISMS",
    "InvalidPkcs11UriError",
    "ModuleCandidate",
    "ObjectInfo",
    "Pkcs11KeyProvider",
    "Pkcs11Uri",
    "ProbeReport",
    "SkippedModule",
    "TokenInfo",
    "TokenSurvey",
    "candidate_modules",
    "find_module",
    "find_token",
    "list_tokens",
    "open_pkcs11_provider",
    "parse_pkcs11_uri",
    "probe_key",
    "read_pin_source",
    "survey_tokens",
    "token_certificate",
]
