"""``dsig sign``: sign one file, many files (``--out-dir``), or in place."""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dsig.cli._common import check_output, expand_inputs, fail, guard_output, in_place_target
from dsig.cli._output_options import ForceOpt
from dsig.cli._read_options import ReadChoice, ReadOpt, ReadXferChoice, ReadXferOpt, read_options
from dsig.cli._sign_options import KeyOpt, SecretArgs, SignerArgs, secret_options, signer_options
from dsig.cli.batch import default_jobs
from dsig.cli.timestamp import TsaArgs, TsaOpt, sign_timestamping, tsa_options_group

if TYPE_CHECKING:
    from cryptography import x509

    from dsig import ItemPath, ReadOptions, SignedFile, SignOptions, SignTimestamping


class XferChoice(enum.StrEnum):
    """--write-xfer values."""

    same = "same"
    little = "little"
    big = "big"
    implicit = "implicit"


class LengthChoice(enum.StrEnum):
    """--lengths values."""

    explicit = "explicit"
    undefined = "undefined"


class FormatChoice(enum.StrEnum):
    """--format values."""

    new = "new"
    old = "old"


@tsa_options_group()
@secret_options()
@signer_options(after={"purpose": "item", "force_certificate": "workers"})
def sign(
    paths: Annotated[
        list[Path], typer.Argument(help="INPUT OUTPUT, or inputs with --out-dir / --in-place")
    ],
    key: KeyOpt,
    *,
    signing: SignerArgs,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="sign only this tag (keyword or gggg,eeee); repeatable"),
    ] = None,
    tag_file: Annotated[Path | None, typer.Option(help="file with tags to sign")] = None,
    item: Annotated[
        str | None, typer.Option(help="sign inside this item, e.g. ContentSequence[1]")
    ] = None,
    write_xfer: Annotated[
        XferChoice, typer.Option(help="output transfer syntax")
    ] = XferChoice.same,
    lengths: Annotated[
        LengthChoice | None, typer.Option(help="sequence/item length encoding (default: as read)")
    ] = None,
    format: Annotated[
        FormatChoice, typer.Option("--format", help="new, or DCMTK pre-3.5.4 'old'")
    ] = FormatChoice.new,
    dump: Annotated[Path | None, typer.Option(help="write the MAC byte stream here")] = None,
    secrets: SecretArgs,
    in_place: Annotated[
        bool, typer.Option("--in-place", help="replace each input (atomically)")
    ] = False,
    out_dir: Annotated[
        Path | None, typer.Option(help="write signed copies here (several inputs)")
    ] = None,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="descend into directories")
    ] = False,
    force: ForceOpt = False,
    allow_weak: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-weak",
            help="sign even with this weak algorithm: md5, sha1, rsa1024 (...); repeatable",
        ),
    ] = None,
    tsa: TsaOpt = None,
    timestamp_query: Annotated[
        Path | None, typer.Option(help="write an RFC 3161 query (.tsq) for the new signature")
    ] = None,
    timestamp_uid_file: Annotated[
        Path | None, typer.Option(help="with --timestamp-query: also a dcmsign UID file")
    ] = None,
    ts: TsaArgs,
    workers: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="worker processes for several inputs with a key file (default: cores)",
        ),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="do not show what will be signed nor ask for confirmation on a terminal",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="print one JSON object per run: {files: [...]}")
    ] = False,
    allow_pin_in_uri: Annotated[
        bool,
        typer.Option(
            "--allow-pin-in-uri",
            help="accept pin-value= in a pkcs11: URI (every local user can read command lines)",
        ),
    ] = False,
    read: ReadOpt = ReadChoice.auto,
    read_xfer: ReadXferOpt = ReadXferChoice.auto,
) -> None:
    """Sign DICOM files (main data set, or an item with --item)."""
    from dsig.cli._common import operational_errors

    jobs = _plan(paths, in_place=in_place, out_dir=out_dir, recursive=recursive, force=force)
    if dump is not None and len(jobs) != 1:
        raise fail("--dump needs exactly one input", 2)
    if dump is not None:
        _check_dump_target(dump, jobs[0], force=force)
    for option, target in (("--timestamp-query", timestamp_query),
                           ("--timestamp-uid-file", timestamp_uid_file)):  # fmt: skip
        if target is not None:
            guard_output(target, inputs=[p for job in jobs for p in job], force=force, what=option)
    stamping = sign_timestamping(
        jobs=len(jobs), tsa=tsa, query_out=timestamp_query, uid_out=timestamp_uid_file, ts=ts
    )
    secret, may_prompt = secrets.read(key)
    try:
        _run(
            jobs,
            key=key,
            signing=signing,
            secret=secret,
            may_prompt=may_prompt,
            tags=tag or [],
            tag_file=tag_file,
            item=item,
            write_xfer=write_xfer,
            lengths=lengths,
            old=format is FormatChoice.old,
            dump=dump,
            stamping=stamping,
            allow_weak=allow_weak or [],
            workers=workers,
            confirm=not yes and sys.stdin.isatty(),
            as_json=as_json,
            allow_pin_in_uri=allow_pin_in_uri,
            reading=read_options(read, read_xfer),
        )
    except operational_errors() as e:
        raise fail(e) from None


