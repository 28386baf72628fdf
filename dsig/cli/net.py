"""``dsig serve`` (a verifying C-STORE SCP) and ``dsig send`` (a C-STORE SCU that can sign).

Registered in :mod:`dsig.cli` as ``app.command()(serve)`` and ``app.command()(send)``.
pynetdicom is imported only when one of these commands runs.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from dsig.cli._common import (
    expand_inputs,
    fail,
    no_prompt,
    operational_errors,
    prompt_secret,
    read_secret,
)
from dsig.cli._sign_options import (
    CertOpt,
    MacChoice,
    MacOpt,
    NoPasswordOpt,
    PasswordEnvOpt,
    PasswordFileOpt,
    PinEnvOpt,
    PinFileOpt,
    ProfileChoice,
    ProfileOpt,
    PurposeOpt,
)
from dsig.cli._trust_options import (
    AllowWeakOpt,
    AtOpt,
    CrlOpt,
    FormatOldOpt,
    IntegrityOnlyOpt,
    OcspOpt,
    OnlineOpt,
    RequireCoverageOpt,
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
    from dsig.net.scp import AuditRecord
    from dsig.net.scu import SendResult

_echo_lock = threading.Lock()


def _say(message: str, *, err: bool = False) -> None:
    with _echo_lock:
        typer.echo(message, err=err)


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


def serve(
    store: Annotated[Path, typer.Option(help="directory for objects that pass verification")],
    quarantine: Annotated[
        Path, typer.Option(help="directory for the others, each with its JSON report")
    ],
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
    strict: StrictOpt = False,
    require_coverage: RequireCoverageOpt = None,
    timestamp_failures_warn: TimestampFailuresWarnOpt = False,
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
    shutdown_grace: Annotated[
        float, typer.Option(help="seconds to let objects in progress finish on SIGTERM/Ctrl-C")
    ] = 10.0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="no line per received object")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="log pynetdicom's association events")
    ] = False,
) -> None:
    """Receive DICOM objects (C-STORE SCP), verify their signatures, store or quarantine them.

    Objects that ``dsig verify`` would accept (exit 0) go to --store; the others go to
    --quarantine with a JSON report, and are answered with success unless --reject-invalid.
    Every object is written atomically and fsync'ed, and its audit line appended, before the
    response is sent. SIGTERM or Ctrl-C stop the server cleanly (exit 0).

    Failure statuses with --reject-invalid: 0xC210 a signature is invalid, 0xC211
    indeterminate (e.g. untrusted signer), 0xC212 a --require is not met (e.g. unsigned),
    0xC213 unreadable; the Error Comment names the finding codes. 0xA700: not stored (disk
    full, shutting down). Exit 4 when the server cannot start.
    """
    if max_associations < 1:
        raise fail("--max-associations must be at least 1", 2)
    if not 0 <= port <= 65535:
        raise fail(f"--port {port} is not a TCP port", 2)
    _quiet_pynetdicom(verbose)
    from dsig.net import NetError
    from dsig.net.scp import CachingEvaluator, ReceiveServer, ServerConfig

    options = build_verify_options(
        require=require, format_old=format_old, integrity_only=integrity_only,
        trust_store=trust_store, untrusted=untrusted, crl=crl, ocsp=ocsp,
        revocation=revocation, online=online, at=at, allow_weak=allow_weak,
        tsa_trust_store=tsa_trust_store, strict=strict, require_coverage=require_coverage,
        evaluator=lambda policy: CachingEvaluator(policy, ttl=trust_cache),
        timestamp_failures_warn=timestamp_failures_warn,
    )  # fmt: skip
    config = ServerConfig(
        store=store, quarantine=quarantine, verify=options, ae_title=ae_title, host=host,
        port=port, reject_invalid=reject_invalid, audit_log=audit_log,
        max_associations=max_associations, allow_calling_ae=tuple(allow_calling_ae or ()),
        require_called_ae=require_called_ae,
    )  # fmt: skip
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    errors: tuple[type[Exception], ...] = (NetError, *operational_errors())
    try:
        server = ReceiveServer(config, on_record=None if quiet else _print_record)
        server.start()
    except errors as e:
        raise fail(str(e)) from None
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if options.trust is None and not integrity_only:
            _say(
                "dsig serve: warning: no --trust-store: signed objects cannot be trusted and "
                "will be quarantined as INDETERMINATE (or use --integrity-only)",
                err=True,
            )
        _say(
            f"dsig serve: listening on {host}:{server.port} as AE {ae_title!r}; "
            f"store {store}, quarantine {quarantine}, audit log {config.audit_path}"
        )
        while not stop.wait(0.5):
            pass
        _say("dsig serve: stopping")
        server.stop(grace=shutdown_grace)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    counts = server.counts
    _say(
        f"dsig serve: stopped; {counts['stored']} stored, {counts['quarantined']} quarantined, "
        f"{counts['refused']} refused, {counts['failed']} failed"
    )


def _print_record(record: AuditRecord) -> None:
    where = record.path or "-"
    extra = f" [{', '.join(record.findings)}]" if record.findings else ""
    error = f" error: {record.error}" if record.error else ""
    _say(
        f"{record.action:<11} {record.indication:<13} {record.sop_instance_uid} "
        f"from {record.calling_ae}@{record.peer} -> {where} "
        f"(0x{record.status:04X}){extra}{error}"
    )


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
    cert: CertOpt = None,
    mac: MacOpt = MacChoice.sha256,
    profile: ProfileOpt = ProfileChoice.none,
    purpose: PurposeOpt = None,
    password_file: PasswordFileOpt = None,
    password_env: PasswordEnvOpt = None,
    no_password: NoPasswordOpt = False,
    pin_file: PinFileOpt = None,
    pin_env: PinEnvOpt = None,
    associations: Annotated[int, typer.Option(help="parallel associations")] = 1,
    timeout: Annotated[
        float, typer.Option(help="seconds for connecting, negotiating and each response")
    ] = 30.0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="print only problems and the summary")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="log pynetdicom's association events")
    ] = False,
) -> None:
    """Send DICOM files to a storage SCP (C-STORE), optionally signing each one first.

    Files travel bit-for-bit in their own transfer syntax. With --sign the key is opened (and
    a token logged in to) once for the whole batch. Exit 0 all stored, 1 some refused,
    4 operational error (unreadable file, cannot connect, association rejected, key problem).
    """
    if sign and not key:
        raise fail("--sign needs --key", 2)
    if key and not sign:
        raise fail("--key is only used with --sign", 2)
    if associations < 1:
        raise fail("--associations must be at least 1", 2)
    if not 0 < port <= 65535:
        raise fail(f"port {port} is not a TCP port", 2)
    files = [p for p, _rel in expand_inputs(paths, recursive)]
    if not files:
        raise fail("nothing to send", 2)
    _quiet_pynetdicom(verbose)
    from dsig.net import NetError
    from dsig.net.scu import SendOptions, send_files

    provider = None
    sign_options = None
    errors: tuple[type[Exception], ...] = (NetError, *operational_errors())
    try:
        if sign and key:
            from dsig.profiles import Profile
            from dsig.signer import SignOptions
            from tokens.digest import HashAlgorithm
            from tokens.registry import open_key_provider

            secret, may_prompt = read_secret(
                file=password_file or pin_file,
                env=password_env or pin_env,
                none=no_password,
                what="PIN" if key.startswith("pkcs11:") else "password",
            )
            sign_options = SignOptions(
                mac=HashAlgorithm.from_name(mac.value),
                profile=Profile(profile.value),
                purpose=purpose,
            )
            provider = open_key_provider(
                key, cert=cert, password=secret, secrets=prompt_secret if may_prompt else no_prompt
            )
        options = SendOptions(
            host=host, port=port, calling_ae=ae_title, called_ae=called_ae,
            sign=sign_options, associations=associations, timeout=timeout,
        )  # fmt: skip
        summary = send_files(
            files, options, provider=provider, on_result=lambda r: _print_result(r, quiet)
        )
    except errors as e:
        raise fail(str(e)) from None
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
