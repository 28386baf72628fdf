"""The one root of every error that tokens, pki and dsig raise, and who is at fault.

It lives here because tokens is the bottom layer: pki and dsig already import tokens, and
this module imports nothing, so the shared root adds no dependency to any layer. Each
concrete error derives from its layer's root (``TokenError``, ``PkiError``, ``DsigError``) and
from one fault below, so a caller may catch by layer, by fault, or everything at once.
"""

from __future__ import annotations


class ToolkitError(Exception):
    """Root of every error of tokens, pki and dsig; the message is one line for the user.

    ``option`` names the caller's choice (a keyword, e.g. ``"force"``) that would change the
    outcome, with ``value`` the value to give it: messages never name CLI flags, a front end
    adds its own spelling of the option from these (they survive pickling in ``__dict__``).
    """

    def __init__(self, *args: object, option: str | None = None, value: str | None = None):
        super().__init__(*args)
        self.option = option
        self.value = value


class BadInputError(ToolkitError):
    """The caller's data or arguments: a file that is not DICOM, options that contradict."""


class BadKeyError(ToolkitError):
    """The signing key, its certificate, or the password/PIN that opens it."""


class BadPolicyError(ToolkitError):
    """The trust policy or its material: anchors, CRLs, rules that cannot be used."""


class BadEnvironmentError(ToolkitError):
    """The machine or the network: a missing backend, a server down, a disk that refuses."""
