"""``dsig explain FILE``: what each signature covers, how, and why the verdict is what it is."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dsig.cli._common import fail, guard_output, operational_errors
from dsig.cli._read_options import ReadChoice, ReadOpt, ReadXferChoice, ReadXferOpt, read_options
from dsig.cli._trust_options import ALL_TRUST_OPTIONS, TrustArgs, trust_options

if TYPE_CHECKING:
    from dsig.explain import Explanation


@trust_options(*ALL_TRUST_OPTIONS)
def explain(
    path: Annotated[Path, typer.Argument(help="DICOM file")],
    signature: Annotated[
        str | None, typer.Option(help="explain only the signature with this UID")
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="also write a self-contained HTML page")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing --html file")] = False,
    reference: Annotated[
        Path | None,
        typer.Option(help="an earlier copy of the file: name the elements changed since"),
    ] = None,
    *,
    trust: TrustArgs,
    read: ReadOpt = ReadChoice.auto,
    read_xfer: ReadXferOpt = ReadXferChoice.auto,
) -> None:
    """Explain each signature step by step: what entered the MAC stream and how, the digest,
    the signature check, each trust step, and the step that decided the verdict.

    Same options and exit codes as dsig verify (0 valid, 1 invalid, 3 indeterminate, 4 error).
    """
    options = trust.verify_options()
    options = dataclasses.replace(options, read=read_options(read, read_xfer))
    inputs = [path] + ([reference] if reference else [])
    if html is not None:
        guard_output(html, inputs=inputs, force=force, what="--html")
    from dsig.explain import ExplainOptions, explain_file

    try:
        ex = explain_file(
            path, ExplainOptions(verify=options, signature=signature, reference=reference)
        )
        if html is not None:
            from dsig import atomic_output
            from dsig.explain import render_html

            with atomic_output(html) as fp:
                fp.write(render_html(ex).encode("utf-8"))
    except operational_errors() as e:
        raise fail(e) from None
    _print(ex)
    raise typer.Exit(ex.exit_code)


_STYLE = {
    "VALID": "bold green", "passed": "green", "INVALID": "bold red", "failed": "red",
    "INDETERMINATE": "bold yellow", "warning": "yellow", "not run": "yellow", "info": "cyan",
}  # fmt: skip


def _print(ex: Explanation) -> None:
    """A coloured tree on a terminal, indented plain text otherwise."""
    from dsig import printable
    from dsig.explain import outline

    if not sys.stdout.isatty():
        for line in outline(ex):
            typer.echo("  " * line.depth + printable(line.text))
        return
    from rich.console import Console
    from rich.text import Text
    from rich.tree import Tree

    lines = list(outline(ex))
    root = Tree(Text(printable(lines[0].text), style=_STYLE.get(lines[0].status, "")))
    stack = [root]
    for line in lines[1:]:
        depth = max(1, line.depth)
        del stack[depth:]
        node = stack[-1].add(Text(printable(line.text), style=_STYLE.get(line.status, "")))
        stack.append(node)
    Console().print(root)
