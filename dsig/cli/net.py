"""``dsig serve`` (a verifying C-STORE SCP) and ``dsig send`` (a C-STORE SCU that can sign).

Registered in :mod:`dsig.cli` as ``app.command()(serve)`` and ``app.command()(send)``.
pynetdicom is imported only when one of these commands runs.
"""

from __future__ import annotations

import enum
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from dsig.cli._common import expand_inputs, fail, operational_errors
from dsig.cli._read_options import ReadChoice, ReadOpt, ReadXferChoice, ReadXferOpt, read_options
from dsig.cli._sign_options import SecretArgs, SignerArgs, secret_options, signer_options
from dsig.cli._stow_options import StowOpt, UpstreamOpt, check_stow_options, start_stow
from dsig.cli._tls_options import (
    CLIENT_TLS_OPTIONS,
    SERVER_TLS_OPTIONS,
    TlsArgs,
    tls_options,
)
from dsig.cli._trust_options import TrustArgs, trust_options

if TYPE_CHECKING:
    from dsig.net import AuditRecord, ForwardEvent, ForwardTarget, SendResult

_echo_lock = threading.Lock()


VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="log pynetdicom's association events")
]


def _say(message: str, *, err: bool = False) -> None:
    """One log line; peer-supplied values (AE titles, UIDs, signer names, server messages)
    may hold control characters, so the line is escaped as ``dsig verify``'s are."""
    from dsig import printable

    with _echo_lock:
        typer.echo(printable(message), err=err)


class _OneLine(logging.Formatter):
    """pynetdicom's own log lines, without tracebacks."""

    def format(self, record: logging.LogRecord) -> str:
        return f"dsig: pynetdicom: {record.levelname.lower()}: {record.getMessage()}"


def _quiet_pynetdicom(verbose: bool) -> None:
    logger = logging.getLogger("pynetdicom")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    handler.setLevel(logging.INFO if verbose else logging.CRITICAL)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.ERROR)
    logger.propagate = False


