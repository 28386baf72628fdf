"""``dsig verify``, ``dsig inspect``, ``dsig remove`` and ``dsig purposes``."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dsig.cli._common import fail, guard_output, input_output, operational_errors, with_flag
from dsig.cli._output_options import ForceOpt, InPlaceOpt
from dsig.cli._params import DsigCommand
from dsig.cli._read_options import ReadChoice, ReadOpt, ReadXferChoice, ReadXferOpt, read_options
from dsig.cli._trust_options import ALL_TRUST_OPTIONS, TrustArgs, trust_options

if TYPE_CHECKING:
    from dsig import FileResult, VerifyOptions
    from pki import TrustEvaluator, TrustPolicy


class VerifyCommand(DsigCommand):
    """``dsig verify``, whose ``--jsonl`` takes an optional FILE (typer has no optional
    values): alone, or before another option, it means ``-`` (stdout, as it always did).
    Without ``--jsonl``, ``--resume FILE`` is ``--jsonl FILE --resume``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Give a bare ``--jsonl`` its implied value before parsing."""
        given: list[str] = []
        args = _resume_file(args)
        for n, arg in enumerate(args):
            given.append(arg)
            if arg == "--":
                given += args[n + 1 :]
                break
            if arg == "--jsonl" and (n + 1 == len(args) or args[n + 1].startswith("-")):
                given.append("-")
        return list(super().parse_args(ctx, given))


def _resume_file(args: list[str]) -> list[str]:
    """``--resume FILE`` as ``--jsonl FILE --resume`` when no ``--jsonl`` is given (with one,
    ``--resume`` is the flag and what follows it an input)."""
    options = args[: args.index("--")] if "--" in args else args
    if any(a == "--jsonl" or a.startswith("--jsonl=") for a in options):
        return args
    for n, arg in enumerate(options):
        if arg == "--resume" and n + 1 < len(options) and not options[n + 1].startswith("-"):
            return [*args[:n], "--jsonl", args[n + 1], "--resume", *args[n + 2 :]]
    return args


@trust_options(*ALL_TRUST_OPTIONS, after={"strict": "recursive", "policy_file": "sha256"})
def verify(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="files, directories (with --recursive) or fsspec URLs (s3://bucket/prefix)"
        ),
    ],
    json_out: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
    *,
    trust: TrustArgs,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="descend into directories")
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, help="worker processes (default: number of cores)"),
    ] = None,
    jsonl: Annotated[
        str | None,
        typer.Option(
            "--jsonl",
            metavar="[FILE]",
            help="one JSON object per file, then the summary: to stdout, or to FILE (a journal "
            "that --resume continues)",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            metavar="[FILE]",
            help="with --jsonl FILE (or as --resume FILE): skip the files it records, append",
        ),
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", metavar="tcp://HOST:PORT", help="run on a Dask scheduler"),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option("--cluster", metavar="local:N", help="run on a local Dask cluster"),
    ] = None,
    report_html: Annotated[
        Path | None, typer.Option("--report", help="write a self-contained HTML audit report")
    ] = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="write one CSV row per signature (and per file)")
    ] = None,
    sha256: Annotated[
        bool,
        typer.Option(
            "--sha256", help="hash each file (sha256 in --json/--jsonl; on with --report/--csv)"
        ),
    ] = False,
    read: ReadOpt = ReadChoice.auto,
    read_xfer: ReadXferOpt = ReadXferChoice.auto,
    force: Annotated[
        bool, typer.Option("--force", help="replace an existing --report or --csv file")
    ] = False,
    evidence: Annotated[
        Path | None,
        typer.Option(
            "--evidence",
            help="directory of RFC 4998 evidence records (dsig evidence create): a proven "
            "time of existence validates the signatures at that moment",
        ),
    ] = None,
) -> None:
    """Verify every signature in DICOM files. Exit 0 valid, 1 invalid, 3 indeterminate, 4 error.

    Directories and URL prefixes (with --recursive) are verified in parallel (--jobs, or Dask
    with --scheduler/--cluster); files found there that do not parse as DICOM are skipped and
    counted. --jsonl FILE --resume continues a stopped audit. A summary table ends the human
    output. A present certified timestamp that does not verify fails its signature unless
    --timestamp-failures-warn. --report and --csv never replace an input, nor an existing
    file without --force.
    """
    options = verify_options({**locals(), **dataclasses.asdict(trust)})
    if json_out and jsonl:
        raise fail("--json and --jsonl exclude each other", 2)
    from dsig.cli.batch import Distribution, run_verify

    raise typer.Exit(
        run_verify(
            paths,
            options,
            force=force,
            recursive=recursive,
            distribution=Distribution(jobs, scheduler, cluster),
            json_out=json_out,
            jsonl=jsonl,
            resume=resume,
            report=report_html,
            csv_out=csv_out,
            render=_print_human,
        )
    )


def verify_options(
    params: dict[str, Any], evaluator: Callable[[TrustPolicy], TrustEvaluator] | None = None
) -> VerifyOptions:
    """The VerifyOptions ``dsig verify`` builds from its parsed parameters (by name), so that
    other front ends taking "the options of dsig verify" verify exactly alike."""
    options = TrustArgs.of(params).verify_options(evaluator)
    options = dataclasses.replace(
        options,
        read=read_options(params["read"], params["read_xfer"]),
        file_sha256=bool(params.get("sha256", False)),
    )
    evidence: Path | None = params.get("evidence")
    if evidence is not None:
        if options.integrity_only:
            raise fail("--evidence proves a moment for trust: not with --integrity-only", 2)
        if not evidence.exists():
            raise fail(f"--evidence {evidence} does not exist", 4)
        options = dataclasses.replace(options, evidence=evidence)
    return options


def verify_options_from_args(
    args: list[str], evaluator: Callable[[TrustPolicy], TrustEvaluator] | None = None
) -> VerifyOptions:
    """The VerifyOptions of ``dsig verify ARGS FILE``: ``args`` are parsed by dsig verify's
    own option parser (a usage error exits 2 with one line)."""
    from typer._click.exceptions import ClickException  # typer vendors click

    single = typer.Typer()
    single.command()(verify)
    command = typer.main.get_command(single)
    try:
        ctx = command.make_context("dsig verify", [*args, "--", "FILE"])
    except ClickException as e:
        raise fail(f"dsig verify arguments: {e.format_message()}", 2) from None
    return verify_options(ctx.params, evaluator)


def _echo(line: str) -> None:
    """One output line; values from files are escaped so they cannot forge lines."""
    from dsig import printable

    typer.echo(printable(line))


def _print_human(result: FileResult) -> None:
    _echo(f"{result.indication.value:<13} {result.path}")
    if result.error:
        _echo(f"  error: {result.error}")
    for n, sig in enumerate(result.signatures, 1):
        where = sig.location or "main data set"
        _echo(
            f"  signature #{n} {sig.uid} ({where}): {sig.indication.value}; "
            f"integrity {sig.integrity.value}, trust {sig.trust.indication.value}"
        )
        _echo(
            f"    MAC {sig.mac_algorithm}, signed {sig.datetime}, by {sig.signer}"
            + (f", purpose {sig.purpose.code} {sig.purpose.meaning}" if sig.purpose else "")
        )
        _echo(
            f"    covers {len(sig.signed_tags)} elements, {len(sig.unsigned_tags)} present "
            f"elements not covered; profiles: {', '.join(sig.profiles) or 'none'}"
        )
        if sig.timestamp is not None:
            ts = sig.timestamp
            when = ts.time.isoformat() if ts.time else None
            _echo(f"    timestamp {ts.indication.value}: {when} by {ts.tsa}")
        if sig.trust.revocation:
            _echo(f"    revocation: {sig.trust.revocation_line()}")
        lines = [(f.code, with_flag(f.message, f)) for f in sig.findings]
        lines += [(f.code, with_flag(f.message, f)) for f in sig.trust.findings]
        for code, message in lines:
            _echo(f"    {code}: {message}")
    for finding in result.findings:
        _echo(f"  {finding.code}: {with_flag(finding.message, finding)}")
    proof = result.evidence.result if result.evidence is not None else None
    if proof is not None and result.evidence is not None and proof.status.value == "PROVEN":
        when = proof.proven_time.isoformat() if proof.proven_time else None
        _echo(f"  evidence: PROVEN, the file existed at {when} "
              f"({len(proof.stamps)} timestamp(s), record {result.evidence.record})")  # fmt: skip
    from dsig import partial_coverage

    partial = partial_coverage(result)
    shown = {"COVERAGE_INCOMPLETE", "ITEM_SIGNATURES_ONLY"}
    if partial and not any(f.code in shown for f in result.findings):
        _echo(f"  warning: {partial} (--require-coverage all fails such files)")


def inspect(
    path: Annotated[Path, typer.Argument(help="DICOM file")],
    json_out: Annotated[bool, typer.Option("--json", help="machine-readable listing")] = False,
    dump_mac: Annotated[
        tuple[str, Path] | None,
        typer.Option(help="UID OUT: write the MAC stream of that signature"),
    ] = None,
    format_old: Annotated[
        bool, typer.Option("--format-old", help="use the pre-3.5.4 format for --dump-mac")
    ] = False,
    read: ReadOpt = ReadChoice.auto,
    read_xfer: ReadXferOpt = ReadXferChoice.auto,
    force: Annotated[
        bool, typer.Option("--force", help="replace an existing --dump-mac file")
    ] = False,
) -> None:
    """List the signatures of a file without judging them."""
    from dsig import atomic_output, describe, dump_mac_stream, read_dicom

    if dump_mac is not None:
        guard_output(dump_mac[1], inputs=[path], force=force, what="--dump-mac")
    try:
        ds = read_dicom(path, read=read_options(read, read_xfer))
        if dump_mac is not None:
            uid, out = dump_mac
            with atomic_output(out) as fp:
                dump_mac_stream(ds, uid, [fp.write], old_format=format_old)
            _echo(f"wrote the MAC stream of {uid} to {out}")
            return
        listing = describe(ds)
    except operational_errors() as e:
        raise fail(e) from None
    if json_out:
        typer.echo(json.dumps({"path": str(path), "signatures": listing}, indent=2))
        return
    if not listing:
        _echo(f"{path}: no signatures")
    for n, sig in enumerate(listing, 1):
        _echo(f"signature #{n}: {sig['uid']}")
        for key in ("location", "mac_id", "mac_algorithm", "mac_transfer_syntax", "datetime",
                    "signer", "purpose", "signed_count", "timestamp"):  # fmt: skip
            _echo(f"  {key}: {sig.get(key)}")


def remove(
    paths: Annotated[list[Path], typer.Argument(help="INPUT OUTPUT (or INPUT with --in-place)")],
    uid: Annotated[str | None, typer.Option(help="remove the signature with this UID")] = None,
    all_: Annotated[bool, typer.Option("--all", help="remove every signature")] = False,
    in_place: InPlaceOpt = False,
    force: ForceOpt = False,
    read: ReadOpt = ReadChoice.auto,
    read_xfer: ReadXferOpt = ReadXferChoice.auto,
) -> None:
    """Remove one signature by UID, or all of them (main and nested)."""
    from dsig import read_dicom, remove_all, remove_signature, save, target_encoding

    if (uid is None) == (not all_):
        raise fail("give exactly one of --uid UID or --all", 2)
    src, dst = input_output(paths, in_place=in_place, force=force)
    try:
        ds = read_dicom(src, read=read_options(read, read_xfer))
        if all_:
            count = remove_all(ds)
            message = f"removed {count} signature(s)"
        else:
            remove_signature(ds, uid or "")
            message = f"removed signature {uid}"
        save(ds, dst, target_encoding(ds, "same", None))
    except operational_errors() as e:
        raise fail(e) from None
    _echo(f"{message}: {src} -> {dst}")


def purposes(
    json_out: Annotated[bool, typer.Option("--json", help="machine-readable table")] = False,
) -> None:
    """Signature purpose codes (PS3.16 CID 7007, ASTM-sigpurpose)."""
    from dsig import PURPOSE_SCHEME, SIGNATURE_PURPOSES

    if json_out:
        typer.echo(
            json.dumps(
                [
                    {"code": c, "scheme": PURPOSE_SCHEME, "meaning": m}
                    for c, m in SIGNATURE_PURPOSES.items()
                ]
            )
        )
        return
    for code, meaning in SIGNATURE_PURPOSES.items():
        typer.echo(f"{code:>3}  {meaning}")
