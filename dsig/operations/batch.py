"""Verify many files: discovery, parallel workers, a run summary, streamed results.

Workers are processes forked from the CLI process (``fork`` start method): they inherit the
``VerifyOptions`` the CLI built - trust stores, CRLs and OCSP responses already loaded, nothing
pickled. Each file is read and verified entirely in its worker; only JSON-able dicts come back.

Trust caching: the evaluator caches per (certificate, moment); ``"now"`` is frozen at the start
of the run, so every file signed by the same certificate hits the cache. The cache lives in each
worker process: with ``--jobs N`` one certificate is evaluated (and an online CRL/OCSP fetched)
at most N times per run, not once per file. Before forking, the parent warms the cache with
the signer certificates of the first files, so common signers are evaluated once for all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dsig.errors import DsigError, InputError
from tokens.faults import BadEnvironmentError

if TYPE_CHECKING:
    from dsig.encoding.blob import Blob
    from dsig.operations.audit_spool import AuditSpool
    from dsig.operations.verifier import VerifyOptions
    from dsig.results import FileResult

#: Files per task sent to a worker (amortises inter-process messages for small files).
_CHUNK = 8
#: Tasks in flight per worker (bounds memory for runs of millions of files).
_WINDOW = 4

NOT_DICOM = "not a DICOM file"

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Candidate:
    """A file to verify. ``explicit``: named on the command line (so never skipped)."""

    path: str
    explicit: bool
    #: Bytes, when the listing said (an object then needs no HEAD request to be opened).
    size: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a worker found for one file: skipped (with the reason) or a verification result."""

    path: str
    skipped: str | None = None
    result: dict[str, Any] | None = None
    text: str | None = None


def discover(paths: Iterable[Path], recursive: bool) -> list[Candidate]:
    """Files named, and with ``recursive`` every regular file below the directories named
    (sorted, symlinked directories not followed). Raises InputError for a directory without
    ``recursive``."""
    found: list[Candidate] = []
    for path in paths:
        if path.is_dir():
            if not recursive:
                raise InputError(
                    f"{path} is a directory (not walked without recursion)", option="recursive"
                )
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    full = os.path.join(root, name)
                    if os.path.isfile(full):
                        found.append(Candidate(full, explicit=False))
        else:
            found.append(Candidate(str(path), explicit=True))
    return found


def has_dicm_prefix(path: str | Blob) -> bool:
    """A DICOM Part 10 file: 128-byte preamble then ``DICM``."""
    from dsig.encoding.blob import blob_of

    try:
        with blob_of(path).open() as fp:
            head = fp.read(132)
    except OSError:
        return True  # let the reader report the error
    return len(head) == 132 and head[128:] == b"DICM"


def not_dicom_reason(path: str | Blob, options: VerifyOptions) -> str | None:
    """Why a file found by a walk is not DICOM, or None when it is: it is DICOM when it has the
    ``DICM`` prefix or parses as a data set without it (as when named directly). A file that
    hits a parse limit counts as DICOM: it is reported (ERROR), never skipped."""
    if has_dicm_prefix(path):
        return None
    from dsig.encoding.blob import blob_of
    from dsig.encoding.limits import LimitExceededError
    from dsig.encoding.reader import read_dicom
    from dsig.errors import DicomFormatError

    try:
        read_dicom(blob_of(path), options.limits)
    except LimitExceededError:
        return None
    except DicomFormatError as e:
        return f"{NOT_DICOM}: {e}"
    return None


# --- the worker side -------------------------------------------------------------------------

_options: VerifyOptions | None = None
_render: Callable[[FileResult], object] | None = None


def _verify(candidate: Candidate) -> Outcome:
    assert _options is not None
    return verify_candidate(candidate, _options, _render)


def verify_candidate(
    candidate: Candidate,
    options: VerifyOptions,
    render: Callable[[FileResult], object] | None = None,
    *,
    shown_as: str | None = None,
    blob: Blob | None = None,
) -> Outcome:
    """Verify one file (or skip it as not DICOM when found by a walk). ``shown_as``: the name
    to report instead of ``candidate.path`` (a URL whose object was copied to that path).
    ``blob``: read the file from there (an object in storage named ``candidate.path``)."""
    from dsig.operations.verifier import verify_file
    from dsig.results import FileResult

    name = shown_as or candidate.path
    source: str | Blob = blob if blob is not None else candidate.path
    if not candidate.explicit:
        reason = not_dicom_reason(source, options)
        if reason is not None:
            return Outcome(name, skipped=reason.replace(candidate.path, name))
    try:
        result = verify_file(Path(source) if isinstance(source, str) else source, options)
    except Exception as e:  # a bug must not take the whole run down: report it for this file
        result = FileResult(candidate.path, error=f"internal error: {type(e).__name__}: {e}")
    if shown_as is not None:
        error = result.error.replace(candidate.path, shown_as) if result.error else result.error
        result = dataclasses.replace(result, path=shown_as, error=error)
    return outcome_of(result, render)


