"""RFC 4998 §4.2/§4.3 hash trees: hash data objects, build one binary tree, reduce it per leaf,
and climb a reduced tree back to the root.

A node's value is the hash of its children's values sorted in binary ascending order and
concatenated; a node with a single child takes that child's value unchanged (as Bouncy
Castle's ERS does, so a lone leaf is its own root). Binary trees keep every reduced tree at
one sibling per level: ``ceil(log2 n)`` hashes for ``n`` objects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from dsig.errors import DsigError
from tokens.faults import BadInputError

#: Hash names dsig builds trees with (hashlib names = asn1crypto's DigestAlgorithm names).
TREE_HASHES = ("sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512")
_CHUNK = 1 << 20


class HashTreeError(DsigError, BadInputError, ValueError):
    """A reduced hash tree is empty or its values have the wrong length."""


def digest(name: str, *parts: bytes) -> bytes:
    """``name``(concatenation of ``parts``)."""
    h = hashlib.new(name)
    for part in parts:
        h.update(part)
    return h.digest()


def hash_file(path: Path, name: str) -> bytes:
    """The hash of a file's stored bytes, read in 1 MiB chunks (bounded memory)."""
    h = hashlib.new(name)
    with open(path, "rb") as fp:
        while chunk := fp.read(_CHUNK):
            h.update(chunk)
    return h.digest()


def node_value(name: str, children: Iterable[bytes]) -> bytes:
    """The value of a node over ``children``: sorted, concatenated, hashed (one child: itself)."""
    values = sorted(children)
    if not values:
        raise HashTreeError("a hash tree node without children")
    if len(values) == 1:
        return values[0]
    return digest(name, *values)


def build(name: str, leaves: Sequence[bytes]) -> tuple[bytes, list[list[list[bytes]]]]:
    """(root, reduced tree of each leaf) of a binary tree over ``leaves`` (in that order).

    A reduced tree is a list of PartialHashtrees: the first holds the leaf and its sibling,
    each further one the sibling of the node reached (levels without a sibling are left out).
    """
    if not leaves:
        raise HashTreeError("no data objects to build a hash tree over")
    reduced: list[list[list[bytes]]] = [[[leaf]] for leaf in leaves]
    positions = list(range(len(leaves)))  # each leaf's node index at the current level
    level = list(leaves)
    first = True
    while len(level) > 1 or first:
        for leaf, pos in enumerate(positions):
            sibling = pos ^ 1
            if sibling < len(level):
                if first:
                    reduced[leaf][0].append(level[sibling])
                else:
                    reduced[leaf].append([level[sibling]])
        level = [node_value(name, level[i : i + 2]) for i in range(0, len(level), 2)]
        positions = [pos // 2 for pos in positions]
        first = False
    return level[0], reduced


def root_of(name: str, reduced: Sequence[Sequence[bytes]]) -> bytes:
    """Climb a reduced tree (RFC 4998 §4.3): the first list gives the first node; each further
    list holds the siblings of the node reached so far."""
    if not reduced or not reduced[0]:
        raise HashTreeError("the reduced hash tree is empty")
    size = hashlib.new(name).digest_size
    if any(len(v) != size for part in reduced for v in part):
        raise HashTreeError(f"a reduced hash tree value is not a {name} hash")
    value = node_value(name, reduced[0])
    for siblings in reduced[1:]:
        if not siblings:
            raise HashTreeError("an empty PartialHashtree")
        value = node_value(name, [value, *siblings])
    return value
