"""``dsig evidence create|verify|renew|status``: RFC 4998 evidence records (thin layer over
:mod:`dsig.evidence`). Exit codes: verify 0 proven, 1 broken, 3 not provable; status 0 nothing
due, 3 renewal due (every record still proven, RENEWAL_DUE included), 1 a record verify would
not prove now (overdue, unreadable); 2 usage, 4 operational errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dsig.cli._common import command_group, fail, operational_errors
from dsig.cli._groups import Declared, group_options
from dsig.cli._trust_options import (
    CrlOpt,
    OcspOpt,
    OnlineOpt,
    RevocationChoice,
    RevocationOpt,
    load_trust_policy,
    parse_moment,
)
from dsig.cli.timestamp import TsaOpt, TsaRetriesOpt, TsaTimeoutOpt
from dsig.cli.timestamp import TsHashChoice as HashChoice  # --hash / --rehash: the same three

if TYPE_CHECKING:
    from dsig.evidence import CreateSummary, StampSettings
    from pki import TrustPolicy

evidence_app = command_group(
    "evidence", "RFC 4998 evidence records: long-term proof of existence for archived studies."
)


TsaTrustOpt = Annotated[
    list[Path] | None, typer.Option("--tsa-trust-store", help="trust anchors for the TSAs")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


@dataclasses.dataclass(frozen=True)
class StampArgs:
    """The TSA trust and transport options of the evidence commands."""

    tsa_trust_store: list[Path] | None = None
    crl: list[Path] | None = None
    ocsp: list[Path] | None = None
    revocation: RevocationChoice | None = None
    online: bool = False
    tsa_timeout: float = 10.0
    tsa_retries: int = 1

    def policy(self) -> TrustPolicy | None:
        """The TSA trust policy (None without --tsa-trust-store)."""
        return _policy(self.tsa_trust_store, self.crl, self.ocsp, self.revocation, self.online)


_STAMP_DECLARED: Declared = {
    "tsa_trust_store": (TsaTrustOpt, None),
    "crl": (CrlOpt, None),
    "ocsp": (OcspOpt, None),
    "revocation": (RevocationOpt, None),
    "online": (OnlineOpt, False),
    "tsa_timeout": (TsaTimeoutOpt, 10.0),
    "tsa_retries": (TsaRetriesOpt, 1),
}
_STAMP_OPTIONS = tuple(_STAMP_DECLARED)


#: ``@stamp_options(*names)``: declare these TSA options on an evidence command in place of
#: its ``stamp``, which receives one :class:`StampArgs`.
stamp_options = group_options("stamp", StampArgs, _STAMP_DECLARED)


def _policy(
    stores: list[Path] | None,
    crl: list[Path] | None,
    ocsp: list[Path] | None,
    revocation: RevocationChoice | None,
    online: bool,
) -> TrustPolicy | None:
    if not stores:
        if crl or ocsp or revocation:
            raise fail("--crl/--ocsp/--revocation need --tsa-trust-store", 2)
        return None
    return load_trust_policy(
        policy_file=None, trust_store=stores, crl=crl, ocsp=ocsp, revocation=revocation,
        online=online,
    )  # fmt: skip


def _settings(
    tsa: list[str] | None, policy: TrustPolicy | None, online: bool, timeout: float, retries: int
) -> StampSettings:
    from dsig import TsaOptions
    from dsig.evidence import StampSettings

    if not tsa:
        raise fail("give --tsa URL", 2)
    try:
        return StampSettings(
            tsa, transport=TsaOptions(timeout=timeout, retries=retries), trust=policy,
            online=online, timeout=timeout,
        )  # fmt: skip
    except operational_errors() as e:
        raise fail(e) from None


@evidence_app.command()
@stamp_options(*_STAMP_OPTIONS)
def create(
    inputs: Annotated[
        list[str], typer.Argument(help="study directory or files (or URLs: s3://bucket/prefix)")
    ],
    out_dir: Annotated[
        str, typer.Option("--out-dir", help="where the .ers records go (a directory or a URL)")
    ],
    tsa: TsaOpt = None,
    hash_: Annotated[
        HashChoice, typer.Option("--hash", help="hash-tree algorithm")
    ] = HashChoice.sha256,
    *,
    stamp: StampArgs,
    force: Annotated[bool, typer.Option("--force", help="replace existing records")] = False,
    json_out: JsonOpt = False,
) -> None:
    """One record per file (<SOP Instance UID>.ers), all under one RFC 3161 timestamp."""
    from dsig.evidence import create_evidence

    policy = stamp.policy()
    settings = _settings(tsa, policy, stamp.online, stamp.tsa_timeout, stamp.tsa_retries)
    from dsig.archive import is_remote, staged

    try:
        with staged(inputs) as files:
            if not is_remote(out_dir):
                summary = create_evidence(
                    files.paths, Path(out_dir), settings, hash_algorithm=hash_.value, force=force
                )
            else:
                summary = _create_remote(files.paths, out_dir, settings, hash_.value, force)
    except operational_errors() as e:
        raise fail(e) from None
    if json_out:
        shown = {"out_dir": out_dir} if is_remote(out_dir) else {}  # a URL, not a Path
        typer.echo(json.dumps({**summary.to_json(), **shown}, indent=2))
    else:
        typer.echo(
            f"wrote {len(summary.records)} evidence records to {out_dir} "
            f"(one timestamp, {summary.time.isoformat()} by {summary.tsa})"
        )
        if policy is None:
            typer.echo("warning: no --tsa-trust-store: the TSA was not validated", err=True)


def _create_remote(
    files: list[Path], out_dir: str, settings: StampSettings, hash_algorithm: str, force: bool
) -> CreateSummary:
    """create_evidence into a scratch directory, then each record uploaded below ``out_dir``
    (an existing one is not replaced unless ``force``; checked before any is uploaded)."""
    import tempfile

    from dsig.archive import object_exists, upload
    from dsig.evidence import EvidenceError, create_evidence

    with tempfile.TemporaryDirectory(prefix="dsig-evidence-") as scratch:
        summary = create_evidence(files, Path(scratch), settings, hash_algorithm=hash_algorithm)
        target = out_dir.rstrip("/")
        if not force:
            for name in summary.records:
                if object_exists(f"{target}/{name}"):
                    raise EvidenceError(
                        f"{target}/{name} exists: not replaced unless forced", option="force"
                    )
        for name, local in summary.records.items():
            upload(local, f"{target}/{name}")
    return summary


@evidence_app.command()
@stamp_options(*_STAMP_OPTIONS[:4])
def verify(
    file: Annotated[str, typer.Argument(help="the data file (a path or a URL: s3://...)")],
    evidence: Annotated[
        str, typer.Option("--evidence", help="its record, or their directory (or a URL)")
    ],
    *,
    stamp: StampArgs,
    at: Annotated[str | None, typer.Option("--at", help="verification moment (ISO-8601)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check a record: exit 0 proven, 1 broken, 3 not provable."""
    from dsig.evidence import verify_file_evidence

    moment = _iso_moment(at)
    policy = stamp.policy()
    from dsig.archive import readable, staged

    try:
        with readable(file) as data, staged([evidence]) as records:  # URLs: scratch copies
            if not data.is_file():
                raise fail(f"{file} is not a file")
            result = verify_file_evidence(data, records.paths[0], tsa_trust=policy, at=moment)
    except operational_errors() as e:
        raise fail(e) from None
    if json_out:
        typer.echo(json.dumps({"path": str(file), **result.to_json()}, indent=2))
    else:
        when = result.proven_time.isoformat() if result.proven_time else "-"
        typer.echo(f"{result.status.value:<13} {file}  proven existence: {when}")
        for s in result.stamps:
            when = s.time.isoformat() if s.time else "?"
            typer.echo(f"  {s.kind:<18} {s.hash_algorithm:<7} {when}  {s.tsa or '-'}")
        for code, message in result.findings:
            typer.echo(f"  {code}: {message}")
    raise typer.Exit(result.exit_code)