def outcome_of(result: FileResult, render: Callable[[FileResult], object] | None) -> Outcome:
    """The outcome of a verified file, with its human text when ``render`` is given."""
    text = None
    if render is not None:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            render(result)
        text = buf.getvalue()
    from dsig.operations.verify_json import json_file_object

    return Outcome(result.path, result=json_file_object(result), text=text)


def frozen_now(options: VerifyOptions) -> VerifyOptions:
    """The same options with "now" fixed at this moment (one validation moment per run, so
    the trust cache hits for every file of a signer)."""
    now = options.clock()
    return dataclasses.replace(options, clock=lambda: now)


def run(
    candidates: Sequence[Candidate],
    options: VerifyOptions,
    *,
    jobs: int,
    render: Callable[[FileResult], object] | None = None,
    warm: int = 0,
) -> Iterator[Outcome]:
    """Verify ``candidates`` in order; ``jobs`` > 1 uses that many forked worker processes.

    ``render`` (human output) runs in the worker with stdout captured into ``Outcome.text``.
    ``warm``: verify this many leading files in this process before forking, so the trust
    cache the workers inherit already holds their signers.
    """
    global _options, _render
    _options, _render = options, render
    try:
        if jobs <= 1 or len(candidates) <= 1:
            for c in candidates:
                yield _verify(c)
            return
        head, rest = candidates[:warm], candidates[warm:]
        for c in head:
            yield _verify(c)
        yield from forked_map(_verify, rest, jobs)
    finally:
        _options, _render = None, None


# --- forked workers ------------------------------------------------------------------------

_task: tuple[Callable[[Any], Any], Sequence[Any], tuple[type[BaseException], ...]] | None = None


class ForkedTaskError(DsigError, BadEnvironmentError):
    """An expected (operational) error raised by a task in a worker process."""


def _run_indices(indices: list[int]) -> list[tuple[bool, Any]]:
    assert _task is not None
    fn, items, expected = _task
    out: list[tuple[bool, Any]] = []
    for i in indices:
        try:
            out.append((True, fn(items[i])))
        except expected as e:
            out.append((False, (True, str(e))))
            break
        except Exception as e:
            out.append((False, (False, f"{type(e).__name__}: {e}")))
            break
    return out


