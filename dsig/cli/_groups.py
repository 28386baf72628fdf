"""Option groups: options several commands share, declared once and received as one value.

typer reads a command's options from its signature, so a shared set of options would be a
copy of the same parameters in every command. :func:`option_group` writes them into the
signature instead, in place of one keyword parameter that receives them as a dataclass.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

R = TypeVar("R")

#: An option's declaration (``Annotated[type, typer.Option(...)]``) and its default.
Declared = Mapping[str, tuple[object, object]]


def option_group(
    target: str,
    group: Callable[..., Any],
    declared: Declared,
    names: Sequence[str],
    after: Mapping[str, str] | None = None,
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Declare the options ``names`` (from ``declared``) on a typer command where its
    keyword-only parameter ``target`` stands; the command receives ``group(**values)``
    there. ``after`` moves the options from one of ``names`` on to behind a parameter of the
    command (``{"strict": "recursive"}``), so that ``--help`` keeps a command's own order."""

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
        shown = [*params[:at], *_placed(added, rest, after or {})]
        run.__annotations__ = {p.name: p.annotation for p in shown}
        run.__annotations__["return"] = signature.return_annotation
        run.__signature__ = signature.replace(parameters=shown)  # type: ignore[attr-defined]
        del run.__wrapped__  # typer must see the declared signature, not the command's
        return run

    return declare


class GroupOptions(Protocol):
    """``options(*names, after=...)``: the decorator that declares the options ``names`` of
    one group (all of them when none are named); see :func:`group_options`."""

    def __call__(
        self, *names: str, after: Mapping[str, str] | None = None
    ) -> Callable[[Callable[..., R]], Callable[..., R]]: ...


def group_options(target: str, group: Callable[..., Any], declared: Declared) -> GroupOptions:
    """The decorator factory of one option group: ``options(*names, after=...)`` declares
    the options ``names`` of ``declared`` (all when none are named) in place of the keyword-only
    parameter ``target``, which receives ``group(**values)`` (see :func:`option_group`)."""

    def options(
        *names: str, after: Mapping[str, str] | None = None
    ) -> Callable[[Callable[..., R]], Callable[..., R]]:
        return option_group(target, group, declared, names or tuple(declared), after)

    return options


def _placed(
    added: list[inspect.Parameter], rest: list[inspect.Parameter], after: Mapping[str, str]
) -> list[inspect.Parameter]:
    """``added`` then ``rest``, with each run of ``added`` that starts at a key of ``after``
    moved behind the parameter of ``rest`` it names."""
    runs: list[list[inspect.Parameter]] = [[]]
    for p in added:
        if p.name in after:
            runs.append([])
        runs[-1].append(p)
    behind = {after[run[0].name]: run for run in runs[1:]}
    out = list(runs[0])
    for p in rest:
        out += [p, *behind.pop(p.name, [])]
    if behind:
        raise ValueError(f"option_group: no parameter {', '.join(behind)} to place options after")
    return out
