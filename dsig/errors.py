"""Operational errors of the DICOM layer (CLI exit code 4). A bad signature is not an error."""

from __future__ import annotations

from tokens.faults import BadEnvironmentError as BadEnvironmentError
from tokens.faults import BadInputError as BadInputError
from tokens.faults import BadKeyError as BadKeyError
from tokens.faults import BadPolicyError as BadPolicyError
from tokens.faults import ToolkitError as ToolkitError


class DsigError(ToolkitError):
    """Root of dsig's errors; the message is one line meant for the user."""


class DicomFormatError(DsigError, BadInputError):
    """The input is not DICOM, is truncated, or holds malformed signature attributes."""


class LocationError(DsigError, BadInputError):
    """An item location string does not parse or does not point to an item."""


class TagError(DsigError, BadInputError):
    """A tag given by the user is unknown, absent or not signable."""


class SigningError(DsigError, BadInputError):
    """A signature cannot be created with the given options."""


class SignatureNotFoundError(DsigError, BadInputError):
    """No signature with the given UID, or no signature at all to remove."""


class OutputError(DsigError, BadEnvironmentError):
    """The output cannot be written (exists, same as input, encoding impossible)."""


class OptionsError(DsigError, BadInputError, ValueError):
    """Options that contradict each other or are out of range (the caller's mistake).

    Also a ValueError, which is what such options raised before."""


class InputError(DsigError, BadInputError):
    """An input path cannot be used as given (e.g. a directory without recursion)."""
