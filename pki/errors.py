"""Errors raised by the trust module. All are operational (CLI exit code 4)."""

from __future__ import annotations


class PkiError(Exception):
    """Root of all trust-module errors; the message is one line meant for the user."""


class TrustConfigError(PkiError):
    """A trust policy could not be built: bad path, unreadable file, invalid option value."""


class CertificateLoadError(TrustConfigError):
    """A certificate, CRL or OCSP file could not be read or parsed."""
