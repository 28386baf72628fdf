"""``dsig verify``, ``dsig inspect``, ``dsig remove`` and ``dsig purposes``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dsig.cli._common import fail, guard_output, input_output, operational_errors
from dsig.cli._read_options import ReadChoice, ReadOpt, ReadXferChoice, ReadXferOpt, read_options
from dsig.cli._trust_options import (
    AllowWeakOpt,
    AtOpt,
    CertPolicyOpt,
    CrlOpt,
    FormatOldOpt,
    InhibitAnyPolicyOpt,
    InhibitPolicyMappingOpt,
    IntegrityOnlyOpt,
    OcspOpt,
    OnlineOpt,
    PolicyFileOpt,
    RequireCoverageOpt,
    RequireExplicitPolicyOpt,
    RequireOpt,
    RevocationOpt,
    StrictOpt,
    TimestampFailuresWarnOpt,
    TrustStoreOpt,
    TsaTrustStoreOpt,
    UntrustedOpt,
    build_verify_options,
)

if TYPE_CHECKING:
    from dsig.report import FileResult


def verify(
    paths: Annotated[list[Path], typer.Argument(help="files (or directories with --recursive)")],
    json_out: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
    require: RequireOpt = None,
    format_old: FormatOldOpt = False,
    integrity_only: IntegrityOnlyOpt = False,
    trust_store: TrustStoreOpt = None,
    untrusted: UntrustedOpt = None,
    crl: CrlOpt = None,
    ocsp: OcspOpt = None,
    revocation: RevocationOpt = None,
    online: OnlineOpt = False,
    at: AtOpt = None,
    tsa_trust_store: TsaTrustStoreOpt = None,
    allow_weak: AllowWeakOpt = None,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="descend into directories")
    ] = False,
    strict: StrictOpt = False,
    require_coverage: RequireCoverageOpt = None,
    timestamp_failures_warn: TimestampFailuresWarnOpt = False,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, help="worker processes (default: number of cores)"),
    ] = None,
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="stream one JSON object per file, then the summary")
    ] = False,
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
    policy_file: PolicyFileOpt = None,
    policy: CertPolicyOpt = None,
    require_explicit_policy: RequireExplicitPolicyOpt = False,
    inhibit_policy_mapping: InhibitPolicyMappingOpt = False,
    inhibit_any_policy: InhibitAnyPolicyOpt = False,
    read: ReadOpt = ReadChoice.auto,
    read_xfer: ReadXferOpt = ReadXferChoice.auto,
    force: Annotated[
        bool, typer.Option("--force", help="replace an existing --report or --csv file")
    ] = False,
) -> None:
    """Verify every signature in DICOM files. Exit 0 valid, 1 invalid, 3 indeterminate, 4 error.

    Directories (with --recursive) are verified in parallel; files found there that do not
    parse as DICOM are skipped and counted. A summary table ends the human output. A
    present certified timestamp that does not verify fails its signature unless
    --timestamp-failures-warn. --report and --csv never replace an input, nor an existing
    file without --force.
    """
    options = build_verify_options(
        require=require,
        format_old=format_old,
        integrity_only=integrity_only,
        trust_store=trust_store,
        untrusted=untrusted,
        crl=crl,
        ocsp=ocsp,
        revocation=revocation,
        online=online,
        at=at,
        allow_weak=allow_weak,
        tsa_trust_store=tsa_trust_store,
        strict=strict,
        require_coverage=require_coverage,
        policy_file=policy_file,
        policies=policy,
        require_explicit_policy=require_explicit_policy,
        inhibit_policy_mapping=inhibit_policy_mapping,
        inhibit_any_policy=inhibit_any_policy,
        timestamp_failures_warn=timestamp_failures_warn,
    )
    options = dataclasses.replace(options, read=read_options(read, read_xfer), file_sha256=sha256)
    if json_out and jsonl:
        raise fail("--json and --jsonl exclude each other", 2)
    from dsig.cli.batch import run_verify

    raise typer.Exit(
        run_verify(
            paths,
            options,
            force=force,
            recursive=recursive,
            jobs=jobs,
            json_out=json_out,
            jsonl=jsonl,
            report=report_html,
            csv_out=csv_out,
            render=_print_human,
        )
    )


def _echo(line: str) -> None:
    """One output line; values from files are escaped so they cannot forge lines."""
    from dsig.printable import printable

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
            + (f", purpose {sig.purpose['code']} {sig.purpose['meaning']}" if sig.purpose else "")
        )
        _echo(
            f"    covers {len(sig.signed_tags)} elements, {len(sig.unsigned_tags)} present "
            f"elements not covered; profiles: {', '.join(sig.profiles) or 'none'}"
        )
        if sig.timestamp:
            ts = sig.timestamp
            _echo(f"    timestamp {ts.get('indication')}: {ts.get('time')} by {ts.get('tsa')}")
        if sig.trust.revocation:
            _echo(f"    revocation: {sig.trust.revocation_line()}")
        lines = [(f.code, f.message) for f in sig.findings]
        lines += [(f.code, f.message) for f in sig.trust.findings]
        for code, message in lines:
            _echo(f"    {code}: {message}")
    for finding in result.findings:
        _echo(f"  {finding.code}: {finding.message}")
    from dsig.verifier import partial_coverage

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
    from dsig.dicomio import read_dicom
    from dsig.inspect import describe
    from dsig.verifier import dump_mac_stream
    from dsig.writer import atomic_output

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
        raise fail(str(e)) from None
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
    in_place: Annotated[
        bool, typer.Option("--in-place", help="replace the input (atomically)")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing output")] = False,
    read: ReadOpt = ReadChoice.auto,
    read_xfer: ReadXferOpt = ReadXferChoice.auto,
) -> None:
    """Remove one signature by UID, or all of them (main and nested)."""
    from dsig.dicomio import read_dicom
    from dsig.remove import remove_all, remove_signature
    from dsig.writer import save, target_encoding

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
        raise fail(str(e)) from None
    _echo(f"{message}: {src} -> {dst}")


def purposes(
    json_out: Annotated[bool, typer.Option("--json", help="machine-readable table")] = False,
) -> None:
    """Signature purpose codes (PS3.16 CID 7007, ASTM-sigpurpose)."""
    from dsig.purposes import PURPOSES, SCHEME

    if json_out:
        typer.echo(
            json.dumps([{"code": c, "scheme": SCHEME, "meaning": m} for c, m in PURPOSES.items()])
        )
        return
    for code, meaning in PURPOSES.items():
        typer.echo(f"{code:>3}  {meaning}")
