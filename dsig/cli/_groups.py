"""Option groups: options several commands share, declared once and received as one value.

typer reads a command's options from its signature, so a shared set of options would be a
copy of the same parameters in every command. :func:`option_group` writes them into the
signature instead, in place of one keyword parameter that receives them as a dataclass.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

R = TypeVar("R")

#: An option's declaration (``Annotated[type, typer.Option(...)]``) and its default.
Declared = Mapping[str, tuple[object, object]]


def option_group(
    target: str, group: Callable[..., Any], declared: Declared, names: Sequence[str]
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Declare the options ``names`` (from ``declared``) on a typer command where its
    keyword-only parameter ``target`` stands; the command receives ``group(**values)``
    there. Options keep their names, help, defaults and place in ``--help``."""

    def declare(command: Callable[..., R]) -> Callable[..., R]:
        signature = inspect.signature(command, eval_str=True)
        params = list(signature.parameters.values())
        at = [p.name for p in params].index(target)
        added = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=declared[name][1],
                annotation=declared[name][0],
            )
            for name in names
        ]  # fmt: skip

        @functools.wraps(command)
        def run(*args: object, **kwargs: object) -> R:
            given = {name: kwargs.pop(name) for name in names if name in kwargs}
            return command(*args, **{target: group(**given)}, **kwargs)

        rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params[at + 1 :]]
        shown = [*params[:at], *added, *rest]
        run.__annotations__ = {p.name: p.annotation for p in shown}
        run.__annotations__["return"] = signature.return_annotation
        run.__signature__ = signature.replace(parameters=shown)  # type: ignore[attr-defined]
        del run.__wrapped__  # typer must see the declared signature, not the command's
        return run

    return declare
