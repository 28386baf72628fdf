"""Key providers: sign digests with a key file or a PKCS#11 token.

Only :mod:`tokens.pkcs11` imports python-pkcs11, and only when a ``pkcs11:`` key is opened.
"""

from tokens.api import KeyProvider, SecretPrompt, SignatureScheme
from tokens.digest import Digest, HashAlgorithm
from tokens.errors import (
    BackendUnavailableError,
    KeyLoadError,
    KeyMismatchError,
    KeyNotFoundError,
    LoginError,
    MechanismNotSupportedError,
    PasswordError,
    TokenError,
    TokenNotFoundError,
    UnsupportedAlgorithmError,
)
from tokens.faults import (
    BadEnvironmentError,
    BadInputError,
    BadKeyError,
    BadPolicyError,
    ToolkitError,
)
from tokens.registry import open_key_provider

__all__ = [
    "BackendUnavailableError",
    "BadEnvironmentError",
    "BadInputError",
    "BadKeyError",
    "BadPolicyError",
    "Digest",
    "HashAlgorithm",
    "KeyLoadError",
    "KeyMismatchError",
    "KeyNotFoundError",
    "KeyProvider",
    "LoginError",
    "MechanismNotSupportedError",
    "PasswordError",
    "SecretPrompt",
    "SignatureScheme",
    "TokenError",
    "TokenNotFoundError",
    "ToolkitError",
    "UnsupportedAlgorithmError",
    "open_key_provider",
]
