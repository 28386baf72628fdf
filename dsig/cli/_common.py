"""What every command shares: the error funnel, secrets, input expansion."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import typer

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INDETERMINATE, EXIT_OPERATIONAL = 0, 1, 2, 3, 4


#: Library option keywords whose CLI spelling is not ``--`` plus the keyword with dashes.
_FLAGS = {
    "tls_key_password": "--tls-key-password-file/-env",
    "tls_cert": "--tls-cert and --tls-key",
    "old_format": "--format-old",
    "revocation_material": "--crl/--ocsp, --online or --revocation soft-fail|off",
}


def command_group(name: str, help: str, **settings: Any) -> typer.Typer:
    """A sub-command group of ``dsig`` (``dsig NAME COMMAND``): its usage without a command,
    and -h for --help also when the group is run on its own (as tests do)."""
    return typer.Typer(
        name=name, help=help, no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]}, **settings,
    )  # fmt: skip


def cli_flag(option: str, value: str | None = None) -> str:
    """The command-line spelling of a library option keyword (and its value)."""
    flag = _FLAGS.get(option, "--" + option.replace("_", "-"))
    return f"{flag} {value}" if value else flag


def error_line(error: BaseException) -> str:
    """A library error's message, plus the CLI option that changes the outcome: library
    messages name options by keyword (``option``), never by flag."""
    from tokens import ToolkitError

    message = str(error)
    if isinstance(error, ToolkitError) and error.option:
        message += f" (use {cli_flag(error.option, error.value)})"
    return message


def with_flag(message: str, item: object) -> str:
    """A finding's (or probe line's) message, plus the CLI option its ``option`` names."""
    option = getattr(item, "option", None)
    if not isinstance(option, str):
        return message
    value = getattr(item, "value", None)
    return f"{message} (use {cli_flag(option, value if isinstance(value, str) else None)})"


def fail(message: str | BaseException, code: int = EXIT_OPERATIONAL) -> typer.Exit:
    """Print one line to stderr (control characters escaped) and return the Exit to raise."""
    from dsig import printable

    text = message if isinstance(message, str) else error_line(message)
    typer.echo(f"dsig: error: {printable(text)}", err=True)
    return typer.Exit(code)


def operational_errors() -> tuple[type[Exception], ...]:
    """Library errors that mean "bad input or environment" (exit 4)."""
    from dsig import ToolkitError  # the root of every dsig, pki and tokens error

    return (ToolkitError,)


def read_secret(
    *, file: Path | None, env: str | None, none: bool, what: str
) -> tuple[bytes | None, bool]:
    """(secret, may_prompt): from a file or an environment variable, never from argv."""
    if none:
        return None, False
    if file is not None:
        try:
            return file.read_bytes().rstrip(b"\r\n"), False
        except OSError as e:
            raise fail(f"cannot read {what} file {file}: {e.strerror or e}") from None
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise fail(f"environment variable {env} (for the {what}) is not set")
        return value.encode(), False
    return None, sys.stdin.isatty()


def prompt_secret(prompt: str) -> str:
    """Ask on the terminal without echo."""
    import getpass  # termios: only when a secret is asked for

    return getpass.getpass(f"{prompt}: ")


def no_prompt(prompt: str) -> str:
    """Used when stdin is not a terminal: say how to pass the secret instead."""
    raise fail(f"{prompt} is needed: use --password-file/--password-env (or --pin-file/--pin-env)")


def expand_inputs(paths: list[Path], recursive: bool) -> Iterator[tuple[Path, Path]]:
    """(file, path relative to the given root) for files and, with --recursive, directories."""
    from dsig import InputError, iter_inputs

    try:
        yield from iter_inputs(paths, recursive=recursive)
    except InputError:
        raise fail(f"{_directory_in(paths)} is a directory (use --recursive)") from None


def _directory_in(paths: list[Path]) -> Path:
    return next(p for p in paths if p.is_dir())


@contextlib.contextmanager
def _output_exits() -> Iterator[None]:
    """The library's output refusals as CLI exits: 2 refused as given, 4 unwritable."""
    from dsig import OutputError, OutputRefusedError

    try:
        yield
    except OutputRefusedError as e:
        raise fail(e, EXIT_USAGE) from None
    except OutputError as e:
        raise fail(e) from None


def guard_output(path: Path, *, inputs: Iterable[Path], force: bool, what: str) -> None:
    """:func:`dsig.check_output_path` for the output of option ``what``, with CLI exits."""
    from dsig import check_output_path

    with _output_exits():
        check_output_path(path, inputs=inputs, force=force, what=what)


def check_output(src: Path, dst: Path, *, force: bool) -> None:
    """Refuse an output that is the input (use --in-place), exists (use --force), or is a
    directory or device; its directory may still be created (``--out-dir``)."""
    from dsig import check_output_path

    if dst.exists() and dst.resolve() == src.resolve():
        raise fail(f"output {dst} is the input: use --in-place to replace it", EXIT_USAGE)
    with _output_exits():
        check_output_path(dst, inputs=[src], force=force, parent_must_exist=False)


def in_place_target(path: Path) -> Path:
    """The file --in-place replaces (a symlink's target: the link keeps naming it)."""
    from dsig import OutputError, in_place_target

    try:
        return in_place_target(path)
    except OutputError as e:
        raise fail(e) from None


def input_output(paths: list[Path], *, in_place: bool, force: bool) -> tuple[Path, Path]:
    """(INPUT, OUTPUT) of a one-file command: ``INPUT OUTPUT`` or ``INPUT --in-place``."""
    if in_place:
        if len(paths) != 1:
            raise fail("--in-place takes one INPUT", 2)
        target = in_place_target(paths[0])
        return target, target
    if len(paths) != 2:
        raise fail("give INPUT OUTPUT (or INPUT --in-place)", 2)
    src, dst = paths
    check_output(src, dst, force=force)
    return src, dst


def utc_now() -> str:
    """ISO-8601 UTC, seconds precision (report headers)."""
    import datetime as dt

    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
