"""The ``dsig`` command line: wires dsig (DICOM), tokens (keys) and pki (trust) together.

Exit codes: 0 all valid; 1 any invalid or a --require not met; 2 usage; 3 indeterminate;
4 operational error (unreadable input, bad key, wrong password, ...).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from dsig.cli.cert import cert_app
from dsig.cli.evidence import evidence_app
from dsig.cli.explain import explain
from dsig.cli.manifest import manifest_app
from dsig.cli.net import send, serve_app
from dsig.cli.orthanc import orthanc_app
from dsig.cli.sign import sign
from dsig.cli.timestamp import timestamp_app
from dsig.cli.tokens import tokens_app
from dsig.cli.verify import VerifyCommand, inspect, purposes, remove, verify

_SETTINGS: dict[str, Any] = {
    "name": "dsig",
    "no_args_is_help": True,
    "pretty_exceptions_enable": False,
    "add_completion": False,
    "context_settings": {"help_option_names": ["-h", "--help"]},
    "help": "Sign and verify DICOM digital signatures (PS3.15 Annex C).",
}
app = typer.Typer(**_SETTINGS)
app.command()(sign)
app.command(cls=VerifyCommand)(verify)
app.command()(inspect)
app.command()(explain)
app.command()(remove)
app.command()(purposes)
app.command()(send)
app.add_typer(serve_app, name="serve")
app.add_typer(tokens_app, name="tokens")
app.add_typer(timestamp_app, name="timestamp")
app.add_typer(cert_app, name="cert")
app.add_typer(manifest_app, name="manifest")
app.add_typer(evidence_app, name="evidence")
app.add_typer(orthanc_app, name="orthanc")


def _version(value: bool) -> None:
    if value:
        from dsig import __version__

        typer.echo(f"dsig {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Sign and verify DICOM digital signatures."""


def main() -> None:
    """Console-script entry point: no traceback ever reaches the user (DSIG_DEBUG=1 shows it)."""
    from dsig.cli._hardening import disable_core_dumps
    from dsig.cli._startup import defer_modules, quiet_pydicom
    from dsig.cli._stdio import StdoutFailure, end_for, guard_stdio

    disable_core_dumps()  # before any secret is read
    defer_modules()
    quiet_pydicom()
    guard_stdio()
    try:
        try:
            _app_for(sys.argv[1:])()
        finally:
            sys.stdout.flush()  # a failing final flush is reported like any other write
    except StdoutFailure as failure:
        sys.exit(end_for(failure))
    except SystemExit:
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
    every single-file verify). Anything else (help, sub-groups) runs the full app."""
    if not argv or argv[0].startswith("-"):
        return app
    for info in app.registered_commands:
        callback = info.callback
        name = info.name or (callback.__name__.lower().replace("_", "-") if callback else None)
        if name == argv[0]:
            slim = typer.Typer(**_SETTINGS)
            slim.registered_commands.append(info)
            slim.registered_callback = app.registered_callback
            return slim
    return app
