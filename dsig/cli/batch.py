"""The output side of ``dsig verify``: human lines, --json, --jsonl, --report, progress."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from dsig.cli._common import fail

if TYPE_CHECKING:
    from dsig.batch import Outcome
    from dsig.report import FileResult
    from dsig.verifier import VerifyOptions


def default_jobs() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def run_verify(
    paths: list[Path],
    options: VerifyOptions,
    *,
    recursive: bool,
    jobs: int | None,
    json_out: bool,
    jsonl: bool,
    report: Path | None,
    render: Callable[[FileResult], object],
    force: bool = False,
    csv_out: Path | None = None,
) -> int:
    """Verify ``paths`` and print the results; returns the exit code of the run.

    ``report`` and ``csv_out`` are checked before anything is verified: never an input,
    never an existing file without ``force``, never a directory or a device."""
    from dsig.batch import Tally, discover, frozen_now, run, summary_table, utc_now
    from dsig.cli._audit_outputs import audit_options, guard_audit_outputs

    started = utc_now()
    try:
        candidates = discover(paths, recursive)
    except ValueError as e:
        raise fail(str(e)) from None
    guard_audit_outputs(report, csv_out, candidates, force=force)
    options = audit_options(options, report, csv_out)
    human = not (json_out or jsonl)
    tally = Tally(keep_records=report is not None or csv_out is not None)
    files_json: list[dict[str, Any]] = []
    outcomes = run(
        candidates,
        frozen_now(options),
        jobs=jobs or default_jobs(),
        render=render if human else None,
        warm=1,
    )
    show_progress = len(candidates) > 1 and sys.stderr.isatty()
    for outcome in _with_progress(outcomes, len(candidates)) if show_progress else outcomes:
        tally.add(outcome)
        if outcome.skipped is not None:
            if jsonl:
                _emit(json.dumps({"path": outcome.path, "indication": "SKIPPED",
                                  "reason": outcome.skipped}))  # fmt: skip
            continue
        if jsonl:
            _emit(json.dumps(outcome.result))
        elif json_out:
            files_json.append(outcome.result or {})
        elif outcome.text:
            _emit(outcome.text.rstrip("\n"))
    from dsig.cli._trust_options import policy_footer, policy_statement

    summary = tally.summary()
    code = tally.exit_code()
    stated = policy_statement(options)
    findings = run_findings(summary, options)
    if findings:
        code = 1  # a requirement not met (nothing was verified, so nothing else counts)
    if json_out:
        typer.echo(json.dumps(
            {"files": files_json, "summary": summary, "skipped": tally.skipped,
             "findings": findings, **stated}, indent=2
        ))  # fmt: skip
    elif jsonl:
        _emit(json.dumps({"summary": summary, "findings": findings, **stated}))
    else:
        if len(candidates) > 1 or any(p.is_dir() for p in paths):
            _emit(summary_table(summary))
        for finding in findings:
            _emit(f"{finding['code']}: {finding['message']}")
        _emit(policy_footer(options))
    from dsig.cli._audit_outputs import write_audit_outputs

    write_audit_outputs(report, csv_out, tally, summary, code, options, started=started)
    return code


def run_findings(summary: dict[str, Any], options: VerifyOptions) -> list[dict[str, str]]:
    """Findings about the whole run: NOTHING_VERIFIED when a --require was given but no file
    was verified (an empty directory, or only files that are not DICOM)."""
    if not options.require or summary.get("files", 0):
        return []
    skipped = int(summary.get("skipped", 0))
    what = f"{skipped} file(s) skipped as not DICOM" if skipped else "no file found"
    wanted = ", ".join(options.require)
    return [{"code": "NOTHING_VERIFIED", "severity": "error",
             "message": f"--require {wanted}: no DICOM file was verified ({what})"}]  # fmt: skip


_progress_console: Any = None


def _emit(text: str) -> None:
    """One result to stdout; above the progress bar when both share the terminal."""
    if _progress_console is not None and sys.stdout.isatty():
        _progress_console.print(text, markup=False, highlight=False, soft_wrap=True)
    else:
        typer.echo(text)


def _with_progress(outcomes: Iterator[Outcome], total: int) -> Iterator[Outcome]:
    """A rich progress bar on stderr: count, rate and ETA."""
    global _progress_console
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("verifying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        # No refresh thread: worker processes are forked while the bar is shown.
        auto_refresh=False,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    task = progress.add_task("verify", total=total, rate="")
    _progress_console = console
    last = 0.0
    try:
        with progress:
            for outcome in outcomes:
                speed = progress.tasks[0].speed
                rate = f"{speed:,.0f} files/s" if speed else ""
                now = time.monotonic()
                refresh = now - last >= 0.1  # at most 10 redraws a second
                if refresh:
                    last = now
                progress.update(task, advance=1, rate=rate, refresh=refresh)
                yield outcome
    finally:
        _progress_console = None
