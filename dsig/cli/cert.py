"""``dsig cert check``: judge a signer certificate alone, before it signs anything."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dsig.cli._common import (
    EXIT_INDETERMINATE,
    EXIT_INVALID,
    EXIT_OK,
    command_group,
    fail,
    operational_errors,
    with_flag,
)
from dsig.cli._trust_options import TrustArgs, trust_options

if TYPE_CHECKING:
    from pki import TrustPolicy, TrustResult

cert_app = command_group("cert", "Certificate checks (the signer alone).")


@cert_app.command("check")
@trust_options(
    "trust_store", "untrusted", "crl", "ocsp", "revocation", "online", "allow_weak",
    "policy_file", "policy", "require_explicit_policy", "inhibit_policy_mapping",
    "inhibit_any_policy",
)  # fmt: skip
def check(
    certificate: Annotated[
        Path, typer.Argument(help="signer certificate (PEM/DER; further certificates: untrusted)")
    ],
    *,
    trust: TrustArgs,
    at: Annotated[
        str | None, typer.Option(help="validation moment: now (default) or ISO-8601")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="machine-readable result")] = False,
) -> None:
    """Check a signer certificate: path to a trust anchor, validity, revocation, certificate
    policies, and whether it may sign DICOM at all (key usage, EKU, not a CA).

    Exit 0 valid, 1 invalid, 3 indeterminate (e.g. no trust store: path not checked), 4 error.
    """
    import pki

    moment = _moment(at)
    trust_policy = trust.trust_policy()
    try:
        certs = pki.load_certificates(certificate, what="certificate")
        leaf, extra = certs[0], certs[1:]
        result = pki.check_certificate(leaf, trust_policy, at=moment, extra_certs=extra)
    except operational_errors() as e:
        raise fail(e) from None
    if json_out:
        typer.echo(json.dumps(_json(leaf.subject.rfc4514_string(), leaf, result, trust_policy)))
    else:
        _human(leaf.subject.rfc4514_string(), leaf.serial_number, result, trust_policy)
    raise typer.Exit(_exit_code(result))


def _moment(text: str | None) -> dt.datetime:
    if text is None or text == "now":
        return dt.datetime.now(dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"--at: expected now or ISO-8601, got {text!r}", 2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _exit_code(result: TrustResult) -> int:
    from pki import TrustIndication

    return {
        TrustIndication.VALID: EXIT_OK,
        TrustIndication.INVALID: EXIT_INVALID,
    }.get(result.indication, EXIT_INDETERMINATE)


def _statement(policy: TrustPolicy | None) -> tuple[object, str]:
    from dsig import __version__

    if policy is None:
        return "none (no trust store: path not checked)", f"dsig {__version__}"
    return policy.summary(), f"dsig {__version__}"


def _json(
    subject: str, leaf: object, result: TrustResult, policy: TrustPolicy | None
) -> dict[str, object]:
    from dsig import __version__

    stated, _ = _statement(policy)
    serial = getattr(leaf, "serial_number", 0)
    return {
        "certificate": subject,
        "serial": f"{serial:x}",
        "indication": result.indication.value,
        "trust": result.to_json(),
        "dsig_version": __version__,
        "policy": stated,
    }


def _human(subject: str, serial: int, result: TrustResult, policy: TrustPolicy | None) -> None:
    from dsig import __version__

    typer.echo(f"{result.indication.value:<13} {subject} (serial {serial:x})")
    if result.chain:
        typer.echo("  chain: " + " <- ".join(c.subject.rfc4514_string() for c in result.chain))
    if result.validated_at is not None:
        typer.echo(f"  validated at {result.validated_at.isoformat()}")
    if result.chain and result.indication.value == "VALID":
        typer.echo(f"  accepted policies: {', '.join(result.policies) or 'none'}")
    if result.revocation:
        typer.echo(f"  revocation: {result.revocation_line()}")
    for finding in result.findings:
        typer.echo(f"  {finding.code}: {with_flag(finding.message, finding)}")
    text = policy.describe() if policy is not None else "none (no trust store: path not checked)"
    typer.echo(f"trust policy: {text}; dsig {__version__}")
