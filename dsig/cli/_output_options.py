"""Output options shared by the commands that write DICOM files (``dsig sign``, ``remove``,
``timestamp insert/add``, ``manifest create``): one declaration each."""

from __future__ import annotations

from typing import Annotated

import typer

InPlaceOpt = Annotated[bool, typer.Option("--in-place", help="replace the input (atomically)")]
ForceOpt = Annotated[bool, typer.Option("--force", help="overwrite an existing output")]
