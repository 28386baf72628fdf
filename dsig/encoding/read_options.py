"""How to read an input file: dcmsign's input options as one frozen value.

``ReadOptions(mode, xfer)`` mirrors dcmsign's ``+f`` / ``+fo`` / ``-f`` (file format or bare
data set) and ``-t=`` / ``-td`` / ``-te`` / ``-tb`` / ``-ti`` (which encoding the data set is
read in). The default reads what the file meta header says and nothing else: a data set that
does not parse cleanly in that transfer syntax is malformed, never silently re-read in
another encoding (the polyglot attack of issue 13). As in dcmsign, forcing an encoding
(``-te``/``-tb``/``-ti``) is for a bare data set only (``-f``): a Part 10 file's encoding is
the one its meta header names, or the one detected (``-td``).
"""

from __future__ import annotations

from dataclasses import dataclass

from dsig.errors import OptionsError

#: ``--read`` values: file format only (+fo), bare data set only (-f), either (+f, default).
READ_MODES = ("auto", "file", "dataset")
#: ``--read-xfer`` values: the meta's syntax (-t=, default), detect from the data set and
#: ignore the meta (-td), or force explicit little (-te) / explicit big (-tb) / implicit (-ti).
READ_XFERS = ("auto", "detect", "little", "big", "implicit")
#: The ``--read-xfer`` values that force an encoding (dcmsign allows them with ``-f`` only).
FORCED_XFERS = ("little", "big", "implicit")


@dataclass(frozen=True)
class ReadOptions:
    """Input reading choices (see the module docstring)."""

    mode: str = "auto"
    xfer: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in READ_MODES:
            raise OptionsError(f"ReadOptions.mode must be one of {READ_MODES}, not {self.mode!r}")
        if self.xfer not in READ_XFERS:
            raise OptionsError(f"ReadOptions.xfer must be one of {READ_XFERS}, not {self.xfer!r}")
        if self.xfer in FORCED_XFERS and self.mode != "dataset":
            raise OptionsError(
                f"read_xfer {self.xfer} forces the encoding of a bare data set: it needs "
                "read mode dataset (a file's meta header names its encoding; detect ignores it)",
                option="read",
                value="dataset",
            )


DEFAULT_READ = ReadOptions()
