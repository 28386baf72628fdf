"""dsig's pydantic-free option conversion (dsig.cli._params) against typer's own.

Every parameter of every top-level command, given valid and invalid values, must convert to
what typer's converter gives, or fail with the same message."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param
from typer.core import _TyperParameter

from dsig.cli import _COMMANDS, _new_app, _register
from dsig.cli._params import _FastParam


def _samples(annotation: Any, tmp: Path) -> list[Any]:
    existing = tmp / "there.dcm"
    existing.write_bytes(b"x")
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        values = [m.value for m in annotation]
        return [*values, *(v.upper() for v in values), "bogus", "", next(iter(annotation))]
    by_type: dict[Any, list[Any]] = {
        str: ["abc", "", "-", "é", "a b"],
        Path: ["x.dcm", "", "-", str(existing), str(tmp), "/no/such/dir/f", Path("p")],
        int: ["5", "0", "-1", "+3", "1.0", " 7", "abc", "", "1_000", 4, "99999999999999999999"],
        float: ["1.5", "2", "-0.5", "1e3", "x", "", ".5", 2.0, "nan"],
        bool: ["true", "no", "", "maybe", True],
    }
    return by_type[annotation]


def _convert(runtime: Any, value: Any, param: Any, ctx: Any) -> tuple[str, Any]:
    try:
        return "ok", runtime._coerce_value(value, param=param, ctx=ctx)
    except BadParameter as e:
        return "error", e.format_message()


def _commands() -> list[tuple[str, Any]]:
    out = []
    for name in _COMMANDS:
        app = _new_app()
        _register(app, name)
        group = typer.main.get_command(app)
        out.append((name, group.commands[name]))  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize(("name", "command"), _commands(), ids=[n for n, _ in _commands()])
def test_fast_conversion_equals_typers(name: str, command: Any, tmp_path: Path) -> None:
    ctx = command.make_context(name, ["--help"], resilient_parsing=True)
    params = command.get_params(ctx)
    fast = [p for p in params if isinstance(p._runtime_param, _FastParam)]
    assert fast, f"{name}: no parameter converts without pydantic"
    compared = 0
    for param in fast:
        assert isinstance(param, _TyperParameter)
        desc = param.type_descriptor
        if desc.is_tuple:
            continue  # always typer's (nothing to compare)
        item = desc.annotation.__args__[0] if desc.is_list else desc.annotation
        typers = build_runtime_param(desc)
        for sample in _samples(item, tmp_path):
            value = (sample, sample) if desc.is_list else sample
            got = _convert(param._runtime_param, value, param, ctx)
            want = _convert(typers, value, param, ctx)
            assert repr(got) == repr(want), (name, param.name, value)  # repr: nan == nan
            compared += 1
    assert compared >= len(fast)


def test_verify_converts_its_common_options_without_pydantic(tmp_path: Path) -> None:
    """The values of a common ``dsig verify`` are converted by dsig's converter alone."""
    app = _new_app()
    _register(app, "verify")
    command = typer.main.get_command(app).commands["verify"]  # type: ignore[attr-defined]
    args = ["--integrity-only", "--read", "file", "--jobs", "2", "--report", "r.html", "f.dcm"]
    ctx = command.make_context("verify", args)
    assert ctx.params["paths"] == ["f.dcm"]
    assert ctx.params["jobs"] == 2
    assert ctx.params["report_html"] == Path("r.html")
    assert ctx.params["read"].value == "file"
    used = [p for p in command.get_params(ctx) if "_dsig_fallback" in p.__dict__]
    assert used == [], [p.name for p in used]
