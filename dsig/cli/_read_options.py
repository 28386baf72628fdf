"""Input options shared by every command that reads DICOM (dcmsign's ``+f``/``+fo``/``-f`` and
``-t=``/``-td``/``-te``/``-tb``/``-ti``): one declaration, one builder to
:class:`~dsig.encoding.read_options.ReadOptions`."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from dsig import ReadOptions


class ReadChoice(enum.StrEnum):
    """--read values."""

    auto = "auto"
    file = "file"
    dataset = "dataset"


class ReadXferChoice(enum.StrEnum):
    """--read-xfer values."""

    auto = "auto"
    detect = "detect"
    little = "little"
    big = "big"
    implicit = "implicit"


ReadOpt = Annotated[
    ReadChoice,
    typer.Option(
        "--read",
        help="input format: file (Part 10 only, dcmsign +fo), dataset (no meta header, -f), "
        "auto (either, +f)",
    ),
]
ReadXferOpt = Annotated[
    ReadXferChoice,
    typer.Option(
        "--read-xfer",
        help="data set encoding: auto (as the meta header says, -t=), detect (ignore the meta, "
        "-td), little/big (explicit VR, -te/-tb), implicit (-ti); forcing needs --read dataset, "
        "as dcmsign's -te/-tb/-ti need -f",
    ),
]


def read_options(read: ReadChoice, read_xfer: ReadXferChoice) -> ReadOptions:
    """The library value for the two options (a contradiction is a usage error, exit 2)."""
    from dsig import OptionsError, ReadOptions
    from dsig.cli._common import EXIT_USAGE, fail

    try:
        return ReadOptions(mode=read.value, xfer=read_xfer.value)
    except OptionsError as e:
        raise fail(e, EXIT_USAGE) from None
