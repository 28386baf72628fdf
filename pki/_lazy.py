"""Lazy exports for a package's ``__init__`` (PEP 562): a public name's module is imported on
first use, so ``import dsig`` / ``import pki`` stays cheap. Used by pki, dsig and dsig.net."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` for ``package``: ``exports`` maps each name to its module.
    A name is looked up once, then kept in the package's namespace."""

    def attribute(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return attribute