def forked_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    jobs: int,
    *,
    expected: tuple[type[BaseException], ...] = (DsigError,),
) -> Iterator[R]:
    """``fn(item)`` for every item, in order, in ``jobs`` worker processes forked from this
    one: ``fn`` and ``items`` are inherited, not pickled (only results travel, so they must
    pickle). The first exception stops the run: ``expected`` kinds come back as
    :class:`ForkedTaskError` with their message, others as RuntimeError."""
    import multiprocessing
    from concurrent.futures import Future, ProcessPoolExecutor

    global _task
    if not items:
        return
    size = max(1, min(_CHUNK, len(items) // (jobs * 4) or 1))
    _task = (fn, items, expected)
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"))
    pending: deque[Future[list[tuple[bool, Any]]]] = deque()

    def drain(future: Future[list[tuple[bool, Any]]]) -> Iterator[R]:
        for ok, value in future.result():
            if not ok:
                is_expected, message = value
                raise ForkedTaskError(message) if is_expected else RuntimeError(message)
            yield value

    try:
        for start in range(0, len(items), size):
            pending.append(
                pool.submit(_run_indices, list(range(start, min(start + size, len(items)))))
            )
            if len(pending) >= jobs * _WINDOW:
                yield from drain(pending.popleft())
        while pending:
            yield from drain(pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _task = None


# --- the run's tally ---------------------------------------------------------------------------

_SEVERITY = {"INVALID": 0, "ERROR": 1, "INDETERMINATE": 2, "UNSIGNED": 3, "VALID": 4}
NO_SIGNER = "(no signature)"


@dataclass
class Tally:
    """Counts for the summary; with ``keep_records`` (the HTML and CSV reports) or
    ``keep_skipped`` (``--json``) also the per-file records and skipped paths those outputs
    list, spooled to disk (:class:`dsig.operations.audit_spool.AuditSpool`): memory does not grow
    with the number of files. :meth:`close` deletes the spool.

    Mutable on purpose: a running accumulator that :meth:`add` updates as outcomes stream in
    (it owns the spool file), not a result; the verdicts it counts are frozen."""

    files: Counter[str] = field(default_factory=Counter)
    signatures: int = 0
    skipped: int = 0
    #: signer -> indication -> files (a file counts once per distinct signer it holds).
    by_signer: dict[str, Counter[str]] = field(default_factory=dict)
    keep_records: bool = False
    keep_skipped: bool = False
    spool: AuditSpool | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.keep_records or self.keep_skipped:
            from dsig.operations.audit_spool import AuditSpool

            self.spool = AuditSpool()

    def add(self, outcome: Outcome) -> None:
        """Count one outcome."""
        if outcome.skipped is not None:
            self.skipped += 1
            if self.spool is not None:
                self.spool.add_skipped(outcome.path)
            return
        data = outcome.result or {}
        indication = str(data.get("indication", "ERROR"))
        self.files[indication] += 1
        sigs = data.get("signatures") or []
        self.signatures += len(sigs)
        per_signer: dict[str, str] = {}
        for sig in sigs:
            signer = str(sig.get("signer") or "(unknown signer)")
            ind = str(sig.get("indication", "INDETERMINATE"))
            old = per_signer.get(signer)
            if old is None or _SEVERITY.get(ind, 9) < _SEVERITY.get(old, 9):
                per_signer[signer] = ind
        if not per_signer:
            per_signer[NO_SIGNER] = indication
        for signer, ind in per_signer.items():
            self.by_signer.setdefault(signer, Counter())[ind] += 1
        if self.keep_records and self.spool is not None:
            from dsig.operations.audit_record import audit_record

            self.spool.add_record(audit_record(data))

    def records(self) -> Iterator[dict[str, Any]]:
        """The audit records kept (``keep_records``), in the order they were counted."""
        return self.spool.records() if self.spool is not None else iter(())

    def skipped_paths(self) -> Iterator[str]:
        """The skipped paths kept (``keep_records`` or ``keep_skipped``)."""
        return self.spool.skipped() if self.spool is not None else iter(())

    def close(self) -> None:
        """Delete the spool."""
        if self.spool is not None:
            self.spool.close()

    def summary(self) -> dict[str, Any]:
        """The ``summary`` object: counts per file indication, files, signatures, skipped and
        by_signer."""
        out: dict[str, Any] = {
            k: self.files.get(k.upper(), 0)
            for k in ("valid", "invalid", "indeterminate", "unsigned", "error")
        }
        out["files"] = sum(self.files.values())
        out["signatures"] = self.signatures
        out["skipped"] = self.skipped
        out["by_signer"] = {
            signer: {k.lower(): n for k, n in sorted(counts.items())}
            for signer, counts in sorted(self.by_signer.items())
        }
        return out

    def exit_code(self) -> int:
        """The run's exit code (report.exit_code over every verified file)."""
        from dsig.results import Indication, exit_code_for

        return exit_code_for(Indication(k) for k, n in self.files.items() if n)


def severity(indication: str) -> int:
    """Sort key: failures first (INVALID, ERROR, INDETERMINATE, UNSIGNED, VALID)."""
    return _SEVERITY.get(indication, 9)


def summary_table(summary: dict[str, Any]) -> str:
    """The human summary: totals, then one row per signer (names escaped)."""
    from dsig.safe_text import printable

    cols = ("valid", "invalid", "indeterminate", "unsigned", "error", "skipped")
    heads = ("VALID", "INVALID", "INDETERM.", "UNSIGNED", "ERRORS", "SKIPPED")
    rows: list[tuple[str, list[int]]] = [("all files", [int(summary.get(c, 0)) for c in cols])]
    for signer, counts in summary.get("by_signer", {}).items():
        rows.append((signer, [int(counts.get(c, 0)) for c in cols]))
    width = min(60, max(len(printable(r[0])) for r in rows))
    lines = ["", "Summary " + "-" * (width + 62 - 8)]
    lines.append(f"{'signer':<{width}}" + "".join(f" {h:>9}" for h in heads))
    for raw, values in rows:
        name = printable(raw)
        shown = name if len(name) <= width else name[: width - 3] + "..."
        lines.append(f"{shown:<{width}}" + "".join(f" {v:>9}" for v in values))
    lines.append(
        f"{summary.get('files', 0)} file(s) verified, {summary.get('signatures', 0)} "
        f"signature(s), {summary.get('skipped', 0)} skipped (not DICOM)"
    )
    return "\n".join(lines)
