"""One walk per data-set level: each element's resolved VR, whether it is a sequence, and
whether it may be signed (the tag rules of PS3.3 C.12.1.1.3.1.1, and no VR UN at any depth),
computed once and shared by the reader's completeness check, the verifier and the MAC
encoder. Signability lives here because it is a property of the element's encoding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from dsig.encoding.values import (
    element_vr,
    is_sequence,
    sequence_items,
    stored,
)


def is_signable_tag(tag: int) -> bool:
    """Tag-based exclusions of C.12.1.1.3.1.1 (group lengths, groups < 0008, FFFA, ...)."""
    group, element = tag >> 16, tag & 0xFFFF
    return not (
        element == 0
        or tag == 0x00080001
        or group < 0x0008
        or group == 0xFFFA
        or tag == 0x4FFE0001
        or tag == 0xFFFCFFFC
        or group == 0xFFFE
    )


def contains_un(items: Sequence[Dataset], ancestors: Sequence[Dataset]) -> bool:
    """True if any element inside (recursively) has VR UN: the whole sequence is unsignable."""
    walks = Walks()
    return any(walks.of(item, ancestors).contains_un() for item in items)


def is_signable(level: Dataset, tag: int, ancestors: Sequence[Dataset] = ()) -> bool:
    """Full C.12.1.1.3.1.1 rule: tag rules, no UN, no sequence containing UN."""
    return Walks().of(level, ancestors).signable(tag)


# --- one walk per level ------------------------------------------------------------------------


class WalkEntry(NamedTuple):
    """One element of a level, as the MAC rules see it."""

    tag: int
    #: pydicom's own key object (a BaseTag): looking its element up with it skips the
    #: Python-level ``BaseTag.__eq__`` that a plain int key costs on every probe.
    key: BaseTag
    elem: RawDataElement | DataElement
    vr: str
    sequence: bool


class LevelWalk:
    """One data-set level walked once, for everything verification asks of it: each element's
    VR (as :func:`element_vr` resolves it), whether it is a sequence, its items, whether it is
    signable. Built in one pass over the level; an element pydicom has since converted in
    place (a raw sequence parsed) is looked at again. The level must not otherwise change
    while the walk is used (verification and encoding only read).

    A VR that cannot be resolved (a malformed element) is raised when a caller reaches that
    element, as if it were resolved then: the same error, at the same point of each check.
    """

    __slots__ = (
        "_contains_un", "_failures", "_items", "_signable", "_sorted", "_walks", "ancestors",
        "by_tag", "child_ancestors", "entries", "level",
    )  # fmt: skip

    def __init__(self, walks: Walks, level: Dataset, ancestors: tuple[Dataset, ...]) -> None:
        self.level = level
        self.ancestors = ancestors
        #: The ancestors of this level's sequence items.
        self.child_ancestors = (level, *ancestors)
        self._walks = walks
        #: The elements in the level's own order (the file's), then by tag.
        self.entries: list[WalkEntry] = []
        self.by_tag: dict[int, WalkEntry] = {}
        self._failures: dict[int, Exception] = {}
        self._sorted: list[WalkEntry] | None = None
        self._signable: dict[int, bool] = {}
        self._items: dict[int, list[Dataset]] = {}
        self._contains_un: bool | None = None
        for key in list(level._dict):
            entry = self._resolve(int(key), key)
            self.entries.append(entry)
            self.by_tag[entry.tag] = entry

    def _resolve(self, tag: int, key: BaseTag) -> WalkEntry:
        level = self.level
        elem = level._dict[key]
        vr = elem.VR
        try:
            if vr is None or " or " in vr:
                vr = element_vr(level, key, self.ancestors)
            if vr == "UN":
                sequence = is_sequence(level, key, vr)
                # is_sequence may have parsed a raw sequence, replacing the element.
                elem = stored(level, key, keep_deferred=True)
            else:
                sequence = vr == "SQ"
        except Exception as e:  # raised by check() when a caller reaches this element
            self._failures[tag] = e
            return WalkEntry(tag, key, elem, "", False)
        if not sequence:  # a sequence's signability needs its items: found when asked
            self._signable[tag] = vr != "UN" and is_signable_tag(tag)
        return WalkEntry(tag, key, elem, str(vr), sequence)

    def check(self, entry: WalkEntry) -> WalkEntry:
        """``entry`` as it is now: its resolution error raised, re-resolved if pydicom has
        replaced the element since."""
        if self._failures or self.level._dict.get(entry.key) is not entry.elem:
            return self._recheck(entry)
        return entry

    def _recheck(self, entry: WalkEntry) -> WalkEntry:
        if entry.tag in self._failures:
            raise self._failures[entry.tag]
        if self.level._dict.get(entry.key) is not entry.elem:
            entry = self.by_tag[entry.tag] = self._resolve(entry.tag, entry.key)
            self._sorted = None
            self._signable.pop(entry.tag, None)
            if entry.tag in self._failures:
                raise self._failures[entry.tag]
        return entry

    def failed(self, tag: int) -> bool:
        """The element's VR could not be resolved (:meth:`check` raises why)."""
        return tag in self._failures

    def entry(self, tag: int) -> WalkEntry:
        """The entry of a present element (KeyError otherwise)."""
        return self.check(self.by_tag[tag])

    def has(self, tag: int) -> bool:
        """The element is present at this level."""
        return tag in self.by_tag

    def in_tag_order(self) -> list[WalkEntry]:
        """The entries by ascending tag."""
        if self._sorted is None:
            self._sorted = sorted(self.by_tag.values())
        return self._sorted

    def items(self, entry: WalkEntry) -> list[Dataset]:
        """The items of a sequence element (parsed once)."""
        items = self._items.get(entry.tag)
        if items is None:
            items = self._items[entry.tag] = sequence_items(self.level, entry.key)
        return items

    def item_walks(self, entry: WalkEntry) -> list[LevelWalk]:
        """Walks of the items of a sequence element."""
        return [self._walks.of(item, self.child_ancestors) for item in self.items(entry)]

    def signable(self, tag: int) -> bool:
        """:func:`is_signable` of an element of this level."""
        known = self._signable.get(tag)
        if known is None:
            known = self._signable[tag] = self._is_signable(tag)
        return known

    def _is_signable(self, tag: int) -> bool:
        if not is_signable_tag(tag):
            return False
        entry = self.entry(tag)
        if entry.sequence:
            return not any(walk.contains_un() for walk in self.item_walks(entry))
        return entry.vr != "UN"

    def contains_un(self) -> bool:
        """:func:`contains_un` of this level as a sequence item: an element (recursively) of
        VR UN, searched in the level's own order (the same element ends the search)."""
        if self._contains_un is None:
            self._contains_un = self._find_un()
        return self._contains_un

    def _find_un(self) -> bool:
        for entry in self.entries:
            entry = self.check(entry)
            if entry.sequence:
                if any(walk.contains_un() for walk in self.item_walks(entry)):
                    return True
            elif entry.vr == "UN":
                return True
        return False


class Walks:
    """The :class:`LevelWalk` of every level of one data set, made once per level (and
    ancestors: a VR may depend on them). Lives for one verification or one MAC computation."""

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        self._levels: dict[tuple[int, ...], LevelWalk] = {}

    def of(self, level: Dataset, ancestors: Sequence[Dataset] = ()) -> LevelWalk:
        """The walk of ``level`` under ``ancestors`` (it keeps them alive, so ids stay valid)."""
        key = (id(level), *map(id, ancestors))
        walk = self._levels.get(key)
        if walk is None:
            walk = self._levels[key] = LevelWalk(self, level, tuple(ancestors))
        return walk
