"""Parse user-given tags (keywords or ``(gggg,eeee)``) and item locations."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom.datadict import keyword_for_tag, tag_for_keyword

from dsig.errors import LocationError, TagError

_HEX_TAG = re.compile(r"^\(?\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)?$")
_HEX8 = re.compile(r"^(?:0x)?([0-9A-Fa-f]{8})$")


def parse_tag(text: str) -> int:
    """``PatientName``, ``(0010,0010)``, ``0010,0010`` or ``00100010`` -> tag as int."""
    text = text.strip()
    m = _HEX_TAG.match(text)
    if m:
        return int(m.group(1) + m.group(2), 16)
    m = _HEX8.match(text)
    if m:
        return int(m.group(1), 16)
    tag = tag_for_keyword(text)
    if tag is None:
        raise TagError(f"unknown tag or keyword {text!r}")
    return int(tag)


def parse_tag_file(path: Path) -> list[int]:
    """Tags from a file: any number per line, separated by blanks; ``#`` starts a comment."""
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise TagError(f"cannot read tag file {path}: {e.strerror or e}") from None
    tags: list[int] = []
    for line in lines:
        content = line.split("#", 1)[0]
        tags.extend(parse_tag(word) for word in _split_words(content))
    return tags


def _split_words(content: str) -> Iterable[str]:
    # "(0010,0010)" contains a comma, so split on whitespace only.
    return (w for w in content.split() if w)


def tag_str(tag: int) -> str:
    """``(GGGG,EEEE)`` in upper-case hex, the form used in reports."""
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def tag_name(tag: int) -> str:
    """Keyword when the dictionary knows the tag, else ``(gggg,eeee)``."""
    return keyword_for_tag(tag) or tag_str(tag)


@dataclass(frozen=True)
class ItemStep:
    """One step into the tree: item ``index`` of the sequence ``tag``."""

    tag: int
    index: int


ItemPath = tuple[ItemStep, ...]
ROOT: ItemPath = ()

_STEP = re.compile(
    r"^\s*(\([0-9A-Fa-f]{4},[0-9A-Fa-f]{4}\)|[A-Za-z][A-Za-z0-9]*)\s*\[\s*(\d+)\s*\]\s*$"
)


def parse_location(text: str) -> ItemPath:
    """``ReferencedSeriesSequence[0].ReferencedImageSequence[1]`` (0-based; keywords or tags)."""
    if not text.strip():
        return ROOT
    steps: list[ItemStep] = []
    for part in _split_location(text):
        m = _STEP.match(part)
        if not m:
            raise LocationError(f"bad location step {part!r} in {text!r} (expected Keyword[index])")
        try:
            tag = parse_tag(m.group(1))
        except TagError as e:
            raise LocationError(f"{e} in location {text!r}") from None
        steps.append(ItemStep(tag, int(m.group(2))))
    return tuple(steps)


def _split_location(text: str) -> list[str]:
    # Split on dots that are outside parentheses ("(0008,1115)[0].(0008,1140)[1]").
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "." and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def format_location(path: ItemPath) -> str:
    """Inverse of :func:`parse_location`; the root level is the empty string."""
    return ".".join(f"{tag_name(s.tag)}[{s.index}]" for s in path)
