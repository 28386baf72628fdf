"""Cold-start trimming for the ``dsig`` command (not applied when dsig is used as a library).

pydicom imports numpy (pixel handlers) and requests (test-data download) when it is imported;
the CLI never uses either, and together they are most of pydicom's import time and about
18 MiB of resident memory. :func:`defer_modules` puts a placeholder in ``sys.modules`` that
imports the real module on first attribute access, so nothing breaks if one is used after all.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

DEFERRED = ("numpy", "requests")


class _Deferred(types.ModuleType):
    """Stands in for a module until an attribute is needed, then imports it for real."""

    def __getattr__(self, attr: str) -> Any:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        self.__dict__.update(real.__dict__)
        return getattr(real, attr)


def defer_modules(names: tuple[str, ...] = DEFERRED) -> None:
    """Install placeholders for installed modules that are not imported yet."""
    for name in names:
        if name in sys.modules:
            continue
        try:
            if importlib.util.find_spec(name) is None:
                continue
        except (ImportError, ValueError):
            continue
        placeholder = _Deferred(name)
        placeholder.__spec__ = None
        sys.modules[name] = placeholder
