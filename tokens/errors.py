"""Errors raised by key providers. Every one is operational (CLI exit code 4)."""

from __future__ import annotations

from tokens.faults import BadEnvironmentError, BadKeyError, ToolkitError


class TokenError(ToolkitError):
    """Root of all key-provider errors; the message is one line meant for the user."""


class UnsupportedAlgorithmError(TokenError, BadKeyError):
    """A hash or signature algorithm that this provider or this build cannot use."""


class KeyLoadError(TokenError, BadKeyError):
    """A key or certificate file could not be read or parsed."""


class PasswordError(KeyLoadError):
    """The key is encrypted and the password is missing or wrong."""


class KeyMismatchError(TokenError, BadKeyError):
    """The certificate does not belong to the private key."""


class BackendUnavailableError(TokenError, BadEnvironmentError):
    """An optional backend (e.g. python-pkcs11 or the PKCS#11 module) is not installed."""


class TokenNotFoundError(TokenError, BadKeyError):
    """No token matches the key URI."""


class KeyNotFoundError(TokenError, BadKeyError):
    """No key matches the key URI."""


class LoginError(TokenError, BadKeyError):
    """Login to the token failed (wrong PIN, PIN locked, ...)."""


class MechanismNotSupportedError(TokenError, BadKeyError):
    """The token does not support the mechanism needed for this signature."""
