"""Errors raised by the trust module. All are operational (CLI exit code 4)."""

from __future__ import annotations

from tokens.faults import BadPolicyError, ToolkitError


class PkiError(ToolkitError):
    """Root of all trust-module errors; the message is one line meant for the user."""


class TrustConfigError(PkiError, BadPolicyError):
    """A trust policy could not be built: bad path, unreadable file, invalid option value."""


class CertificateLoadError(TrustConfigError):
    """A certificate, CRL or OCSP file could not be read or parsed."""