def _plan(
    paths: list[Path], *, in_place: bool, out_dir: Path | None, recursive: bool, force: bool
) -> list[tuple[Path, Path]]:
    if in_place:
        if out_dir is not None:
            raise fail("--in-place and --out-dir exclude each other", 2)
        # A symlink is followed: its target is signed (atomically) and the link stays.
        return [(t, t) for t in (in_place_target(p) for p, _rel in expand_inputs(paths, recursive))]
    if out_dir is not None:
        jobs = [(p, out_dir / rel) for p, rel in expand_inputs(paths, recursive)]
    else:
        if len(paths) != 2:
            raise fail("give INPUT OUTPUT (or --out-dir DIR / --in-place for several inputs)", 2)
        jobs = [(paths[0], paths[1])]
    for src, dst in jobs:
        check_output(src, dst, force=force)
    return jobs


def _check_dump_target(dump: Path, job: tuple[Path, Path], *, force: bool) -> None:
    """--dump must not replace the input or the signed output, nor an existing file."""
    for other in job:
        if dump.resolve() == other.resolve():
            raise fail(f"--dump {dump} is the same path as {other}: it would be overwritten", 2)
    guard_output(dump, inputs=job, force=force, what="--dump")


def _run(
    jobs: list[tuple[Path, Path]],
    *,
    key: str,
    signing: SignerArgs,
    secret: bytes | None,
    may_prompt: bool,
    tags: list[str],
    tag_file: Path | None,
    item: str | None,
    write_xfer: XferChoice,
    lengths: LengthChoice | None,
    old: bool,
    dump: Path | None,
    stamping: SignTimestamping | None = None,
    allow_weak: list[str] | None = None,
    workers: int | None = None,
    confirm: bool = False,
    as_json: bool = False,
    allow_pin_in_uri: bool = False,
    reading: ReadOptions | None = None,
) -> None:
    from dsig import (
        FileSigning,
        ReadOptions,
        check_algorithm_policy,
        parse_location,
        parse_tag,
        parse_tag_file,
        sign_files,
    )

    tag_list: list[int] | None = None
    if tags or tag_file is not None:
        tag_list = [parse_tag(t) for t in tags]
        if tag_file is not None:
            tag_list += parse_tag_file(tag_file)
    location = parse_location(item or "")
    preview_options = signing.sign_options(tags=tag_list)
    on_token = key.startswith("pkcs11:")
    if confirm and on_token:
        # Before the PIN: the physician sees what she signs before she authorises it.
        _confirm(jobs, preview_options, location, _signer_preview(key, signing.cert))
    provider = signing.open_provider(
        key,
        secret,
        may_prompt,
        notice=lambda note: typer.echo(f"dsig: {note}", err=True),
        allow_pin_in_uri=allow_pin_in_uri,
    )
    try:
        if confirm and not on_token:
            _confirm(jobs, preview_options, location, provider.certificate)
        # Refused before any input is read: a weak MAC or key fails the whole run at once.
        check_algorithm_policy(signing.algorithm(), provider.certificate, allow_weak or ())
        signing.check_certificate(provider)  # exit 4, nothing written
        options = FileSigning(
            sign=signing.sign_options(tags=tag_list, old_format=old, allow_weak=allow_weak or ()),
            location=location,
            write_xfer=write_xfer.value,
            lengths=lengths.value if lengths else None,
            read=reading or ReadOptions(),
            dump=dump,
            timestamp=stamping.apply if stamping is not None else None,
        )
        # Several inputs with a key file sign in forked workers (the key is inherited); token
        # sessions do not survive a fork and a TSA round trip is per file: those stay serial.
        # Outputs were checked (and --force given) by the plan.
        results = sign_files(jobs, provider, options, force=True, workers=workers or default_jobs())
        # One JSON document for the run; each file is a dict, so fields can be added per file.
        records = []
        for done in results:
            records.append(done.record())
            if not as_json:
                for line in _report_lines(done):
                    typer.echo(line)
        if as_json:
            typer.echo(json.dumps({"files": records}, indent=2))
    finally:
        provider.close()


