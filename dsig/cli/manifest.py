"""``dsig manifest create`` and ``dsig manifest verify``: one signature over a whole study.

Thin: the work is in :mod:`dsig.manifest`; this module maps options to its API and its
results to text, JSON and exit codes (0 valid and complete, 1 invalid or modified / missing /
extra, 2 usage, 3 indeterminate, 4 operational error).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dsig.cli._common import command_group, fail, operational_errors
from dsig.cli._output_options import ForceOpt
from dsig.cli._read_options import ReadChoice, ReadOpt, ReadXferChoice, ReadXferOpt, read_options
from dsig.cli._sign_options import KeyOpt, SecretArgs, SignerArgs, secret_options, signer_options
from dsig.cli._trust_options import TrustArgs, trust_options
from dsig.cli.batch import default_jobs
from dsig.cli.timestamp import TsaArgs, TsaOpt, sign_timestamping, tsa_options_group

if TYPE_CHECKING:
    from dsig.manifest import CreatedManifest, ManifestVerification

manifest_app = command_group(
    "manifest", "Sign a whole study with one signature, and prove it complete and unchanged."
)

JobsOpt = Annotated[
    int | None,
    typer.Option("--jobs", "-j", min=1, help="worker processes (default: number of cores)"),
]
StudyPaths = Annotated[
    list[str],
    typer.Argument(
        help="the study: directories (walked recursively) and files; or URLs (s3://bucket/"
        "prefix, copied to a private scratch directory first)"
    ),
]


@manifest_app.command()
@tsa_options_group()
@secret_options()
@signer_options("cert", "mac", "profile")
def create(
    paths: StudyPaths,
    output: Annotated[
        str, typer.Option("--output", "-o", help="the manifest file to write (or a URL)")
    ],
    key: KeyOpt,
    *,
    signing: SignerArgs,
    study: Annotated[
        str | None, typer.Option("--study", help="the Study Instance UID, when several are found")
    ] = None,
    force: ForceOpt = False,
    allow_weak: Annotated[
        list[str] | None,
        typer.Option("--allow-weak", help="sign even with this weak algorithm; repeatable"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="machine-readable summary")] = False,
    jobs: JobsOpt = None,
    secrets: SecretArgs,
    tsa: TsaOpt = None,
    ts: TsaArgs,
    read: ReadOpt = ReadChoice.auto,
    read_xfer: ReadXferOpt = ReadXferChoice.auto,
) -> None:
    """Reference every instance of one study (with the MAC of its content) in a signed Key
    Object Selection Document. Exit 0 written, 2 usage (several studies, output exists),
    4 error (unreadable instance, key, TSA)."""
    from dsig.archive import is_remote, object_exists, staged
    from dsig.manifest import CreateOptions, StudySelectionError, create_manifest

    reading = read_options(read, read_xfer)
    remote_out = is_remote(output)
    try:
        there = object_exists(output) if remote_out else Path(output).exists()
    except operational_errors() as e:
        raise fail(e) from None
    if there and not force:
        raise fail(f"output {output} exists: use --force to overwrite it", 2)
    if not remote_out and Path(output).is_dir():
        raise fail(f"output {output} is a directory", 2)
    _check_local(paths)
    stamping = sign_timestamping(jobs=1, tsa=tsa, query_out=None, uid_out=None, ts=ts)
    secret, may_prompt = secrets.read(key)
    try:
        provider = signing.open_provider(key, secret, may_prompt)
        try:
            options = CreateOptions(
                mac=signing.algorithm(),
                profile=signing.signature_profile(),
                study_uid=study,
                allow_weak=tuple(allow_weak or ()),
                exclude=() if remote_out else (Path(output),),
                jobs=jobs or default_jobs(),
                read=reading,
            )
            with staged(paths) as study_files:
                created = create_manifest(study_files.paths, provider, options)
                shown = study_files.shown
        finally:
            provider.close()
        note = stamping.apply(created.dataset, created.signature.uid) if stamping else ""
        _save(created, output, force=force)
    except StudySelectionError as e:
        raise fail(e, 2) from None
    except operational_errors() as e:
        raise fail(e) from None
    m = created.manifest
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "output": str(output),
                    "sop_instance_uid": m.sop_instance_uid,
                    "study_instance_uid": m.study_uid,
                    "series": m.series_count,
                    "references": len(m.references),
                    "signature_references": sum(1 for r in m.references if r.signatures),
                    "signature_uid": created.signature.uid,
                    "mac_algorithm": options.mac.value,
                    "timestamp": note or None,
                    "skipped": [
                        {"path": shown(s.path), "reason": shown(s.reason)} for s in created.skipped
                    ],
                    "warnings": list(created.warnings),
                },
                indent=2,
            )
        )
        return
    signed = sum(1 for r in m.references if r.signatures)
    typer.echo(
        f"wrote {output}: study {m.study_uid}, {len(m.references)} instance(s) in "
        f"{m.series_count} series ({signed} also by their signature), signed "
        f"{created.signature.uid} ({options.mac.value}, purpose 14 Source Signature)"
    )
    if note:
        typer.echo(f"  {note}")
    for warning in created.warnings:
        typer.echo(f"  warning: {warning}")
    if created.skipped:
        typer.echo(f"  skipped {len(created.skipped)} file(s):")
        for s in created.skipped:
            typer.echo(f"    {shown(s.path)}: {shown(s.reason)}")


@manifest_app.command()
@trust_options(
    "format_old", "integrity_only", "trust_store", "untrusted", "crl", "ocsp", "revocation",
    "online", "at", "tsa_trust_store", "allow_weak", "strict", "policy_file",
    after={"policy_file": "jobs"},
)  # fmt: skip
def verify(
    manifest: Annotated[str, typer.Argument(help="the manifest file (or a URL)")],
    paths: StudyPaths,
    json_out: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
    allow_extra: Annotated[
        bool,
        typer.Option(
            "--allow-extra", help="instances the manifest does not list do not fail (still shown)"
        ),
    ] = False,
    *,
    trust: TrustArgs,
    jobs: JobsOpt = None,
    read: ReadOpt = ReadChoice.auto,
    read_xfer: ReadXferOpt = ReadXferChoice.auto,
) -> None:
    """Verify the manifest's signature, then each instance: ok, modified, missing, extra.
    Exit 0 only when the manifest is VALID and every instance ok with none missing or extra;
    1 modified/missing/extra or invalid manifest; 3 indeterminate; 4 error."""
    from dsig.manifest import verify_manifest

    options = trust.verify_options()
    from dsig.archive import staged

    options = dataclasses.replace(options, read=read_options(read, read_xfer))
    _check_local([manifest, *paths])
    try:
        with staged([manifest, *paths]) as inputs:
            result = verify_manifest(
                inputs.paths[0], inputs.paths[1:], options, allow_extra=allow_extra,
                jobs=jobs or default_jobs(),
            )  # fmt: skip
            if json_out:
                typer.echo(json.dumps(inputs.rewrite(result.to_json()), indent=2))
            else:
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    _print_human(result, integrity_only=trust.integrity_only)
                typer.echo(inputs.shown(buf.getvalue()), nl=False)  # URLs, not scratch paths
    except operational_errors() as e:
        raise fail(e) from None
    raise typer.Exit(result.exit_code)


def _check_local(paths: Sequence[str]) -> None:
    """A local input that does not exist: one line, exit 4 (URLs are checked as read)."""
    from dsig.archive import is_remote, local_path

    missing = [p for p in paths if not is_remote(p) and not local_path(p).exists()]
    if missing:
        raise fail(f"no such file or directory: {missing[0]}")


def _save(created: CreatedManifest, output: str, *, force: bool) -> None:
    """Write the manifest atomically to a path, or upload it to a URL."""
    from dsig.archive import is_remote, upload
    from dsig.manifest import save_manifest

    if not is_remote(output):
        save_manifest(created, Path(output), force=force)
        return
    with tempfile.TemporaryDirectory(prefix="dsig-manifest-") as scratch:
        local = Path(scratch, "manifest.dcm")
        save_manifest(created, local, force=False)
        upload(local, output)


def _print_human(result: ManifestVerification, *, integrity_only: bool) -> None:
    from dsig.cli.verify import _print_human as print_file
    from dsig.manifest import Status

    m = result.manifest
    what = f"study {m.study_uid}, {len(m.references)} reference(s)" if m else "unparsable"
    typer.echo(f"manifest {result.manifest_indication.value}: {result.path} ({what})")
    print_file(result.signature)
    if integrity_only:
        typer.echo("  trust of the manifest signer NOT checked (--integrity-only)")
    for problem in result.problems:
        typer.echo(f"  problem: {problem}")
    for warning in result.warnings:
        typer.echo(f"  warning: {warning}")
    for check in result.instances:
        uid = check.sop_instance_uid or "?"
        where = check.path or "(no file)"
        line = f"{check.status.value:<13} {uid} {where}"
        if check.status.value != "ok" or check.reason.startswith("matches: signature"):
            line += f": {check.reason}"
        typer.echo(line)
    for path, reason in result.skipped:
        typer.echo(f"skipped       {path}: {reason}")
    counts = ", ".join(f"{n} {s}" for s, n in result.summary().items() if n)
    extra = result.allow_extra and result.count(Status.EXTRA)
    allowed = " (extra instances allowed by --allow-extra)" if extra else ""
    typer.echo(f"{result.indication.value}: {counts or 'no instances'}{allowed}")
