"""The audit outputs of ``dsig verify``: ``--report FILE.html`` and ``--csv FILE``.

Both are checked before anything is verified and written atomically at the end from the
run's tally (:class:`dsig.operations.batch.Tally` records)."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsig.cli._common import EXIT_USAGE, fail, guard_output

if TYPE_CHECKING:
    from dsig import Tally, VerifyOptions


def guard_audit_outputs(
    report: Path | None,
    csv_out: Path | None,
    journal: Path | None,
    inputs: Sequence[Path],
    *,
    force: bool,
    resume: bool = False,
) -> None:
    """Refuse two outputs naming one file, and an output that is an input or exists without
    ``force`` (the journal being resumed is appended to)."""
    named = (("--report", report, force), ("--csv", csv_out, force),
             ("--jsonl", journal, force or resume))  # fmt: skip
    given = [(what, path, replace) for what, path, replace in named if path is not None]
    seen: dict[Path, str] = {}
    for what, path, _ in given:
        other = seen.setdefault(Path(path).resolve(), what)
        if other != what:
            raise fail(f"{what} {path} is also the {other} file: give two names", EXIT_USAGE)
    for what, path, replace in given:
        guard_output(path, inputs=inputs, force=replace, what=what)


def audit_options(
    options: VerifyOptions, report: Path | None, csv_out: Path | None
) -> VerifyOptions:
    """Audit outputs state each file's SHA-256: hash the files as they are verified."""
    if report is None and csv_out is None:
        return options
    return dataclasses.replace(options, file_sha256=True)


def write_audit_outputs(
    report: Path | None,
    csv_out: Path | None,
    tally: Tally,
    summary: dict[str, Any],
    code: int,
    options: VerifyOptions,
    *,
    started: str,
    resumed: int = 0,
) -> None:
    """Write the requested outputs; an unwritable one is one line and exit 4. ``resumed``:
    files read back from a resumed journal (the report says so)."""
    from dsig import DsigError
    from dsig.cli._common import utc_now

    ended = utc_now()
    if csv_out is not None:
        from dsig.reports import write_csv  # the reports load only when one is asked for

        try:
            write_csv(csv_out, tally.records(), tally.skipped_paths())
        except DsigError as e:
            raise fail(f"--csv: {e}") from None
    if report is not None:
        try:
            _write_html(report, tally, summary, code, options, started=started, ended=ended,
                        resumed=resumed)  # fmt: skip
        except DsigError as e:
            raise fail(f"--report: {e}") from None


def _write_html(
    path: Path,
    tally: Tally,
    summary: dict[str, Any],
    code: int,
    options: VerifyOptions,
    *,
    started: str,
    ended: str,
    resumed: int,
) -> None:
    from dsig import atomic_output
    from dsig.cli._trust_options import policy_footer, policy_statement
    from dsig.reports import redact_argv, render_html_lines, verifier_settings

    spool = tally.spool  # kept whenever a report is asked for (Tally.keep_records)
    lines = render_html_lines(
        summary,
        _Reiterable(spool.records_in_report_order) if spool is not None else (),
        _Reiterable(spool.skipped) if spool is not None else (),
        ordered=True,
        started=started,
        ended=ended,
        command=shlex.join(["dsig", *redact_argv(sys.argv[1:])]),
        exit_code=code,
        policy=policy_footer(options),
        statement=policy_statement(options),
        settings=verifier_settings(options),
        resumed=resumed,
    )
    with atomic_output(path) as fp:
        for line in lines:  # streamed: the document is never held whole in memory
            fp.write(line.encode("utf-8") + b"\n")


class _Reiterable:
    """An iterable that asks ``source`` for a fresh iterator each time it is iterated."""

    def __init__(self, source: Callable[[], Iterator[Any]]) -> None:
        self._source = source

    def __iter__(self) -> Iterator[Any]:
        return self._source()
