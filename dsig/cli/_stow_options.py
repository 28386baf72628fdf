"""``dsig serve``'s DICOMweb options: ``--stow HOST:PORT`` and ``--upstream URL``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dsig.cli._common import fail

if TYPE_CHECKING:
    from dsig.net import ReceiveServer, StowServer

StowOpt = Annotated[
    str | None,
    typer.Option(
        "--stow",
        metavar="HOST:PORT",
        help="also serve DICOMweb STOW-RS (POST /studies) on HOST:PORT (port 0: any free); "
        "parts that do not pass are refused (Failed SOP Sequence)",
    ),
]
UpstreamOpt = Annotated[
    str | None,
    typer.Option(
        "--upstream",
        metavar="URL",
        help="with --stow: send accepted instances on, byte for byte, to this STOW-RS URL "
        "(e.g. http://pacs:8042/dicom-web/studies)",
    ),
]


def parse_stow_address(value: str) -> tuple[str, int]:
    """HOST:PORT (usage error, exit 2, when it is not one)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise fail(f"--stow {value!r}: expected HOST:PORT", 2)
    return host.strip("[]"), int(port)


def check_stow_options(stow: str | None, upstream: str | None) -> tuple[str, int] | None:
    """The STOW-RS address, after checking the options go together (exit 2 otherwise)."""
    if upstream and not stow:
        raise fail("--upstream needs --stow", 2)
    if upstream and not upstream.startswith(("http://", "https://")):
        raise fail(f"--upstream {upstream!r}: expected an http:// or https:// URL", 2)
    return parse_stow_address(stow) if stow else None


def start_stow(
    node: ReceiveServer, address: tuple[str, int] | None, upstream: str | None
) -> StowServer | None:
    """Start the STOW-RS endpoint in front of a started storage node (exit 4 if it cannot)."""
    if address is None:
        return None
    from dsig.net import NetError, StowServer

    try:
        stow = StowServer(node, *address, upstream=upstream)
    except NetError as e:
        node.stop(grace=0)
        raise fail(e) from None
    stow.start()
    where = f"; accepted instances go on to {upstream}" if upstream else ""
    typer.echo(f"dsig serve: STOW-RS on http://{address[0]}:{stow.port}/studies{where}")
    return stow
