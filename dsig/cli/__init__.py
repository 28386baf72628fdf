"""The ``dsig`` command line: wires dsig (DICOM), tokens (keys) and pki (trust) together.

Exit codes: 0 all valid; 1 any invalid or a --require not met; 2 usage; 3 indeterminate;
4 operational error (unreadable input, bad key, wrong password, ...).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

import typer

_SETTINGS: dict[str, Any] = {
    "name": "dsig",
    "no_args_is_help": True,
    "pretty_exceptions_enable": False,
    "add_completion": False,
    "context_settings": {"help_option_names": ["-h", "--help"]},
    "help": "Sign and verify DICOM digital signatures (PS3.15 Annex C).",
}
#: Command name -> (module, function). A command's module is imported only when it runs (or
#: for the full app: help, sub-groups): importing them all costs every single-file verify.
_COMMANDS = {
    "sign": ("dsig.cli.sign", "sign"),
    "verify": ("dsig.cli.verify", "verify"),
    "inspect": ("dsig.cli.verify", "inspect"),
    "remove": ("dsig.cli.verify", "remove"),
    "purposes": ("dsig.cli.verify", "purposes"),
    "explain": ("dsig.cli.explain", "explain"),
    "send": ("dsig.cli.net", "send"),
}
#: Sub-group name -> (module, typer app).
_GROUPS = {
    "serve": ("dsig.cli.net", "serve_app"),
    "tokens": ("dsig.cli.tokens", "tokens_app"),
    "timestamp": ("dsig.cli.timestamp", "timestamp_app"),
    "cert": ("dsig.cli.cert", "cert_app"),
    "manifest": ("dsig.cli.manifest", "manifest_app"),
    "evidence": ("dsig.cli.evidence", "evidence_app"),
    "orthanc": ("dsig.cli.orthanc", "orthanc_app"),
}
#: Commands parsed by their own click command class (module, class); the others by DsigCommand.
_COMMAND_CLASSES = {"verify": ("dsig.cli.verify", "VerifyCommand")}


def _load(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def _new_app() -> typer.Typer:
    """An app with the common callback (--version) and no command yet."""
    new = typer.Typer(cls=_load("dsig.cli._params", "DsigGroup"), **_SETTINGS)
    new.callback()(_main)
    return new


def _register(app: typer.Typer, name: str) -> None:
    command: Callable[..., None] = _load(*_COMMANDS[name])
    module, cls = _COMMAND_CLASSES.get(name, ("dsig.cli._params", "DsigCommand"))
    app.command(cls=_load(module, cls))(command)


def _full_app() -> typer.Typer:
    """Every command and sub-group (imports every command module)."""
    full = _new_app()
    for name in _COMMANDS:
        _register(full, name)
    for group, (module, name) in _GROUPS.items():
        full.add_typer(_load(module, name), name=group)
    return full


_app: typer.Typer | None = None


def __getattr__(name: str) -> Any:
    """``app``, the full typer app (built on first use)."""
    global _app
    if name == "app":
        if _app is None:
            _app = _full_app()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _version(value: bool) -> None:
    if value:
        from dsig import __version__

        typer.echo(f"dsig {__version__}")
        raise typer.Exit()


def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Sign and verify DICOM digital signatures."""


def main() -> None:
    """Console-script entry point: no traceback ever reaches the user (DSIG_DEBUG=1 shows it)."""
    from dsig.cli._hardening import disable_core_dumps
    from dsig.cli._startup import (
        defer_modules,
        end_quickly,
        is_process_entry,
        pause_gc_for_a_few_files,
        quiet_pydicom,
    )
    from dsig.cli._stdio import StdoutFailure, end_for, guard_stdio

    argv = sys.argv[1:]
    disable_core_dumps()  # before any secret is read
    entry = is_process_entry(main)  # not a host program calling main()
    if entry:
        pause_gc_for_a_few_files(argv)
    defer_modules()
    quiet_pydicom()
    guard_stdio()
    try:
        try:
            _app_for(argv)()
        finally:
            sys.stdout.flush()  # a failing final flush is reported like any other write
    except StdoutFailure as failure:
        sys.exit(end_for(failure))
    except SystemExit as end:
        if entry and argv[:1] == ["verify"]:  # per-file hooks pay the exit
            end_quickly(end.code)
        raise
    except KeyboardInterrupt:
        typer.echo("dsig: interrupted", err=True)
        sys.exit(130)
    except Exception as e:
        if os.environ.get("DSIG_DEBUG"):
            raise
        typer.echo(f"dsig: internal error: {type(e).__name__}: {e}", err=True)
        sys.exit(4)


def _app_for(argv: list[str]) -> typer.Typer:
    """For ``dsig COMMAND ...``, an app holding only that command (and the same callback):
    typer builds the options of every registered command on each start (tens of ms, paid by
    every single-file verify), and only that command's module is imported. Anything else
    (help, sub-groups) runs the full app."""
    if argv and argv[0] in _COMMANDS:
        slim = _new_app()
        _register(slim, argv[0])
        return slim
    app: typer.Typer = __getattr__("app")
    return app
