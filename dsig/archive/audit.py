"""Which runner an audit uses: today's forked workers over a local file list, forked workers
over a lazy listing (URLs), or Dask. All yield the same
:class:`~dsig.operations.batch.Outcome` records."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dsig.archive.sources import SourceError, is_remote, iter_candidates, local_path
from dsig.archive.work import Render
from dsig.operations.batch import Candidate, Outcome

if TYPE_CHECKING:
    from dsig.operations.verifier import VerifyOptions


@dataclass(frozen=True, slots=True)
class Plan:
    """What to verify (frozen: narrowed by copying). ``listed``: the local files, when every
    path is local (then the total is known); None for a lazy listing. ``done``: paths already
    recorded (``--resume``)."""

    paths: tuple[str, ...]
    recursive: bool
    listed: tuple[Candidate, ...] | None
    done: Container[str] = field(default_factory=frozenset)

    @property
    def total(self) -> int | None:
        """Files to verify, when known before the run."""
        return None if self.listed is None else len(self.listed)

    def local_inputs(self) -> Iterator[Path]:
        """Local files among the inputs (an output must not replace one)."""
        if self.listed is not None:
            yield from (Path(c.path) for c in self.listed)
        else:
            yield from (local_path(p) for p in self.paths if not is_remote(p))

    def without(self, outputs: Iterable[Path | None]) -> Plan:
        """The plan without ``outputs`` (a journal being resumed inside the directory it
        audits is not an input)."""
        own = {os.path.realpath(p) for p in outputs if p is not None}
        if self.listed is None or not own:
            return self
        kept = tuple(c for c in self.listed if os.path.realpath(c.path) not in own)
        return Plan(self.paths, self.recursive, kept, self.done)

    def skipping(self, done: Container[str]) -> Plan:
        """The plan without the paths already recorded."""
        listed = (
            None if self.listed is None else tuple(c for c in self.listed if c.path not in done)
        )
        return Plan(self.paths, self.recursive, listed, done)

    def candidates(self) -> Iterator[Candidate]:
        """The candidates; a lazy listing is read as they are consumed."""
        if self.listed is not None:
            return iter(self.listed)
        done = self.done
        return (c for c in iter_candidates(self.paths, self.recursive) if c.path not in done)


def plan(paths: Sequence[str], recursive: bool) -> Plan:
    """List local-only inputs now (as ``dsig verify`` always did); defer remote listings."""
    from dsig.operations.batch import discover

    if any(is_remote(p) for p in paths):
        return Plan(tuple(paths), recursive, None)
    try:
        found = discover([local_path(p) for p in paths], recursive)
        return Plan(tuple(paths), recursive, tuple(found))
    except ValueError as e:  # a directory without --recursive (exit 4, as it always was)
        raise SourceError(str(e)) from None


@contextlib.contextmanager
def outcomes(
    work: Plan,
    options: VerifyOptions,
    *,
    jobs: int,
    scheduler: str | None = None,
    cluster: str | None = None,
    render: Render | None = None,
) -> Iterator[Iterator[Outcome]]:
    """The outcomes of ``work``: on Dask with ``scheduler``/``cluster`` (completion order),
    else in ``jobs`` local processes (listing order)."""
    from dsig.operations.batch import run

    if scheduler or cluster:
        from dsig.archive.cluster import connect, run_on_dask

        with connect(scheduler, cluster) as client:
            yield run_on_dask(client, work.candidates(), options, render=render)
        return
    if work.listed is not None:
        yield run(work.listed, options, jobs=jobs, render=render, warm=1)
        return
    from dsig.archive.pool import forked_stream

    yield forked_stream(work.candidates(), options, jobs=jobs, render=render)
