"""Option groups (dsig.cli._groups): options shared by several commands are declared once,
and each command still offers exactly its own options, with the same names and help."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
import typer.main
from typer.testing import CliRunner

from dsig.cli import _full_app
from dsig.cli._groups import group_options, option_group


@dataclasses.dataclass(frozen=True)
class _Pair:
    alpha: int = 1
    beta: str | None = None


_DECLARED = {
    "alpha": (Annotated[int, typer.Option(help="the alpha")], 1),
    "beta": (Annotated[str | None, typer.Option(help="the beta")], None),
}


def _toy() -> typer.Typer:
    app = typer.Typer(add_completion=False)

    @app.command()
    @option_group("pair", _Pair, _DECLARED, ("alpha", "beta"))
    def run(
        path: Annotated[Path, typer.Argument(help="a file")],
        first: Annotated[bool, typer.Option("--first")] = False,
        *,
        pair: _Pair,
        last: Annotated[str, typer.Option("--last")] = "z",
    ) -> None:
        typer.echo(f"{path} {first} {pair} {last}")

    return app


def test_group_values_arrive_as_one_object() -> None:
    r = CliRunner().invoke(_toy(), ["f.dcm", "--beta", "b", "--alpha", "7", "--last", "q"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == "f.dcm False _Pair(alpha=7, beta='b') q"
    r = CliRunner().invoke(_toy(), ["f.dcm"])
    assert r.output.strip() == "f.dcm False _Pair(alpha=1, beta=None) z"


def test_group_options_stand_where_the_target_stood() -> None:
    command = typer.main.get_command(_toy())
    names = [p.name for p in command.params]
    assert names == ["path", "first", "alpha", "beta", "last"]
    helps = {p.name: getattr(p, "help", None) for p in command.params}
    assert helps["alpha"] == "the alpha" and helps["beta"] == "the beta"


def _options(*words: str) -> list[str]:
    command = typer.main.get_command(_full_app())
    for word in words:
        command = command.commands[word]  # type: ignore[attr-defined]
    return [o for p in command.params for o in p.opts if o.startswith("--")]


_TRUST = [
    "--require", "--format-old", "--integrity-only", "--trust-store", "--untrusted", "--crl",
    "--ocsp", "--revocation", "--online", "--at", "--tsa-trust-store", "--allow-weak",
    "--strict", "--require-coverage", "--timestamp-failures-warn", "--policy-file", "--policy",
    "--require-explicit-policy", "--inhibit-policy-mapping", "--inhibit-any-policy",
]  # fmt: skip
_TSA = [
    "--ts-hash", "--ts-nonce", "--ts-cert-req", "--ts-policy", "--tsa-timeout", "--tsa-retries",
    "--tsa-user", "--tsa-password-env", "--tsa-password-file",
]  # fmt: skip
_SECRETS = ["--password-file", "--password-env", "--no-password", "--pin-file", "--pin-env"]


def _run_of(options: list[str], wanted: list[str]) -> list[str]:
    """The options of ``wanted`` in the order the command lists them."""
    return [o for o in options if o in wanted]


def test_commands_offer_their_shared_options_in_order() -> None:
    assert _run_of(_options("verify"), _TRUST) == _TRUST
    assert _run_of(_options("explain"), _TRUST) == _TRUST
    serve = [o for o in _TRUST if o not in ("--policy", "--require-explicit-policy",
             "--inhibit-policy-mapping", "--inhibit-any-policy")]  # fmt: skip
    serve.remove("--policy-file")
    serve.insert(serve.index("--timestamp-failures-warn"), "--policy-file")
    assert _run_of(_options("serve"), _TRUST) == serve
    manifest = ["--format-old", "--integrity-only", "--trust-store", "--untrusted", "--crl",
                "--ocsp", "--revocation", "--online", "--at", "--tsa-trust-store",
                "--allow-weak", "--strict", "--policy-file"]  # fmt: skip
    assert _run_of(_options("manifest", "verify"), _TRUST) == manifest
    for words in (("sign",), ("manifest", "create"), ("timestamp", "add")):
        assert _run_of(_options(*words), _TSA) == _TSA, words
    assert _run_of(_options("timestamp", "query"), _TSA) == _TSA[:4]
    for words in (("sign",), ("manifest", "create"), ("send",)):
        assert _run_of(_options(*words), _SECRETS) == _SECRETS, words


def test_after_keeps_a_commands_own_order() -> None:
    app = typer.Typer(add_completion=False)

    @app.command()
    @option_group("pair", _Pair, _DECLARED, ("alpha", "beta"), after={"beta": "middle"})
    def run(
        *,
        pair: _Pair,
        middle: Annotated[int, typer.Option("--middle")] = 0,
        last: Annotated[int, typer.Option("--last")] = 0,
    ) -> None:
        typer.echo(f"{pair} {middle} {last}")

    command = typer.main.get_command(app)
    assert [p.name for p in command.params] == ["alpha", "middle", "beta", "last"]
    r = CliRunner().invoke(app, ["--beta", "x", "--middle", "2"])
    assert r.output.strip() == "_Pair(alpha=1, beta='x') 2 0"


def test_verify_lists_its_options_as_before() -> None:
    options = _options("verify")
    assert options.index("--allow-weak") + 1 == options.index("--recursive")
    assert options.index("--recursive") + 1 == options.index("--strict")
    assert options.index("--sha256") + 1 == options.index("--policy-file")
    manifest = _options("manifest", "verify")
    assert manifest.index("--strict") + 1 == manifest.index("--jobs")
    assert manifest.index("--jobs") + 1 == manifest.index("--policy-file")


_SIGNER = ["--cert", "--mac", "--profile", "--purpose", "--force-certificate", "--policy-file"]


def test_signing_commands_list_the_signer_options_as_before() -> None:
    for words in (("sign",), ("send",)):
        assert _run_of(_options(*words), _SIGNER) == _SIGNER, words
    assert _run_of(_options("manifest", "create"), _SIGNER) == _SIGNER[:3]
    sign = _options("sign")
    assert sign[sign.index("--key") + 1 : sign.index("--key") + 4] == _SIGNER[:3]
    assert sign.index("--item") + 1 == sign.index("--purpose")
    assert sign.index("--jobs") + 1 == sign.index("--force-certificate")
    send = _options("send")
    assert send.index("--profile") + 1 == send.index("--purpose")
    assert send.index("--verbose") + 1 == send.index("--force-certificate")


def test_group_options_declares_all_or_the_named() -> None:
    pair_options = group_options("pair", _Pair, _DECLARED)

    def names(decorate: Callable[[Callable[..., None]], Callable[..., None]]) -> list[str]:
        app = typer.Typer(add_completion=False)

        @app.command()
        @decorate
        def run(*, pair: _Pair) -> None:
            typer.echo(str(pair))

        return [p.name or "" for p in typer.main.get_command(app).params]

    assert names(pair_options()) == ["alpha", "beta"]
    assert names(pair_options("beta")) == ["beta"]


def test_every_command_group_has_the_same_settings() -> None:
    """dsig.cli._common.command_group: each group shows its usage without a command and
    takes -h for --help, also when run on its own."""
    from dsig.cli import _GROUPS, _load

    for name, (module, attribute) in _GROUPS.items():
        if name == "serve":  # a command with sub-commands: runs without one
            continue
        group = _load(module, attribute)
        r = CliRunner().invoke(group, ["-h"])
        assert r.exit_code == 0 and "Usage:" in r.output, name
        assert CliRunner().invoke(group, []).exit_code == 2, name
