"""``dsig timestamp query|insert|add``: RFC 3161 certified timestamps of existing signatures.

Offline (dcmsign-compatible): ``query`` writes a ``.tsq`` (and optionally DCMTK's "UID file"),
``insert`` checks a TSA reply against the query and the signature, then stores the token.
Online: ``add`` asks TSAs over HTTP. ``dsig sign`` reuses :class:`SignTimestamping`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dsig.cli._common import command_group, fail, guard_output, input_output, operational_errors
from dsig.cli._groups import Declared, group_options
from dsig.cli._output_options import ForceOpt, InPlaceOpt
from dsig.cli._read_options import ReadChoice, ReadOpt, ReadXferChoice, ReadXferOpt, read_options

if TYPE_CHECKING:
    from cryptography import x509
    from pydicom.dataset import Dataset

    from dsig import QueryOptions, SignTimestamping, TsaOptions

timestamp_app = command_group(
    "timestamp",
    "RFC 3161 certified timestamps: offline query/insert (dcmsign-compatible), online add.",
)


class TsHashChoice(enum.StrEnum):
    """--ts-hash values."""

    sha256 = "sha256"
    sha384 = "sha384"
    sha512 = "sha512"


# Option declarations shared with `dsig sign` (typer reads them from the signature).
TsHashOpt = Annotated[TsHashChoice, typer.Option("--ts-hash", help="timestamp imprint hash")]
TsNonceOpt = Annotated[
    bool, typer.Option("--ts-nonce/--ts-no-nonce", help="random nonce in the query")
]
TsCertReqOpt = Annotated[
    bool,
    typer.Option("--ts-cert-req/--ts-no-cert-req", help="ask for the TSA certificate in the token"),
]
TsPolicyOpt = Annotated[str | None, typer.Option("--ts-policy", help="request this TSA policy OID")]
TsaOpt = Annotated[
    list[str] | None, typer.Option("--tsa", help="TSA URL; repeat for fallbacks, tried in order")
]
TsaTimeoutOpt = Annotated[float, typer.Option("--tsa-timeout", help="seconds per TSA request")]
TsaRetriesOpt = Annotated[
    int, typer.Option("--tsa-retries", help="extra attempts per TSA on network errors/5xx")
]
TsaUserOpt = Annotated[
    str | None, typer.Option("--tsa-user", help="HTTP basic-auth user for the TSA")
]
TsaPasswordEnvOpt = Annotated[
    str | None, typer.Option("--tsa-password-env", help="TSA password from this variable")
]
TsaPasswordFileOpt = Annotated[
    Path | None, typer.Option("--tsa-password-file", help="TSA password from this file")
]


@dataclasses.dataclass(frozen=True)
class TsaArgs:
    """The values of the shared query and TSA options (see :func:`tsa_options_group`)."""

    ts_hash: TsHashChoice = TsHashChoice.sha256
    ts_nonce: bool = True
    ts_cert_req: bool = True
    ts_policy: str | None = None
    tsa_timeout: float = 10.0
    tsa_retries: int = 1
    tsa_user: str | None = None
    tsa_password_env: str | None = None
    tsa_password_file: Path | None = None

    def query(self) -> QueryOptions:
        """The query options (raises TimestampError on a bad OID)."""
        from dsig import QueryOptions

        return QueryOptions(
            self.ts_hash.value, nonce=self.ts_nonce, cert_req=self.ts_cert_req,
            policy=self.ts_policy,
        )  # fmt: skip

    def transport(self) -> TsaOptions:
        """The TSA transport options, with credentials from env/file."""
        from dsig import TsaCredentials, TsaOptions

        creds = TsaCredentials.load(
            self.tsa_user, password_env=self.tsa_password_env,
            password_file=self.tsa_password_file,
        )  # fmt: skip
        return TsaOptions(timeout=self.tsa_timeout, retries=self.tsa_retries, credentials=creds)


_TSA_DECLARED: Declared = {
    "ts_hash": (TsHashOpt, TsHashChoice.sha256),
    "ts_nonce": (TsNonceOpt, True),
    "ts_cert_req": (TsCertReqOpt, True),
    "ts_policy": (TsPolicyOpt, None),
    "tsa_timeout": (TsaTimeoutOpt, 10.0),
    "tsa_retries": (TsaRetriesOpt, 1),
    "tsa_user": (TsaUserOpt, None),
    "tsa_password_env": (TsaPasswordEnvOpt, None),
    "tsa_password_file": (TsaPasswordFileOpt, None),
}


#: The query options alone (``dsig timestamp query`` sends nothing).
QUERY_OPTIONS = ("ts_hash", "ts_nonce", "ts_cert_req", "ts_policy")


#: ``@tsa_options_group(*names)``: declare the query and TSA options ``names`` (default all:
#: --ts-hash ... --tsa-password-file) on a command in place of its keyword-only parameter
#: ``ts``, which receives them as one :class:`TsaArgs`.
tsa_options_group = group_options("ts", TsaArgs, _TSA_DECLARED)


def _resolve_uid(ds: Dataset, uid: str | None, uid_file: Path | None) -> str:
    from dsig import SignatureNotFoundError, find_signatures

    if uid is not None and uid_file is not None:
        raise fail("give --uid or --uid-file, not both", 2)
    if uid_file is not None:
        from dsig import read_uid_file

        return read_uid_file(uid_file)
    if uid is not None:
        return uid
    refs = find_signatures(ds)
    if len(refs) == 1:
        return refs[0].uid
    if not refs:
        raise SignatureNotFoundError("the file has no signature")
    raise fail(f"the file has {len(refs)} signatures: choose one with --uid", 2)


@timestamp_app.command("query")
@tsa_options_group(*QUERY_OPTIONS)
def query(
    path: Annotated[Path, typer.Argument(help="signed DICOM file")],
    out: Annotated[Path, typer.Option("--out", "-o", help="write the RFC 3161 query (.tsq) here")],
    uid: Annotated[
        str | None, typer.Option(help="signature UID (optional when there is one)")
    ] = None,
    uid_file_out: Annotated[
        Path | None,
        typer.Option("--uid-file-out", help="also write a dcmsign UID file (for dcmsign +t)"),
    ] = None,
    *,
    ts: TsaArgs,
    force: Annotated[bool, typer.Option("--force", help="overwrite existing outputs")] = False,
    read: ReadOpt = ReadChoice.auto,
    read_xfer: ReadXferOpt = ReadXferChoice.auto,
) -> None:
    """Write a timestamp query for an existing signature (like dcmsign +ts)."""
    from dsig import atomic_output, find_signature, read_dicom
    from dsig.timestamp import build_query, timestamped_bytes

    for option, target in (("--out", out), ("--uid-file-out", uid_file_out)):
        if target is not None:
            guard_output(target, inputs=[path], force=force, what=option)
    try:
        ds = read_dicom(path, read=read_options(read, read_xfer))
        chosen = _resolve_uid(ds, uid, None)
        options = ts.query()
        q = build_query(timestamped_bytes(find_signature(ds, chosen).item), options)
        with atomic_output(out) as fp:
            fp.write(q.der)
        if uid_file_out is not None:
            from dsig import write_uid_file

            write_uid_file(uid_file_out, chosen)
    except operational_errors() as e:
        raise fail(e) from None
    typer.echo(f"wrote timestamp query for {chosen} ({q.hash_algorithm}) to {out}")


@timestamp_app.command("insert")
def insert(
    paths: Annotated[list[Path], typer.Argument(help="INPUT OUTPUT (or INPUT with --in-place)")],
    reply: Annotated[
        Path, typer.Option("--reply", help="TSA reply (.tsr TimeStampResp, or a bare token)")
    ],
    query_file: Annotated[
        Path | None, typer.Option("--query", help="the query the reply answers (checked)")
    ] = None,
    uid: Annotated[
        str | None, typer.Option(help="signature UID (optional when there is one)")
    ] = None,
    uid_file: Annotated[
        Path | None, typer.Option("--uid-file", help="dcmsign UID file naming the signature")
    ] = None,
    tsa_cert: Annotated[
        list[Path] | None,
        typer.Option(help="TSA certificate(s) for a token made without certReq"),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="replace an existing timestamp")
    ] = False,
    in_place: InPlaceOpt = False,
    force: ForceOpt = False,
    read: ReadOpt = ReadChoice.auto,
    read_xfer: ReadXferOpt = ReadXferChoice.auto,
) -> None:
    """Check a TSA reply against the query and the signature, then store its token."""
    from dsig import CERTIFIED_TIMESTAMP, find_signature, read_dicom, save, target_encoding
    from dsig.timestamp import (
        TimestampError,
        TimestampQuery,
        check_reply,
        insert_token,
        timestamped_bytes,
        token_from_reply,
    )

    src, dst = input_output(paths, in_place=in_place, force=force)
    try:
        ds = read_dicom(src, read=read_options(read, read_xfer))
        chosen = _resolve_uid(ds, uid, uid_file)
        item = find_signature(ds, chosen).item
        if CERTIFIED_TIMESTAMP in item and not replace:
            raise TimestampError(f"signature {chosen} already has a timestamp (use --replace)")
        q = TimestampQuery.parse(_read(query_file, "query")) if query_file else None
        token = token_from_reply(_read(reply, "reply"))
        extra = _load_certs(tsa_cert or [])
        # A query without certReq yields a token without the TSA certificate (dcmsign -tc):
        # still insertable, as dcmsign does; verification then needs the certificate.
        info = check_reply(
            token,
            timestamped_bytes(item),
            query=q,
            extra_certs=extra,
            allow_missing_cert=q is not None and not q.cert_req,
        )
        insert_token(item, token)
        save(ds, dst, target_encoding(ds, "same", None))
    except operational_errors() as e:
        raise fail(e) from None
    if q is None:
        typer.echo("note: no --query given: nonce and policy were not compared", err=True)
    if info.signer is None:
        typer.echo(
            "note: the token carries no TSA certificate: its signature was not checked "
            "(give --tsa-cert; verify with --untrusted TSA-CERT)",
            err=True,
        )
    typer.echo(f"inserted timestamp {info.gen_time.isoformat()} into {chosen}: {src} -> {dst}")


@timestamp_app.command("add")
@tsa_options_group()
def add(
    paths: Annotated[list[Path], typer.Argument(help="INPUT OUTPUT (or INPUT with --in-place)")],
    tsa: TsaOpt = None,
    uid: Annotated[list[str] | None, typer.Option(help="signature UID; repeatable")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="every signature without a timestamp")
    ] = False,
    replace: Annotated[bool, typer.Option("--replace", help="replace existing timestamps")] = False,
    *,
    ts: TsaArgs,
    in_place: InPlaceOpt = False,
    force: ForceOpt = False,
    read: ReadOpt = ReadChoice.auto,
    read_xfer: ReadXferOpt = ReadXferChoice.auto,
) -> None:
    """Timestamp existing signatures online (RFC 3161 over HTTP, with fallback TSAs)."""
    from dsig import read_dicom, redact_url, request_timestamp, save, target_encoding
    from dsig.timestamp import insert_token, signatures_to_stamp, timestamped_bytes

    if not tsa:
        raise fail("give at least one --tsa URL", 2)
    if bool(uid) == all_:
        raise fail("give --uid UID (repeatable) or --all", 2)
    src, dst = input_output(paths, in_place=in_place, force=force)
    lines = []
    try:
        q_options = ts.query()
        t_options = ts.transport()
        ds = read_dicom(src, read=read_options(read, read_xfer))
        refs = signatures_to_stamp(ds, None if all_ else uid, replace=replace)
        for ref in refs:
            stamp = request_timestamp(tsa, timestamped_bytes(ref.item), q_options, t_options)
            insert_token(ref.item, stamp.token)
            lines.append(
                f"timestamped {ref.uid} at {stamp.info.gen_time.isoformat()} "
                f"by {redact_url(stamp.url)}"
            )
        if refs:
            save(ds, dst, target_encoding(ds, "same", None))
    except operational_errors() as e:
        raise fail(e) from None
    if not refs:
        typer.echo(f"nothing to do: every signature of {src} already has a timestamp")
        return
    for line in lines:
        typer.echo(line)
    typer.echo(f"wrote {dst}")


def _read(path: Path, what: str) -> bytes:
    from dsig import TimestampError

    try:
        return path.read_bytes()
    except OSError as e:
        raise TimestampError(
            f"cannot read the timestamp {what} {path}: {e.strerror or e}"
        ) from None


def sign_timestamping(
    *, jobs: int, tsa: list[str] | None, query_out: Path | None, uid_out: Path | None, ts: TsaArgs
) -> SignTimestamping | None:
    """``dsig sign``'s timestamp options -> a :class:`SignTimestamping` (None if unused)."""
    if not tsa and query_out is None:
        if uid_out is not None:
            raise fail("--timestamp-uid-file needs --timestamp-query", 2)
        return None
    if query_out is not None and jobs != 1:
        raise fail("--timestamp-query needs exactly one input", 2)
    if uid_out is not None and query_out is None:
        raise fail("--timestamp-uid-file needs --timestamp-query", 2)
    try:
        from dsig import SignTimestamping

        return SignTimestamping(
            urls=tuple(tsa or ()), query=ts.query(), tsa=ts.transport(), query_out=query_out,
            uid_out=uid_out,
        )  # fmt: skip
    except operational_errors() as e:
        raise fail(e) from None


def _load_certs(paths: Sequence[Path]) -> list[x509.Certificate]:
    if not paths:
        return []
    import pki

    return list(pki.load_certificates(*paths, what="TSA certificate"))