serve_app = typer.Typer(
    name="serve",
    invoke_without_command=True,
    no_args_is_help=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _size(text: str) -> int:
    """Bytes from "1048576", "512M", "2G" (binary units)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (value[:-1], value[-1]) if value[-1:] in units else (value, "")
    try:
        size = int(number) * units[unit]
    except (ValueError, KeyError):
        raise typer.BadParameter(f"{text!r} is not a size (bytes, or with K, M or G)") from None
    if size < 1:
        raise typer.BadParameter("the size must be positive")
    return size


def _mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an octal mode such as 600 or 640") from None
    if mode & ~0o777 or mode & 0o600 != 0o600:
        raise typer.BadParameter("the mode must include rw for the owner (600, 640, 644...)")
    return mode


class LayoutChoice(enum.StrEnum):
    """``--layout``."""

    flat = "flat"
    patient_study_series = "patient-study-series"


def _targets(texts: list[str] | None) -> tuple[ForwardTarget, ...]:
    from dsig.net import ForwardTarget

    targets = []
    for text in texts or []:
        try:
            targets.append(ForwardTarget.parse(text))
        except ValueError as e:
            raise fail(f"--forward: {e}", 2) from None
    if len(set(targets)) != len(targets):
        raise fail("--forward: the same target twice", 2)
    return tuple(targets)


class DuplicateChoice(enum.StrEnum):
    """``--duplicates``."""

    reject = "reject"
    keep_both = "keep-both"


@serve_app.callback()
@trust_options(
    "require", "format_old", "integrity_only", "trust_store", "untrusted", "crl", "ocsp",
    "revocation", "online", "at", "tsa_trust_store", "allow_weak", "strict",
    "require_coverage", "policy_file", "timestamp_failures_warn",
)  # fmt: skip
@tls_options(*SERVER_TLS_OPTIONS)
def serve(
    ctx: typer.Context,
    store: Annotated[
        Path | None, typer.Option(help="directory for objects that pass verification")
    ] = None,
    quarantine: Annotated[
        Path | None, typer.Option(help="directory for the others, each with its JSON report")
    ] = None,
    port: Annotated[int, typer.Option(help="TCP port to listen on (0: any free port)")] = 11112,
    ae_title: Annotated[str, typer.Option("--ae-title", help="our AE title")] = "DSIG",
    host: Annotated[
        str, typer.Option(help="address to bind (default: loopback only)")
    ] = "127.0.0.1",
    reject_invalid: Annotated[
        bool,
        typer.Option(
            "--reject-invalid",
            help="answer objects that fail with a failure status (they are still quarantined)",
        ),
    ] = False,
    audit_log: Annotated[
        Path | None, typer.Option(help="JSON-lines audit log (default: STORE/dsig-audit.jsonl)")
    ] = None,
    duplicates: Annotated[
        DuplicateChoice,
        typer.Option(
            help="another object (other bytes) under a stored SOP Instance UID: reject it "
            "(0x0111, kept in the quarantine) or keep both (UID.1.dcm, ...); an identical one "
            "is never stored twice"
        ),
    ] = DuplicateChoice.reject,
    file_mode: Annotated[
        str,
        typer.Option(
            help="octal mode of the files created (directories get x where r is set)",
            parser=_mode,
            metavar="MODE",
        ),
    ] = "600",
    layout: Annotated[
        LayoutChoice,
        typer.Option(
            help="store folders: flat (STORE/UID.dcm) or patient-study-series "
            "(STORE/PatientID/StudyUID/SeriesUID/UID.dcm, names made safe); the quarantine "
            "stays flat"
        ),
    ] = LayoutChoice.flat,
    forward: Annotated[
        list[str] | None,
        typer.Option(
            metavar="AE@HOST:PORT",
            help="forward every stored object to this storage SCP (C-STORE, queued on disk "
            "until it answers success, retried; at least once); repeatable",
        ),
    ] = None,
    forward_queue: Annotated[
        Path | None, typer.Option(help="forwarding queue directory (default STORE/.dsig-forward)")
    ] = None,
    forward_retry_max: Annotated[
        float, typer.Option(help="longest wait in seconds between forwarding attempts")
    ] = 60.0,
    forward_tls: Annotated[
        bool,
        typer.Option(
            "--forward-tls",
            help="forward over DICOM TLS (--tls-cert as client certificate, peer checked "
            "against --tls-ca)",
        ),
    ] = False,
    *,
    dicom_tls: TlsArgs,
    trust: TrustArgs,
    trust_cache: Annotated[
        float, typer.Option(help="seconds a signer's trust verdict is reused (0: never)")
    ] = 60.0,
    allow_calling_ae: Annotated[
        list[str] | None,
        typer.Option(help="accept associations only from this calling AE title; repeatable"),
    ] = None,
    require_called_ae: Annotated[
        bool,
        typer.Option("--require-called-ae", help="reject associations not addressed to --ae-title"),
    ] = False,
    max_associations: Annotated[int, typer.Option(help="concurrent associations")] = 10,
    max_object_size: Annotated[
        str,
        typer.Option(
            help="largest object accepted (bytes, or 512M, 2G...): a bigger one is dropped "
            "and its association aborted",
            parser=_size,
            metavar="SIZE",
        ),
    ] = "1G",
    idle_timeout: Annotated[
        float,
        typer.Option(help="seconds a connection may send no complete PDU before it is aborted"),
    ] = 30.0,
    association_timeout: Annotated[
        float, typer.Option(help="seconds an association may last (0: no limit)")
    ] = 3600.0,
    workers: Annotated[
        int, typer.Option(help="verifier processes (objects verified in parallel)")
    ] = 2,
    verify_timeout: Annotated[
        float,
        typer.Option(
            help="seconds one verification may take: then it is stopped and the object "
            "quarantined as ERROR (VERIFY_ABORTED)"
        ),
    ] = 30.0,
    worker_memory: Annotated[
        int, typer.Option(help="MiB of address space per verifier process (0: no limit)")
    ] = 2048,
    shutdown_grace: Annotated[
        float, typer.Option(help="seconds to let objects in progress finish on SIGTERM/Ctrl-C")
    ] = 10.0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="no line per received object")
    ] = False,
    verbose: VerboseOpt = False,
    stow: StowOpt = None,
    upstream: UpstreamOpt = None,
) -> None:
    """Receive DICOM objects (C-STORE SCP), verify their signatures, store or quarantine them.

    Objects that ``dsig verify`` would accept (exit 0) go to --store; the others go to
    --quarantine with a JSON report, and are answered with success unless --reject-invalid.
    An object is placed only after its audit line (hash-chained, with the SHA-256 of the
    stored bytes) is durable; a stored object is never replaced (see --duplicates).
    Verification runs in --workers processes, each bounded by --verify-timeout and
    --worker-memory. SIGTERM or Ctrl-C stop the server cleanly (exit 0).

    Failure statuses with --reject-invalid: 0xC210 a signature's integrity is invalid (MAC
    or signature value), 0xC211 a signature is not trusted (e.g. untrusted or revoked signer)
    or its verification was stopped, 0xC212 a --require or --require-coverage is not met (e.g.
    unsigned), 0xC213 unreadable, 0xA900 the data set's UIDs are not the request's; the Error
    Comment names the finding codes. Always: 0x0111 duplicate SOP instance with other bytes
    (--duplicates reject), 0xA700 not kept (disk or audit log full, every verifier busy,
    shutting down). Exit 4 when the server cannot start.

    With --tls-cert/--tls-key the node speaks DICOM TLS only (PS3.15 B.10 non-downgrading
    BCP 195 profile: TLS 1.2/1.3, AEAD suites with forward secrecy). With --forward every
    stored object is queued (durably, before it is acknowledged) and sent to each target
    until it answers success; a restart resumes the queue.

    ``dsig serve audit-check LOG`` checks an audit log's hash chain.
    """
    if ctx.invoked_subcommand is not None:
        return
    if store is None or quarantine is None:
        raise fail("dsig serve needs --store and --quarantine", 2)
    if max_associations < 1:
        raise fail("--max-associations must be at least 1", 2)
    if workers < 1:
        raise fail("--workers must be at least 1", 2)
    if not 0 <= port <= 65535:
        raise fail(f"--port {port} is not a TCP port", 2)
    stow_address = check_stow_options(stow, upstream)
    targets = _targets(forward)
    if forward_tls and not forward:
        raise fail("--forward-tls needs --forward", 2)
    tls = dicom_tls.config(server=True, forward_tls=forward_tls)
    _quiet_pynetdicom(verbose)
    from dsig.net import NetError, ReceiveServer, ServerConfig
    from pki import PolicyEvaluator

    options = trust.verify_options(
        lambda policy: PolicyEvaluator(policy, ttl=trust_cache, max_entries=1024)
    )
    config = ServerConfig(
        store=store, quarantine=quarantine, verify=options, ae_title=ae_title, host=host,
        port=port, reject_invalid=reject_invalid, audit_log=audit_log,
        max_associations=max_associations, allow_calling_ae=tuple(allow_calling_ae or ()),
        require_called_ae=require_called_ae, max_object_size=int(max_object_size),
        idle_timeout=idle_timeout, association_timeout=association_timeout, workers=workers,
        verify_timeout=verify_timeout, worker_memory_mib=worker_memory,
        duplicates=duplicates.value, file_mode=int(file_mode), layout=layout.value,
        forward=targets, forward_queue=forward_queue, forward_retry_max=forward_retry_max,
        tls=tls, forward_tls=forward_tls,
    )  # fmt: skip
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    errors: tuple[type[Exception], ...] = (NetError, *operational_errors())
    try:
        server = ReceiveServer(
            config,
            on_record=None if quiet else _print_record,
            on_forward=lambda e: _print_forward(e, quiet),
        )
        server.start()
    except errors as e:
        raise fail(e) from None
    stow_server = start_stow(server, stow_address, upstream)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if options.trust is None and not trust.integrity_only:
            _say(
                "dsig serve: warning: no --trust-store: signed objects cannot be trusted and "
                "will be quarantined as INDETERMINATE (or use --integrity-only)",
                err=True,
            )
        from dsig.cli._trust_options import policy_footer

        _say(f"dsig serve: {policy_footer(options)}", err=True)
        if tls is not None:
            from dsig.net import TLS_PROFILE

            _say(f"dsig serve: DICOM TLS, {TLS_PROFILE}; client certificates {tls.client_cert}",
                 err=True)  # fmt: skip
        for target, waiting in server.pending_forwards().items():
            _say(f"dsig serve: forwarding to {target} ({waiting} object(s) queued)", err=True)
        _say(
            f"dsig serve: listening on {host}:{server.port} as AE {ae_title!r}; "
            f"store {store}, quarantine {quarantine}, audit log {config.audit_path}"
        )
        while not stop.wait(0.5):
            pass
        _say("dsig serve: stopping")
        if stow_server is not None:
            stow_server.stop()
        server.stop(grace=shutdown_grace)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    counts = server.counts
    _say(
        f"dsig serve: stopped; {counts['stored']} stored, {counts['duplicate']} duplicate(s), "
        f"{counts['quarantined']} quarantined, {counts['refused']} refused, "
        f"{counts['failed']} failed, {counts['dropped']} dropped, {counts['aborted']} "
        f"connection(s) aborted; audit log chain hash {server.audit_hash}"
    )


@serve_app.command("audit-check")
def audit_check(
    log: Annotated[Path, typer.Argument(help="the audit log (JSON lines)")],
) -> None:
    """Check an audit log's hash chain: exit 0 intact, 1 a line was removed, inserted or
    edited (the first such line is named), 4 unreadable. The chain hash printed for an intact
    log lets you check later that no line was cut off the end."""
    from dsig.net import check_audit_log

    try:
        check = check_audit_log(log)
    except OSError as e:
        raise fail(f"cannot read {log}: {e.strerror or e}") from None
    if not check.ok:
        _say(f"{log}: line {check.bad_line}: {check.problem}")
        raise typer.Exit(1)
    _say(f"{log}: {check.lines} line(s), chain intact; last line hash {check.last_hash}")


def _print_forward(event: ForwardEvent, quiet: bool) -> None:
    if event.action == "forwarded":
        if not quiet:
            _say(f"forwarded   {event.sop_instance_uid} -> {event.target}")
    elif event.action == "forward-refused":
        _say(
            f"dsig serve: {event.target} refused {event.sop_instance_uid} "
            f"(0x{event.status or 0:04X}) {event.message}; set aside in the queue's refused/",
            err=True,
        )
    else:
        _say(
            f"dsig serve: cannot forward to {event.target}: {event.message}; "
            f"retry in {event.retry_in:g} s",
            err=True,
        )


def _print_record(record: AuditRecord) -> None:
    where = record.path or "-"
    extra = f" [{', '.join(record.findings)}]" if record.findings else ""
    revocation = "; ".join(r for s in record.signatures if (r := s.get("revocation")))
    checked = f" revocation: {revocation}" if revocation else ""
    error = f" error: {record.error}" if record.error else ""
    _say(
        f"{record.action:<11} {record.indication:<13} {record.sop_instance_uid} "
        f"from {record.calling_ae}@{record.peer} -> {where} "
        f"(0x{record.status:04X}){extra}{checked}{error}"
    )


@secret_options()
@tls_options(*CLIENT_TLS_OPTIONS)
@signer_options(after={"force_certificate": "verbose"})
def send(
    host: Annotated[str, typer.Argument(help="peer host name or address")],
    port: Annotated[int, typer.Argument(help="peer TCP port")],
    paths: Annotated[list[Path], typer.Argument(help="files (or directories with --recursive)")],
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="descend into directories")
    ] = False,
    ae_title: Annotated[str, typer.Option("--ae-title", help="our (calling) AE title")] = "DSIG",
    called_ae: Annotated[str, typer.Option(help="the peer's (called) AE title")] = "ANY-SCP",
    sign: Annotated[
        bool, typer.Option("--sign", help="sign each object before sending (needs --key)")
    ] = False,
    key: Annotated[
        str | None, typer.Option("--key", help="key file (PEM/DER/PKCS#8/PKCS#12) or pkcs11: URI")
    ] = None,
    *,
    signing: SignerArgs,
    secrets: SecretArgs,
    associations: Annotated[int, typer.Option(help="parallel associations")] = 1,
    timeout: Annotated[
        float, typer.Option(help="seconds for connecting, negotiating and each response")
    ] = 30.0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="print only problems and the summary")
    ] = False,
    verbose: VerboseOpt = False,
    dicom_tls: TlsArgs,
    read: ReadOpt = ReadChoice.auto,
    read_xfer: ReadXferOpt = ReadXferChoice.auto,
) -> None:
    """Send DICOM files to a storage SCP (C-STORE), optionally signing each one first.

    Files travel bit-for-bit in their own transfer syntax (one read in another encoding than
    its meta header names, with --read-xfer detect, or without a meta, is re-written in the
    encoding it was read in). With --sign the key is opened (and
    a token logged in to) once for the whole batch. With --tls (or --tls-ca / --tls-cert)
    the association uses DICOM TLS (PS3.15 B.10 non-downgrading BCP 195 profile), the server
    authenticated against --tls-ca (system CAs without it) and its name checked. Exit 0 all
    stored, 1 some refused, 4 operational error (unreadable file, cannot connect, association
    rejected, key problem).
    """
    if sign and not key:
        raise fail("--sign needs --key", 2)
    if key and not sign:
        raise fail("--key is only used with --sign", 2)
    if associations < 1:
        raise fail("--associations must be at least 1", 2)
    if not 0 < port <= 65535:
        raise fail(f"port {port} is not a TCP port", 2)
    reading = read_options(read, read_xfer)
    files = [p for p, _rel in expand_inputs(paths, recursive)]
    if not files:
        raise fail("nothing to send", 2)
    tls_settings = dicom_tls.config(server=False)
    _quiet_pynetdicom(verbose)
    from dsig.net import NetError, SendOptions, client_context, send_files

    provider = None
    sign_options = None
    errors: tuple[type[Exception], ...] = (NetError, *operational_errors())
    try:
        if sign and key:
            sign_options = signing.sign_options()
            provider = signing.open_provider(key, *secrets.read(key))
            signing.check_certificate(provider)  # as dsig sign does, before any association
        tls_context = client_context(tls_settings) if tls_settings is not None else None
        options = SendOptions(
            host=host, port=port, calling_ae=ae_title, called_ae=called_ae,
            sign=sign_options, associations=associations, timeout=timeout, tls=tls_context,
            read=reading,
        )  # fmt: skip
        summary = send_files(
            files, options, provider=provider, on_result=lambda r: _print_result(r, quiet)
        )
    except errors as e:
        raise fail(e) from None
    finally:
        if provider is not None:
            provider.close()
    for uid, support in sorted(summary.peer_support.items()):
        if not quiet:
            _say(f"peer support for {uid}: {support}")
    outcomes = [r.outcome for r in summary.results]
    _say(
        f"sent {len(outcomes)} file(s) to {called_ae}@{host}:{port}: "
        f"{outcomes.count('stored') + outcomes.count('warning')} stored, "
        f"{outcomes.count('refused')} refused, {outcomes.count('error')} error(s)"
    )
    raise typer.Exit(summary.exit_code)


def _print_result(result: SendResult, quiet: bool) -> None:
    if quiet and result.outcome in ("stored", "warning"):
        return
    status = f" (0x{result.status:04X})" if result.status is not None else ""
    signed = f" signed {result.signature_uid}" if result.signature_uid else ""
    message = f": {result.message}" if result.message else ""
    _say(f"{result.outcome:<8} {result.path}{status}{signed}{message}",
         err=result.outcome == "error")  # fmt: skip
