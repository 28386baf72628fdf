"""Errors raised by key providers. Every one is operational (CLI exit code 4)."""

from __future__ import annotations


class TokenError(Exception):
    """Root of all key-provider errors; the message is one line meant for the user."""


class UnsupportedAlgorithmError(TokenError):
    """A hash or signature algorithm that this provider or this build cannot use."""


class KeyLoadError(TokenError):
    """A key or certificate file could not be read or parsed."""


class PasswordError(KeyLoadError):
    """The key is encrypted and the password is missing or wrong."""


class KeyMismatchError(TokenError):
    """The certificate does not belong to the private key."""


class BackendUnavailableError(TokenError):
    """An optional backend (e.g. python-pkcs11 or the PKCS#11 module) is not installed."""


class TokenNotFoundError(TokenError):
    """No token matches the key URI."""


class KeyNotFoundError(TokenError):
    """No key matches the key URI."""


class LoginError(TokenError):
    """Login to the token failed (wrong PIN, PIN locked, ...)."""


class MechanismNotSupportedError(TokenError):
    """The token does not support the mechanism needed for this signature."""
