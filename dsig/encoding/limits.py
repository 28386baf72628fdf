"""Parser limits: a crafted file must not exhaust memory or time.

Every limit hit raises :class:`LimitExceededError` (a :class:`DicomFormatError`, so the CLI
reports it on one line and exits 4). The defaults are far above what real objects need: SR
content trees rarely nest more than a dozen levels, objects rarely carry more than a handful
of signatures, and the element budget allows multi-frame objects with huge functional-group
sequences. They also bound hostile input (issue 13): one verification of any file of 10 MB or
less stays within a second or two and ~256 MiB on a 2-core machine, because the elements a
file may hold grow with its size (:attr:`ParseLimits.bytes_per_element`: a parsed element
costs microseconds and a kilobyte, its bytes on disk as few as 8) and a deflated data set,
held in memory, inflates to at most :attr:`ParseLimits.max_inflated_bytes`. A real file
denser than that (a small SR of some 100,000 elements) needs a larger ``base_elements``.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from dsig.errors import DicomFormatError, OptionsError

DEFLATED_EXPLICIT_LE = "1.2.840.10008.1.2.1.99"


class LimitExceededError(DicomFormatError):
    """A parser limit was hit; the message names the limit and its value."""


@dataclass(frozen=True)
class ParseLimits:
    """Bounds on the work of reading and walking one DICOM file."""

    #: Sequence nesting depth (the main data set is depth 0; its sequences' items depth 1).
    max_depth: int = 64
    #: Digital Signatures Sequence items in the whole instance (all levels).
    max_signatures: int = 128
    #: Data elements and items visited while checking the file (total work of one walk).
    max_elements: int = 2_000_000
    #: Within ``max_elements``: beyond the first ``base_elements``, each element must be paid
    #: for by ``bytes_per_element`` bytes of the file (its size on disk, deflated or not). An
    #: 8-byte empty element or item is the densest hostile input; a 10 MB file may hold
    #: 50,000 + 39,000 elements (a second or two, ~100 MiB), a 600 MB multi-frame object the
    #: full ``max_elements``.
    base_elements: int = 50_000
    bytes_per_element: int = 256
    #: What a sequence item (or the data set itself) counts for against the element
    #: allowance: reading one builds a data set, about twice the time of an element, so an
    #: item flood gets half as many (its elements still count for one each).
    item_weight: int = 2
    #: Bytes a deflated data set may inflate to (it is inflated in memory, in bounded steps,
    #: and refused as soon as it passes this; its values are read with it: about twice this
    #: in memory).
    max_inflated_bytes: int = 64 << 20
    #: Verification work: signatures x depth-weighted elements (an element counts once per
    #: enclosing sequence level plus once, which is what the MAC encoder's signability checks
    #: cost), about 0.6 microseconds each on a 2-core machine. Like the element allowance it
    #: grows with the file: ``base_work`` plus one per ``bytes_per_work`` bytes, at most
    #: ``max_work``. A 10 MB file gets 1.6 M (about a second: 128 signatures over 80,000
    #: elements took 12 s, issue 13), a 5,000-frame enhanced object with two signatures needs
    #: a few million and gets them from its size.
    max_work: int = 32_000_000
    base_work: int = 1_000_000
    bytes_per_work: int = 16

    def __post_init__(self) -> None:
        for name in (
            "max_depth", "max_signatures", "max_elements", "base_elements", "bytes_per_element",
            "item_weight", "max_inflated_bytes", "max_work", "base_work", "bytes_per_work",
        ):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise OptionsError(f"ParseLimits.{name} must be a positive int, got {value!r}")

    def element_cap(self, input_bytes: int | None) -> int:
        """The elements a file of ``input_bytes`` may hold (None: ``max_elements``)."""
        if input_bytes is None:
            return self.max_elements
        return min(self.max_elements, self.base_elements + input_bytes // self.bytes_per_element)

    def work_cap(self, input_bytes: int | None) -> int:
        """The verification work a file of ``input_bytes`` may need (None: ``max_work``)."""
        if input_bytes is None:
            return self.max_work
        return min(self.max_work, self.base_work + input_bytes // self.bytes_per_work)


DEFAULT_LIMITS = ParseLimits()


class WorkBudget:
    """Counts visited elements against ``ParseLimits.max_elements``."""

    def __init__(self, limits: ParseLimits, input_bytes: int | None = None) -> None:
        self.limits = limits
        self.input_bytes = input_bytes
        self.cap = limits.element_cap(input_bytes)
        self.used = 0
        #: Elements weighted by nesting (depth + 1): the work of one MAC over everything.
        self.weighted = 0

    def spend(self, n: int = 1, *, depth: int = 0) -> None:
        """Account for ``n`` more elements at ``depth``; raises when the budget is exhausted."""
        self.used += n
        self.weighted += n * (depth + 1)
        if self.used > self.cap:
            self._refuse()

    def spend_item(self, *, depth: int = 0) -> None:
        """Account for one item (or data set) at ``depth``: ``ParseLimits.item_weight``
        against the allowance, one element of verification work."""
        self.used += self.limits.item_weight
        self.weighted += depth + 1
        if self.used > self.cap:
            self._refuse()

    def _refuse(self) -> None:
        items = f"; an item counts {self.limits.item_weight} (ParseLimits.item_weight)"
        if self.cap == self.limits.max_elements:
            raise LimitExceededError(
                f"parser limit: more than {self.limits.max_elements} data elements "
                f"(ParseLimits.max_elements{items})"
            )
        raise LimitExceededError(
            f"parser limit: more than {self.cap} data elements in a file of "
            f"{self.input_bytes} bytes (ParseLimits.base_elements + one per "
            f"ParseLimits.bytes_per_element = {self.limits.bytes_per_element} bytes{items})"
        )

    def depth(self, depth: int) -> None:
        """Check a sequence nesting depth."""
        if depth > self.limits.max_depth:
            raise LimitExceededError(
                f"parser limit: sequences nested deeper than {self.limits.max_depth} levels "
                "(ParseLimits.max_depth)"
            )


def check_verification_work(
    signatures: int, weighted: int, limits: ParseLimits, input_bytes: int | None = None
) -> None:
    """Refuse a file whose signatures would each walk too much nested content."""
    cap = limits.work_cap(input_bytes)
    if signatures * weighted > cap:
        grown = "" if input_bytes is None else (
            f" in a file of {input_bytes} bytes (ParseLimits.base_work + one per "
            f"ParseLimits.bytes_per_work = {limits.bytes_per_work} bytes, at most "
            "ParseLimits.max_work)"
        )  # fmt: skip
        raise LimitExceededError(
            f"parser limit: {signatures} signature(s) over {weighted} depth-weighted elements "
            f"exceed {cap}{grown or ' (ParseLimits.max_work)'}"
        )


def check_signature_count(count: int, limits: ParseLimits) -> None:
    """Refuse more signature items than ``limits.max_signatures``."""
    if count > limits.max_signatures:
        raise LimitExceededError(
            f"parser limit: more than {limits.max_signatures} signatures "
            "(ParseLimits.max_signatures)"
        )


def deflated_data_offset(path: Path) -> int | None:
    """Where the data set starts if the file's meta names Deflated Explicit VR LE, else None.

    A minimal scan of the explicit VR little endian group 0002 (pydicom keeps no position).
    """
    try:
        with path.open("rb") as fp:
            head = fp.read(1 << 16)
    except OSError:
        return None
    if head[128:132] != b"DICM":
        return None
    pos, syntax = 132, ""
    while pos + 8 <= len(head):
        group, element = struct.unpack_from("<HH", head, pos)
        if group != 0x0002:
            break
        vr = head[pos + 4 : pos + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR", b"OL", b"OD", b"OF", b"OV"):
            if pos + 12 > len(head):
                return None
            length = struct.unpack_from("<I", head, pos + 8)[0]
            start = pos + 12
        else:
            length = struct.unpack_from("<H", head, pos + 6)[0]
            start = pos + 8
        if element == 0x0010:
            syntax = head[start : start + length].decode("latin-1").rstrip("\x00 ")
        pos = start + length
    return pos if syntax == DEFLATED_EXPLICIT_LE else None


def check_inflated_size(path: Path, data_offset: int, limits: ParseLimits) -> None:
    """Inflate a deflated data set in bounded chunks, refusing it past ``max_inflated_bytes``.

    Nothing is kept: this only measures, so that pydicom's whole-buffer inflate that follows
    cannot be turned into a memory bomb. Corrupt deflate data is left for pydicom to report.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    chunk = 1 << 16
    try:
        with path.open("rb") as fp:
            fp.seek(data_offset)
            while True:
                data = fp.read(chunk)
                if not data:
                    break
                while True:
                    out = inflater.decompress(data, chunk)
                    total += len(out)
                    if total > limits.max_inflated_bytes:
                        raise LimitExceededError(
                            f"parser limit: the deflated data set inflates to more than "
                            f"{limits.max_inflated_bytes} bytes (ParseLimits.max_inflated_bytes)"
                        )
                    if inflater.eof:
                        return
                    data = inflater.unconsumed_tail
                    if not data and len(out) < chunk:
                        break
    except (OSError, zlib.error):
        return