def _report_lines(done: SignedFile) -> list[str]:
    info = done.info
    where = f" in {info.location}" if info.location else ""
    lines = [
        f"signed {done.input} -> {done.output}: {info.uid}{where} "
        f"({len(info.signed_tags)} elements, {done.mac})"
    ]
    if info.normalized:
        lines.append(
            f"  normalised {len(info.normalized)} signed string value(s) as DCMTK reads "
            "them (trailing spaces/NULs; --json lists the tags)"
        )
    if done.timestamp:
        lines.append(f"  {done.timestamp}")
    return lines


def _signer_preview(key: str, cert: Path | None) -> x509.Certificate | None:
    """The signer certificate readable before login: ``--cert``, else the token's."""
    if cert is not None:
        from pki import load_certificates

        return load_certificates(cert, what="signer certificate")[0]
    from tokens.pkcs11 import token_certificate

    return token_certificate(key)


#: Files described one by one in the confirmation; more are summed up in one line.
_PREVIEW_FILES = 5


def _confirm(
    jobs: list[tuple[Path, Path]],
    options: SignOptions,
    location: ItemPath,
    certificate: x509.Certificate | None,
) -> None:
    """Show what will be signed (on stderr: stdout stays for results) and ask; no = exit 4."""
    from dsig import preview_signing, read_dicom

    total = 0
    for index, (src, _dst) in enumerate(jobs):
        preview = preview_signing(
            read_dicom(src), options, location=location, certificate=certificate
        )
        total += preview.covered_count
        if index < _PREVIEW_FILES:
            typer.echo(f"about to sign {src}:", err=True)
            if index == 0:
                lines = preview.lines()
            else:  # the signer is the same for every file
                lines = [
                    ln for ln in preview.lines() if not ln.lstrip().startswith(("signer", "valid"))
                ]
            for line in lines:
                typer.echo(line, err=True)
    if len(jobs) > _PREVIEW_FILES:
        typer.echo(
            f"... and {len(jobs) - _PREVIEW_FILES} more files ({len(jobs)} files, "
            f"{total} elements in all)",
            err=True,
        )
    what = "this file" if len(jobs) == 1 else f"these {len(jobs)} files"
    if not typer.confirm(f"Sign {what}?", default=False, err=True):
        raise fail("not signed: declined at the confirmation", 4)
