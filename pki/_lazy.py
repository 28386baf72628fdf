"""Lazy exports for a package's ``__init__`` (PEP 562): a public name's module is imported on
first use, so ``import dsig`` / ``import pki`` stays cheap. Used by pki, dsig and its packages.

A package names its exports once, as the ``from module import name`` lines of its
``if TYPE_CHECKING:`` block (what type checkers and readers see); the map from name to module
is read from that block, on the first lookup, so the list is never written twice.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_MAPS: dict[str, dict[str, tuple[str, str]]] = {}


def lazy_exports(package: str) -> Callable[[str], Any]:
    """The module ``__getattr__`` for ``package``: each name its ``TYPE_CHECKING`` block
    imports is looked up once in its module, then kept in the package's namespace."""

    def attribute(name: str) -> Any:
        source = _exports(package).get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, original = source
        value = getattr(importlib.import_module(module), original)
        setattr(sys.modules[package], name, value)
        return value

    return attribute


def exported(package: str) -> dict[str, str]:
    """``{name: module}`` of the lazy exports of ``package`` (imported already)."""
    return {name: module for name, (module, _original) in _exports(package).items()}


def _exports(package: str) -> dict[str, tuple[str, str]]:
    found = _MAPS.get(package)
    if found is None:
        path = sys.modules[package].__file__
        if path is None:  # a namespace package: nothing to read the exports from
            raise ImportError(f"{package} has no __init__ file to read its exports from")
        found = _MAPS[package] = _type_checking_imports(ast.parse(Path(path).read_text()))
    return found


def _type_checking_imports(tree: ast.Module) -> dict[str, tuple[str, str]]:
    """``{exported name: (module, name there)}`` of the ``from m import n`` lines under the
    module's top-level ``if TYPE_CHECKING:``."""
    out: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if not (isinstance(node, ast.If) and isinstance(node.test, ast.Name)):
            continue
        if node.test.id != "TYPE_CHECKING":
            continue
        for stmt in node.body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
                for alias in stmt.names:
                    out[alias.asname or alias.name] = (stmt.module, alias.name)
    return out
