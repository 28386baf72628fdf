"""The output side of ``dsig verify``: human lines, --json, --jsonl (stdout or a resumable
journal), --report, progress; the runner (local processes or Dask) is dsig.archive's."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from dsig.cli._common import fail

if TYPE_CHECKING:
    from dsig import FileResult, Outcome, Tally, VerifyOptions
    from dsig.archive import Plan


def default_jobs() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Distribution:
    """Where files are verified: ``jobs`` local processes, or Dask (``scheduler`` address or
    ``cluster`` ``local:N``)."""

    jobs: int | None = None
    scheduler: str | None = None
    cluster: str | None = None

    def check(self) -> None:
        """Refuse options that exclude each other (exit 2)."""
        if self.scheduler and self.cluster:
            raise fail("--scheduler and --cluster exclude each other", 2)
        if (self.scheduler or self.cluster) and self.jobs:
            raise fail("--jobs runs local processes: it excludes --scheduler and --cluster", 2)


@dataclass(frozen=True)
class _Run:
    """The outputs and runner of one ``dsig verify`` run, as :func:`run_verify` checked them."""

    journal_path: Path | None
    jsonl: str | None
    json_out: bool
    resume: bool
    report: Path | None
    csv_out: Path | None
    render: Callable[[FileResult], object]
    distribution: Distribution
    started: str


def run_verify(
    paths: Sequence[str | Path],
    options: VerifyOptions,
    *,
    recursive: bool,
    json_out: bool,
    jsonl: str | None,
    report: Path | None,
    render: Callable[[FileResult], object],
    distribution: Distribution = Distribution(),
    resume: bool = False,
    force: bool = False,
    csv_out: Path | None = None,
) -> int:
    """Verify ``paths`` (local paths or fsspec URLs) and print the results; returns the exit
    code of the run. ``jsonl``: ``"-"`` streams records to stdout, a file name journals them
    there (``resume``: skip the files it already records, append the rest).

    Outputs (``report``, ``csv_out``, the journal) are checked before anything is verified:
    never an input, never an existing file without ``force``, never a directory or a device."""
    from dsig import DsigError, Tally
    from dsig.archive import SourceUsageError, plan
    from dsig.cli._audit_outputs import audit_options, guard_audit_outputs
    from dsig.cli._common import utc_now

    journal_path = Path(jsonl) if jsonl not in (None, "-") else None
    if resume and journal_path is None:
        raise fail("--resume needs --jsonl FILE (the journal to resume)", 2)
    distribution.check()
    started = utc_now()
    try:
        work = plan([str(p) for p in paths], recursive)
        if resume:  # the journal being continued is not an input (it may sit in the tree)
            work = work.without([journal_path])
    except SourceUsageError as e:
        raise fail(e, 2) from None
    except DsigError as e:
        raise fail(e) from None
    inputs = list(work.local_inputs())
    guard_audit_outputs(report, csv_out, journal_path, inputs, force=force, resume=resume)
    options = audit_options(options, report, csv_out)
    # Counts only; the records and paths an output lists at the end are spooled to disk.
    tally = Tally(keep_records=report is not None or csv_out is not None, keep_skipped=json_out)
    try:
        run = _Run(journal_path, jsonl, json_out, resume, report, csv_out, render, distribution,
                   started)  # fmt: skip
        return _audit(work, options, tally, paths, run)
    finally:
        tally.close()


def _audit(work: Plan, options: VerifyOptions, tally: Tally, paths: Sequence[str | Path],
           run: _Run) -> int:  # fmt: skip
    """The run proper: verify, journal and print, then the summary and the audit outputs."""
    from dsig import DsigError, frozen_now, summary_table
    from dsig.archive import (
        Journal,
        SourceUsageError,
        is_remote,
        local_path,
        outcome_of_record,
        outcomes,
        record_of,
    )

    journal_path, jsonl, json_out, resume = run.journal_path, run.jsonl, run.json_out, run.resume
    report, csv_out, render, distribution = run.report, run.csv_out, run.render, run.distribution
    started = run.started
    journal: Journal | None = None
    resumed = 0
    try:
        if journal_path is not None and resume:
            journal, done = Journal.resume(journal_path, lambda r: tally.add(outcome_of_record(r)))
            resumed = len(done)
            work = work.skipping(done)
        elif journal_path is not None:
            journal = Journal.create(journal_path)
        human = not (json_out or jsonl)
        runner = outcomes(
            work,
            frozen_now(options),
            jobs=distribution.jobs or default_jobs(),
            scheduler=distribution.scheduler,
            cluster=distribution.cluster,
            render=render if human else None,
        )
        with runner as stream:
            show_progress = work.total != 1 and sys.stderr.isatty()
            for outcome in _with_progress(stream, work.total, tally) if show_progress else stream:
                tally.add(outcome)
                if journal is not None:
                    journal.write(record_of(outcome))
                if jsonl == "-":
                    _emit(json.dumps(record_of(outcome)))
                elif json_out and outcome.skipped is None and tally.spool is not None:
                    tally.spool.add_result(outcome.result or {})
                elif human and outcome.text:
                    _emit(outcome.text.rstrip("\n"))
    except BaseException as e:  # the journal keeps every record written: --resume goes on
        if journal is not None:
            journal.close_quietly()
        if isinstance(e, SourceUsageError):
            raise fail(e, 2) from None
        if isinstance(e, DsigError):  # a listing or the scheduler failed
            raise fail(e) from None
        raise
    from dsig import json_document_fields, jsonl_summary_line
    from dsig.cli._trust_options import policy_footer, policy_statement

    summary = tally.summary()
    code = tally.exit_code()
    stated = policy_statement(options)
    findings = run_findings(summary, options)
    if findings:
        code = 1  # a requirement not met (nothing was verified, so nothing else counts)
    if journal is not None:
        try:
            journal.write(jsonl_summary_line(summary, findings, stated))
            journal.close()
        except DsigError as e:
            raise fail(e) from None
    if json_out:
        results = tally.spool.results() if tally.spool is not None else iter(())
        fields = json_document_fields(results, summary, tally.skipped_paths(), findings, stated)
        for line in json_lines(fields):
            typer.echo(line)
    elif jsonl == "-":
        _emit(json.dumps(jsonl_summary_line(summary, findings, stated)))
    else:
        counted = summary["files"] + summary["skipped"]
        listing = any(is_remote(p) or local_path(p).is_dir() for p in map(str, paths))
        if counted > 1 or listing:
            _emit(summary_table(summary))
        for finding in findings:
            _emit(f"{finding['code']}: {finding['message']}")
        _emit(policy_footer(options))
    from dsig.cli._audit_outputs import write_audit_outputs

    write_audit_outputs(report, csv_out, tally, summary, code, options, started=started,
                        resumed=resumed)  # fmt: skip
    return code


_END: Any = object()


def json_lines(fields: Sequence[tuple[str, Any]]) -> Iterator[str]:
    """``json.dumps(dict(fields), indent=2)`` line by line; a value that is an iterator is a
    list written an element at a time (never held whole in memory)."""
    yield "{"
    for n, (key, value) in enumerate(fields):
        comma = "," if n < len(fields) - 1 else ""
        name = json.dumps(key)
        if not isinstance(value, Iterator):
            yield f"  {name}: " + json.dumps(value, indent=2).replace("\n", "\n  ") + comma
            continue
        item = next(value, _END)
        if item is _END:
            yield f"  {name}: []{comma}"
            continue
        yield f"  {name}: ["
        for following in value:
            yield "    " + json.dumps(item, indent=2).replace("\n", "\n    ") + ","
            item = following
        yield "    " + json.dumps(item, indent=2).replace("\n", "\n    ")
        yield f"  ]{comma}"
    yield "}"


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


def _with_progress(
    outcomes: Iterator[Outcome], total: int | None, tally: Tally
) -> Iterator[Outcome]:
    """A rich progress bar on stderr: count, files/s, ETA (when the total is known) and the
    running count by verdict (the whole audit, a resumed journal's files included)."""
    global _progress_console
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    columns: list[str | ProgressColumn] = [TextColumn("verifying"), BarColumn()]
    columns += [MofNCompleteColumn()] if total is not None else [TextColumn("{task.completed}")]
    columns += [TextColumn("{task.fields[rate]}"), TimeElapsedColumn()]
    if total is not None:
        columns += [TextColumn("ETA"), TimeRemainingColumn()]
    columns += [TextColumn("{task.fields[counts]}")]
    progress = Progress(
        *columns,
        console=console,
        transient=True,
        # No refresh thread: worker processes are forked while the bar is shown.
        auto_refresh=False,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    task = progress.add_task("verify", total=total, rate="", counts="")
    _progress_console = console
    last = 0.0
    try:
        with progress:
            for outcome in outcomes:
                yield outcome  # counted by the caller's tally before the bar is drawn
                speed = progress.tasks[0].speed
                rate = f"{speed:,.0f} files/s" if speed else ""
                now = time.monotonic()
                refresh = now - last >= 0.1  # at most 10 redraws a second
                if refresh:
                    last = now
                progress.update(
                    task, advance=1, rate=rate, counts=verdict_counts(tally), refresh=refresh
                )
    finally:
        _progress_console = None


def verdict_counts(tally: Tally) -> str:
    """``VALID 12 INVALID 1 SKIPPED 3``: the non-zero counts, most severe first."""
    from dsig import severity

    counts = sorted(tally.files.items(), key=lambda kv: severity(kv[0]))
    parts = [f"{k} {n}" for k, n in counts if n]
    if tally.skipped:
        parts.append(f"SKIPPED {tally.skipped}")
    return " ".join(parts)
