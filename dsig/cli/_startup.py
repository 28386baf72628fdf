"""Cold-start trimming for the ``dsig`` command (not applied when dsig is used as a library).

pydicom imports numpy (pixel handlers), and requests and urllib.request (test-data download),
when it is imported; the CLI never uses them, and together they are most of pydicom's import
time and about 18 MiB of resident memory (urllib.request alone brings http.client, email and
ssl: about 15 ms of every cold start).

- numpy is an optional dependency of pydicom, needed only for pixel arrays, which dsig never
  decodes: :func:`defer_modules` hides it, so pydicom runs exactly as it does where numpy is
  not installed (``config.have_numpy`` False; otherwise its writer's ``isinstance(value,
  numpy.ndarray)`` checks would load numpy on every sign).
- requests and urllib.request get a placeholder in ``sys.modules`` (and, for a submodule, as
  its package's attribute) that imports the real module on first attribute access, so nothing
  breaks if it is used after all (pki's online fetches, for one).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

DEFERRED = ("requests", "urllib.request")
HIDDEN = ("numpy",)


class _Deferred(types.ModuleType):
    """Stands in for a module until an attribute is needed, then imports it for real."""

    def __getattr__(self, attr: str) -> Any:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        self.__dict__.update(real.__dict__)
        return getattr(real, attr)


def defer_modules(names: tuple[str, ...] = DEFERRED, hidden: tuple[str, ...] = HIDDEN) -> None:
    """Install placeholders for installed modules that are not imported yet; make ``hidden``
    ones unimportable (ImportError, as if not installed)."""
    for name in hidden:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]
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
        package, _, attr = name.rpartition(".")
        if package:  # `import a.b` then `a.b.f()` finds b as an attribute of a
            setattr(sys.modules[package], attr, placeholder)


def quiet_pydicom() -> None:
    """The dsig command judges malformed values itself: pydicom's read-time value warnings
    would only add noise to its output. Set for the command's own process, never by the library."""
    from pydicom import config

    config.settings.reading_validation_mode = config.IGNORE
