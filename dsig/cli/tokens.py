"""``dsig tokens``: inspect PKCS#11 tokens (smartcards, USB tokens, HSMs, SoftHSM2).

The main app mounts this with ``app.add_typer(tokens_app, name="tokens")``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tokens.errors import TokenError

if TYPE_CHECKING:
    from tokens.pkcs11 import TokenInfo

tokens_app = typer.Typer(
    name="tokens",
    help="List PKCS#11 tokens with their keys, certificates and key URIs.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_OPERATIONAL = 4


@tokens_app.callback()
def _tokens() -> None:
    """Work with PKCS#11 tokens (the group keeps ``list`` a subcommand)."""


def _fail(message: str) -> typer.Exit:
    typer.echo(f"dsig: error: {message}", err=True)
    return typer.Exit(EXIT_OPERATIONAL)


def _read_pin(pin_env: str | None, pin_file: Path | None) -> bytes | None:
    """The PIN from an environment variable or a file (first line); never from the command line."""
    if pin_env is not None and pin_file is not None:
        raise _fail("use either --pin-env or --pin-file, not both")
    if pin_env is not None:
        value = os.environ.get(pin_env)
        if value is None:
            raise _fail(f"environment variable {pin_env} (from --pin-env) is not set")
        return value.encode("utf-8")
    if pin_file is not None:
        try:
            data = pin_file.read_bytes()
        except OSError as e:
            raise _fail(f"cannot read the PIN file {pin_file}: {e.strerror or e}") from None
        lines = data.splitlines()
        return lines[0] if lines else b""
    return None


@tokens_app.command("list")
def list_command(
    module: Annotated[
        Path | None,
        typer.Option(
            "--module",
            help="PKCS#11 module (.so) to load; default: $DSIG_PKCS11_MODULE, p11-kit, "
            "then the usual SoftHSM2/OpenSC paths.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", metavar="LABEL", help="Only this token (needed with a PIN if several)."
        ),
    ] = None,
    pin_env: Annotated[
        str | None,
        typer.Option(
            "--pin-env",
            metavar="VAR",
            help="Log in with the PIN in this environment variable to list private keys too.",
        ),
    ] = None,
    pin_file: Annotated[
        Path | None,
        typer.Option("--pin-file", help="Log in with the PIN on the first line of this file."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """List slots, tokens, keys and certificates, with the pkcs11: URI to sign with each key.

    Without a PIN only public objects (public keys, certificates) are visible. A PIN is
    tried on one token only: the one named by --token, or the only initialised token.
    """
    pin = _read_pin(pin_env, pin_file)
    try:
        # Lazy: python-pkcs11 loads only when this command runs.
        from tokens.pkcs11 import list_tokens

        infos = list_tokens(str(module) if module is not None else None, pin=pin, token=token)
    except TokenError as e:
        raise _fail(str(e)) from None
    if as_json:
        typer.echo(json.dumps({"tokens": [t.to_dict() for t in infos]}, indent=2))
        return
    _render(infos)


def _render(infos: list[TokenInfo]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)
    if not infos:
        typer.echo("no tokens present")
        return
    typer.echo(f"module: {infos[0].module}")
    for info in infos:
        typer.echo("")
        if not info.initialized:
            typer.echo(f"slot {info.slot_id}: uninitialised token ({info.slot_description})")
            continue
        typer.echo(
            f"token '{info.label}'  serial {info.serial or '-'}  "
            f"{info.manufacturer} / {info.model}  slot {info.slot_id}"
        )
        typer.echo(f"  flags: {', '.join(info.flags)}")
        if not info.objects:
            typer.echo("  no objects visible" + ("" if info.logged_in else " without login"))
            continue
        table = Table(show_header=True, header_style="bold", pad_edge=False)
        for column in ("kind", "label", "id", "type", "size", "subject", "valid until"):
            table.add_column(column)
        for obj in info.objects:
            table.add_row(
                Text(obj.kind),
                Text(obj.label or ""),
                Text(obj.id_hex or ""),
                Text(obj.key_type or ""),
                Text(str(obj.key_size) if obj.key_size else ""),
                Text(obj.subject or ""),
                Text(obj.not_after.date().isoformat() if obj.not_after else ""),
            )
        console.print(table)
        if not info.logged_in:
            typer.echo("  (private keys are hidden without a PIN: use --pin-env or --pin-file)")
        # Plain echo, not rich: URIs must stay on one line to be copy-pasted.
        typer.echo("  key URIs:")
        for uri in sorted({o.uri for o in info.objects if o.uri}):
            typer.echo(f"    {uri}")
