"""The file's element tree with covered / not covered marked (for the HTML page)."""

from __future__ import annotations

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from dsig.encoding.tags import tag_name, tag_str
from dsig.encoding.values import UNDEFINED, element_vr, is_sequence, sequence_items, stored
from dsig.explain.model import ElementNode

_FRAMING = frozenset({0xFFFAFFFA, 0x4FFE0001, 0x00080001})
_MAX_ITEMS = 50
_MAX_DEPTH = 8
_BULK = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN", "UT", "LT"})


def _summary(level: Dataset, tag: int, vr: str) -> str:
    elem = stored(level, tag, keep_deferred=True)
    length = elem.length if isinstance(elem, RawDataElement) else None
    if length == UNDEFINED:
        return "encapsulated (undefined length)"
    if vr in _BULK or (length is not None and length > 80):
        return f"{length if length is not None else '?'} bytes"
    try:
        text = str(level[tag].value)
    except Exception:
        return "(undecodable)"
    return text if len(text) <= 64 else text[:61] + "..."


def element_tree(ds: Dataset, covered: set[str]) -> tuple[ElementNode, ...]:
    """Top-level elements, ``covered`` when a main-level signature lists them; everything
    nested under a covered sequence is covered with it."""
    return _level(ds, covered, None, (), 0)


def _level(
    level: Dataset,
    covered: set[str],
    inherited: bool | None,
    ancestors: tuple[Dataset, ...],
    depth: int,
) -> tuple[ElementNode, ...]:
    nodes = []
    for tag in sorted(int(t) for t in level.keys()):
        vr = element_vr(level, tag, ancestors)
        framing = tag in _FRAMING or tag & 0xFFFF == 0
        is_covered: bool | None
        if inherited is not None:
            is_covered = inherited
        else:
            is_covered = None if framing else tag_str(tag) in covered
        children: tuple[ElementNode, ...] = ()
        summary = ""
        if is_sequence(level, tag, vr):
            items = sequence_items(level, tag)
            summary = f"{len(items)} item(s)"
            if depth < _MAX_DEPTH:
                kids = []
                for n, item in enumerate(items[:_MAX_ITEMS], 1):
                    inner = _level(item, covered, is_covered, (level, *ancestors), depth + 1)
                    kids.append(ElementNode("", f"item {n}", "", "", is_covered, inner))
                children = tuple(kids)
        else:
            summary = _summary(level, tag, vr)
        nodes.append(ElementNode(tag_str(tag), tag_name(tag), vr, summary, is_covered, children))
    return tuple(nodes)
