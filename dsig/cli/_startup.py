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
import os
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


def is_process_entry(entry: object) -> bool:
    """Whether ``entry`` is the program itself (the console script or ``python -m dsig``),
    not a function some host process (a test runner, an application) called."""
    return getattr(sys.modules.get("__main__"), "main", None) is entry


def end_quickly(code: object) -> None:
    """End the process now with exit status ``code``, after the atexit handlers, without the
    interpreter's teardown: freeing every module and object of pydicom, cryptography and typer
    one by one costs about 7 % of a one-file ``dsig verify`` (its outputs are written and
    closed by then, stdout flushed). Returns, doing nothing, whenever a normal exit could do
    more: another thread still runs (it would be joined), a tracer or profiler is active
    (coverage and cProfile write their data after the program), or the code is no number."""
    import atexit

    from dsig.cli._stdio import StdoutFailure

    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)  # CPython's, as its exit runs them
    threading = sys.modules.get("threading")
    status = 0 if code is None else code
    if (
        run_exitfuncs is None
        or not isinstance(status, int)
        or sys.gettrace() is not None
        or sys.getprofile() is not None
        or (threading is not None and threading.active_count() > 1)
    ):
        return
    run_exitfuncs()  # and clears them: nothing can run twice
    try:
        sys.stdout.flush()  # what the handlers printed
        sys.stderr.flush()
    except (OSError, ValueError, StdoutFailure):
        os._exit(120)  # the interpreter's status when its final flush fails
    os._exit(status)


#: At most this many arguments after ``verify``: a run of a few files, whatever they are.
_SHORT_RUN_ARGS = 12


def pause_gc_for_a_few_files(argv: list[str]) -> None:
    """No cyclic garbage collection for ``dsig verify`` of a few files (what a per-file hook
    runs): the collector would only walk the objects the imports create, about 3 % of such a
    run; a few files' cyclic garbage (if any) lives until the process ends a moment later.
    Left on for anything that may be many files: --recursive (verify walks a directory only
    with it), a URL, or a long argument list."""
    if argv[:1] != ["verify"] or len(argv) > _SHORT_RUN_ARGS + 1:
        return
    for arg in argv[1:]:
        if arg.startswith("-") and not arg.startswith("--") and "r" in arg:
            return  # -r, or -r among combined short flags
        if arg == "--recursive" or "://" in arg:
            return
    import gc

    gc.disable()
