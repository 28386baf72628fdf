"""``dsig orthanc``: the Orthanc plugin's path and the verifier process it starts."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from dsig.cli._common import command_group, fail, operational_errors

orthanc_app = command_group("orthanc", "Verify signatures inside Orthanc (its Python plugin).")


@orthanc_app.command("plugin-path")
def plugin_path() -> None:
    """Print the path of the plugin script, for Orthanc's "PythonScript" setting."""
    from dsig.orthanc import plugin_path as path

    typer.echo(str(path()))


@orthanc_app.command(
    "verifier", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def verifier(
    ctx: typer.Context,
    socket_path: Annotated[Path, typer.Option("--socket", help="Unix socket to listen on")],
    accept: Annotated[
        list[str] | None,
        typer.Option(
            "--accept",
            help="an indication that passes (repeatable; default: what dsig verify passes)",
        ),
    ] = None,
    quarantine: Annotated[
        Path | None, typer.Option(help="keep refused instances here, with their report")
    ] = None,
    audit_log: Annotated[
        Path | None, typer.Option(help="hash-chained JSON-lines log of every verdict")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="verifier worker processes")] = 2,
    verify_timeout: Annotated[float, typer.Option(help="seconds one verification may take")] = 30,
) -> None:
    """The persistent verifier the Orthanc plugin starts (the plugin runs it for you).

    The arguments after -- are dsig verify's options (trust store, CRLs, --require,
    --policy-file, ...). Prints "ready" once listening; stops on SIGTERM, Ctrl-C or when its
    standard input closes (Orthanc ended).
    """
    from dsig import Indication
    from dsig.cli.verify import verify_options_from_args
    from dsig.net import NetError
    from dsig.orthanc import ServiceConfig, VerifierService
    from pki import PolicyEvaluator

    known = {i.value for i in Indication if i is not Indication.NOT_CHECKED}
    for indication in accept or ():
        if indication not in known:
            raise fail(f"--accept {indication}: not one of {', '.join(sorted(known))}", 2)
    options = verify_options_from_args(
        list(ctx.args), evaluator=lambda policy: PolicyEvaluator(policy, ttl=60, max_entries=1024)
    )
    config = ServiceConfig(
        socket=socket_path, verify=options, accept=tuple(accept or ()), quarantine=quarantine,
        audit_log=audit_log, workers=workers, verify_timeout=verify_timeout,
    )  # fmt: skip
    service = VerifierService(config)
    errors: tuple[type[Exception], ...] = (NetError, *operational_errors())
    try:
        service.start()
    except errors as e:
        raise fail(e) from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def watch_stdin() -> None:
        with contextlib.suppress(OSError):  # unbuffered: no lock held at interpreter exit
            while os.read(0, 1 << 16):
                pass
        stop.set()

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, on_signal)
    threading.Thread(target=watch_stdin, daemon=True).start()
    typer.echo(f"ready {socket_path}")
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        service.stop()
