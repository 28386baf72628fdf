"""Option values converted without pydantic for the common cases (cold start).

typer >= 0.16 converts every parameter through a pydantic ``TypeAdapter``, built on first use:
importing pydantic and building about 25 adapters is about a third of a cold ``dsig verify``
of one file. :class:`DsigCommand` gives each parameter a converter that handles the
unambiguous values itself (a plain string, a path, an enum value spelt exactly, a decimal
integer in range, a value that already has its type) and hands anything else, every invalid
value included, to typer's own converter: results and error messages stay typer's. Where typer
has no such converter (older versions), nothing changes.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from typer._click import Context

try:
    from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
    from typer._param_types import coerce_cli_path
    from typer.core import _TyperParameter
except ImportError:  # typer < 0.16 converts with click alone: nothing to do
    RuntimeParam = None  # type: ignore[assignment,misc]

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
_MISS = object()  # "not an unambiguous value: ask typer"


def _plain(annotation: Any, desc: TypeDescriptor, value: Any, param: Any, ctx: Context) -> Any:
    """``value`` converted to ``annotation`` when that is unambiguous, else ``_MISS``."""
    info = desc.parameter_info
    if info.parser is not None:
        return _MISS
    if annotation is str:
        return value if isinstance(value, str) else _MISS
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        if isinstance(value, annotation):
            return value
        if not info.case_sensitive or ctx.token_normalize_func is not None:
            return _MISS
        for member in annotation:
            if isinstance(member.value, str) and member.value == value:
                return member
        return _MISS
    if annotation is int or annotation is float:
        if info.clamp or isinstance(value, bool):
            return _MISS
        if isinstance(value, annotation):
            number: int | float = value
        elif isinstance(value, str) and (_INT if annotation is int else _FLOAT).fullmatch(value):
            number = annotation(value)
        else:
            return _MISS
        if (info.min is not None and number < info.min) or (
            info.max is not None and number > info.max
        ):
            return _MISS
        return number
    if annotation is Path and info.path_type is None:
        if isinstance(value, str) and value and "\0" not in value:
            value = Path(value)
        if not isinstance(value, Path):
            return _MISS
        # typer's own checks (exists, readable, ...) and messages, given a Path already
        return coerce_cli_path(value, info, path_type=Path, param=param, ctx=ctx)
    return _MISS


if RuntimeParam is not None:

    class _FastParam(RuntimeParam):  # a frozen dataclass of typer's
        """Converts unambiguous values itself and delegates the rest to typer's converter."""

        def _coerce_value(self, value: Any, param: Any, ctx: Context) -> Any:
            desc: TypeDescriptor = param.type_descriptor
            annotation = desc.annotation
            if desc.is_list and isinstance(value, (list, tuple)):
                (item,) = desc.annotation.__args__
                items = [_plain(item, desc, v, param, ctx) for v in value]
                if all(v is not _MISS for v in items):
                    return items
            elif not desc.is_list and not desc.is_tuple:
                plain = _plain(annotation, desc, value, param, ctx)
                if plain is not _MISS:
                    return plain
            fallback = param.__dict__.get("_dsig_fallback")
            if fallback is None:
                fallback = param._dsig_fallback = build_runtime_param(desc)
            return fallback._coerce_value(value, param=param, ctx=ctx)


def _speed_up(params: list[Any]) -> None:
    """Give typer's parameters (not converted yet) the pydantic-free converter."""
    if RuntimeParam is None:
        return
    for param in params:
        if isinstance(param, _TyperParameter) and param._runtime_param is None:
            desc = param.type_descriptor
            if not desc.is_file:
                param._runtime_param = _FastParam(desc.parameter_info, desc.annotation)


class DsigCommand(TyperCommand):
    """A typer command whose parameters convert common values without pydantic."""

    def get_params(self, ctx: Context) -> list[Any]:
        """The parameters, help option included (it is made here, on first use)."""
        params: list[Any] = super().get_params(ctx)
        _speed_up(params)
        return params


class DsigGroup(TyperGroup):
    """A typer group whose own parameters (--version, --help) convert without pydantic."""

    def get_params(self, ctx: Context) -> list[Any]:
        """The parameters, help option included (it is made here, on first use)."""
        params: list[Any] = super().get_params(ctx)
        _speed_up(params)
        return params