@evidence_app.command()
@stamp_options(*_STAMP_OPTIONS)
def renew(
    directory: Annotated[
        str, typer.Argument(help="directory of .ers records (or a URL: s3://bucket/prefix)")
    ],
    tsa: TsaOpt = None,
    rehash: Annotated[
        HashChoice | None, typer.Option("--rehash", help="hash-tree renewal with this hash")
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option("--data", help="the data files/directory (--rehash; or URLs)"),
    ] = None,
    min_age: Annotated[
        float, typer.Option("--min-age", min=0, help="skip records renewed fewer days ago")
    ] = 1.0,
    *,
    stamp: StampArgs,
    json_out: JsonOpt = False,
) -> None:
    """Timestamp renewal of every record (or hash-tree renewal with --rehash ALG --data DIR)."""
    from dsig.archive import is_remote, replaces_atomically, staged
    from dsig.evidence import renew_evidence

    if rehash is not None and not data:
        raise fail("--rehash needs --data (the files the records are for)", 2)
    if is_remote(directory) and not replaces_atomically(directory):
        # renew replaces records in place: only a store whose PUT is atomic keeps every
        # record old or new when a run is killed mid-upload
        raise fail(
            f"{directory}: renew rewrites records in place, which only s3://, gs:// and az:// "
            "URLs (or local paths) do atomically; renew a local copy and copy it back",
            2,
        )
    policy = stamp.policy()
    settings = _settings(tsa, policy, stamp.online, stamp.tsa_timeout, stamp.tsa_retries)
    try:
        with staged([directory]) as records, staged(data or []) as files:
            summary = renew_evidence(
                records.paths[0], settings, rehash=rehash.value if rehash else None,
                data=files.paths, min_age=dt.timedelta(days=min_age),
            )  # fmt: skip
            if is_remote(directory):
                _upload_renewed(records.paths[0], directory, summary.renewed)
            shown = records.rewrite(files.rewrite(summary.to_json()))
    except operational_errors() as e:
        raise fail(e) from None
    if json_out:
        typer.echo(json.dumps(shown, indent=2))
    else:
        typer.echo(
            f"renewed {len(summary.renewed)}, skipped {len(summary.skipped)}, "
            f"failed {len(summary.failed)} ({summary.tsa_requests} TSA request(s))"
        )
        for name, why in shown["failed"].items():
            typer.echo(f"  failed {name}: {why}")
    raise typer.Exit(1 if summary.failed else 0)


