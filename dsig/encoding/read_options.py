"""How to read an input file: dcmsign's input options as one frozen value.

``ReadOptions(mode, xfer)`` mirrors dcmsign's ``+f`` / ``+fo`` / ``-f`` (file format or bare
data set) and ``-t=`` / ``-td`` / ``-te`` / ``-tb`` / ``-ti`` (which encoding the data set is
read in). The default reads what the file meta header says and nothing else: a data set that
does not parse cleanly in that transfer syntax is malformed, never silently re-read in
another encoding (the polyglot attack of issue 13).
"""

from __future__ import annotations

from dataclasses import dataclass

from dsig.errors import OptionsError

#: ``--read`` values: file format only (+fo), bare data set only (-f), either (+f, default).
READ_MODES = ("auto", "file", "dataset")
#: ``--read-xfer`` values: the meta's syntax (-t=, default), detect from the data set and
#: ignore the meta (-td), or force explicit little (-te) / explicit big (-tb) / implicit (-ti).
READ_XFERS = ("auto", "detect", "little", "big", "implicit")


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


DEFAULT_READ = ReadOptions()
