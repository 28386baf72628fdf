"""``dsig tokens``: inspect PKCS#11 tokens (smartcards, USB tokens, HSMs, SoftHSM2).

The main app mounts this with ``app.add_typer(tokens_app, name="tokens")``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dsig.cli._common import EXIT_OPERATIONAL, command_group, fail, with_flag
from tokens import TokenError

if TYPE_CHECKING:
    from tokens.pkcs11 import ProbeReport, TokenInfo

tokens_app = command_group(
    "tokens",
    "List PKCS#11 tokens with their keys, certificates and key URIs; probe a key.",
    pretty_exceptions_show_locals=False,
)


@tokens_app.callback()
def _tokens() -> None:
    """Work with PKCS#11 tokens (the group keeps ``list`` a subcommand)."""


def _fail(message: str | BaseException) -> typer.Exit:
    return fail(message, EXIT_OPERATIONAL)


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
            help="only this PKCS#11 module (.so); default: every module found "
            "($DSIG_PKCS11_MODULE, p11-kit registrations, the usual SoftHSM2/OpenSC paths).",
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
        from tokens.pkcs11 import survey_tokens

        survey = survey_tokens(str(module) if module is not None else None, pin=pin, token=token)
    except TokenError as e:
        raise _fail(e) from None
    for skipped in survey.skipped:
        typer.echo(f"dsig: note: skipped PKCS#11 module {skipped}", err=True)
    if as_json:
        typer.echo(json.dumps(survey.to_dict(), indent=2))
        return
    _render(survey.tokens)
    for path in survey.modules:
        if not any(t.module == path for t in survey.tokens):
            typer.echo(f"\nmodule: {path}\n  no token present")


def _render(infos: list[TokenInfo]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)
    if not infos:
        typer.echo("no tokens present")
        return
    module = ""
    for info in infos:
        if info.module != module:
            module = info.module
            typer.echo(f"module: {module}")
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


@tokens_app.command("probe")
def probe_command(
    uri: Annotated[str, typer.Argument(metavar="URI", help="pkcs11: URI of the key")],
    pin_env: Annotated[
        str | None,
        typer.Option("--pin-env", metavar="VAR", help="PIN from this environment variable."),
    ] = None,
    pin_file: Annotated[
        Path | None, typer.Option("--pin-file", help="PIN from the first line of this file.")
    ] = None,
    allow_pin_in_uri: Annotated[
        bool,
        typer.Option(
            "--allow-pin-in-uri",
            help="accept pin-value= in the URI (every local user can read command lines)",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What the token and key offer and whether dsig can sign with them.

    Logs in as signing would (PIN from --pin-env/--pin-file, the reader's keypad, or a
    prompt on a terminal). Exit 0 when dsig can sign with the key, 1 when it cannot, 4 when
    the key cannot be opened.
    """
    import sys

    from dsig.cli._common import prompt_secret

    pin = _read_pin(pin_env, pin_file)
    try:
        from tokens.pkcs11 import probe_key

        report = probe_key(
            uri,
            pin=pin,
            secrets=prompt_secret if pin is None and sys.stdin.isatty() else None,
            notice=lambda note: typer.echo(f"dsig: {note}", err=True),
            allow_pin_in_uri=allow_pin_in_uri,
        )
    except TokenError as e:
        raise _fail(e) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _render_probe(report)
    if not report.can_sign:
        raise typer.Exit(1)


def _render_probe(r: ProbeReport) -> None:
    size = f"{r.key_size}-bit " if r.key_size else ""
    curve = f" ({r.curve})" if r.curve else ""
    typer.echo(f"key:          {r.uri}")
    typer.echo(f"module:       {r.module}")
    typer.echo(f"token:        '{r.token_label}' serial {r.token_serial or '-'} ({r.token_model})")
    typer.echo(f"token flags:  {', '.join(r.token_flags)}")
    typer.echo(f"key type:     {size}{r.key_type}{curve}")
    login = "a context-specific login before every signature" if r.always_authenticate else "one"
    typer.echo(f"login:        {login}")
    from tokens.pkcs11 import RELEVANT_MECHANISMS

    shown = [m for m in r.mechanisms if m in RELEVANT_MECHANISMS]
    more = len(r.mechanisms) - len(shown)
    listed = ", ".join(shown) or "(none of the signing ones)"
    typer.echo(f"mechanisms:   {listed}" + (f" (+{more} others, see --json)" if more else ""))
    typer.echo(f"signs with:   {r.mechanism_used}")
    typer.echo(f"certificate:  {r.certificate_subject}")
    typer.echo(f"  issuer:     {r.certificate_issuer}")
    typer.echo(f"  valid:      {r.not_before.isoformat()} to {r.not_after.isoformat()}")
    typer.echo(f"  key usage:  {', '.join(r.key_usage) or '(no extension)'}")
    typer.echo(f"  ext. usage: {', '.join(r.extended_key_usage) or '(no extension)'}")
    typer.echo("MAC algorithms:")
    for m in r.mac:
        typer.echo(f"  {m.algorithm:<10} {'yes' if m.usable else 'no '}  {with_flag(m.reason, m)}")
    for note in r.notes:
        typer.echo(f"note: {note}")
    for problem in r.problems:
        typer.echo(f"problem: {problem}")
    typer.echo("dsig can sign with this key" if r.can_sign else "dsig cannot sign with this key")