def _upload_renewed(scratch: Path, url: str, names: Collection[str]) -> None:
    """Each renewed record replaces its object (one PUT each: old or new, never part)."""
    from dsig.archive import upload
    from dsig.evidence import EvidenceError

    target = url.rstrip("/")
    for done, name in enumerate(names):
        try:
            upload(scratch / name, f"{target}/{name}")
        except operational_errors() as e:
            raise EvidenceError(
                f"{e} ({done} of {len(names)} renewed records uploaded, the others left as "
                "they were: run renew again to finish)"
            ) from None


@evidence_app.command()
def status(
    directory: Annotated[str, typer.Argument(help="directory of .ers records (or a URL)")],
    within: Annotated[
        float, typer.Option("--within", min=0, help="due if a deadline falls within DAYS")
    ] = 180.0,
    at: Annotated[str | None, typer.Option("--at", help="as of this moment (ISO-8601)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Records due for renewal: exit 0 none, 3 some due, 1 overdue or unreadable."""
    from dsig.evidence import status_evidence

    moment = _iso_moment(at)
    from dsig.archive import staged

    try:
        with staged([directory]) as records:
            rows = status_evidence(records.paths[0], at=moment, within=dt.timedelta(days=within))
    except operational_errors() as e:
        raise fail(e) from None
    if json_out:
        typer.echo(json.dumps([r.to_json() for r in rows], indent=2))
    else:
        for r in rows:
            deadline = r.deadline.isoformat() if r.deadline else "-"
            typer.echo(f"{r.action:<10} {r.name}  deadline {deadline}  {r.reason}")
    actions = {r.action for r in rows}
    code = 1 if actions & {"overdue", "broken"} else 3 if actions & {"timestamp", "rehash"} else 0
    raise typer.Exit(code)


def _iso_moment(at: str | None) -> dt.datetime | None:
    """``--at`` of the evidence commands: an ISO-8601 moment only (usage error otherwise)."""
    moment = parse_moment(at) if at else None
    if moment is not None and not isinstance(moment, dt.datetime):
        raise fail("--at takes an ISO-8601 moment", 2)
    return moment
