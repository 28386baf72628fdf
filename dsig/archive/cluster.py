"""Run an audit on Dask distributed: ``--scheduler tcp://HOST:PORT`` or ``--cluster local:N``.

Tasks are batches of paths (:func:`dsig.archive.work.verify_batch`); the verify options are
scattered once to every worker. A bounded window of tasks is kept in flight while the listing
is read, and results stream back in completion order (``as_completed``). A task whose worker
dies is rescheduled by Dask on another worker (up to ``distributed.scheduler.allowed-failures``
times); one that raises is retried (``retries``). A batch that still fails is reported as ERROR
for each of its files, never dropped. dask.distributed is the optional ``dsig[archive]`` extra.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from dsig.archive.pool import batches
from dsig.archive.shipping import Packed, pack, unpack
from dsig.archive.sources import EXTRA_HINT, ArchiveExtraMissingError, SourceUsageError
from dsig.archive.work import Render, verify_batch
from dsig.errors import DsigError
from dsig.operations.batch import Candidate, Outcome, outcome_of
from tokens.faults import BadEnvironmentError

if TYPE_CHECKING:
    from dsig.operations.verifier import VerifyOptions

#: Paths per Dask task: large enough that scheduling (~1 ms a task) is small beside ~30 ms of
#: verification, small enough that a lost worker costs little to redo.
BATCH = 16
#: Tasks in flight per worker thread.
WINDOW = 4
#: Retries of a task that raised (a worker that died is rescheduled by Dask on its own).
RETRIES = 2
CONNECT_TIMEOUT = "10s"


class ClusterError(DsigError, BadEnvironmentError):
    """The scheduler cannot be reached, or the local cluster cannot start."""


def parse_cluster(spec: str) -> int:
    """Workers of ``local:N`` (N >= 1)."""
    match = re.fullmatch(r"local:([1-9][0-9]*)", spec)
    if not match:
        raise SourceUsageError(
            f"cluster {spec}: expected local:N (N workers, N >= 1)", option="cluster"
        )
    return int(match.group(1))


@contextlib.contextmanager
def connect(scheduler: str | None, cluster: str | None) -> Iterator[Any]:
    """A ``distributed.Client``: to ``scheduler``, or to a local cluster of ``cluster``
    (``local:N``: N single-threaded worker processes on 127.0.0.1, stopped on exit)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ArchiveExtraMissingError(f"Dask runs need dask.distributed: {EXTRA_HINT}") from None
    workers = parse_cluster(cluster) if cluster else 0
    stack = contextlib.ExitStack()
    try:
        if cluster:
            local = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            )
            stack.enter_context(local)
            client = stack.enter_context(Client(local))  # type: ignore[no-untyped-call]
        else:
            client = stack.enter_context(Client(scheduler, timeout=CONNECT_TIMEOUT))  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as e:
        stack.close()
        where = scheduler or cluster
        raise ClusterError(f"Dask scheduler {where}: {type(e).__name__}: {e}") from None
    with stack:
        yield client


def run_on_dask(
    client: Any,
    candidates: Iterable[Candidate],
    options: VerifyOptions,
    *,
    render: Render | None = None,
    batch: int = BATCH,
) -> Iterator[Outcome]:
    """Verify ``candidates`` on the workers of ``client``; outcomes in completion order."""
    from distributed import as_completed

    # A key of its own (hash=False): an earlier run's release of identical options must not
    # delete this one's.
    shared = client.scatter(pack(options), broadcast=True, hash=False)
    threads = max(1, sum(client.nthreads().values()))
    chunks = batches(candidates, batch)
    running = as_completed(with_results=False)  # type: ignore[no-untyped-call]
    paths: dict[str, list[Candidate]] = {}

    def submit() -> bool:
        chunk = next(chunks, None)
        if chunk is None:
            return False
        future = client.submit(_task, chunk, shared, render, retries=RETRIES, pure=False)
        paths[future.key] = chunk
        running.add(future)  # type: ignore[no-untyped-call]
        return True

    for _ in range(threads * WINDOW):
        if not submit():
            break
    for future in running:
        chunk = paths.pop(future.key)
        try:
            outcomes: list[Outcome] = future.result()
        except Exception as e:  # KilledWorker after repeated losses, or a bug on every retry
            outcomes = [_lost(c, e, render) for c in chunk]
        future.release()
        yield from outcomes
        submit()


def _task(chunk: list[Candidate], packed: Packed, render: Render | None) -> list[Outcome]:
    """What a Dask worker runs: one batch, with the options unpacked once per worker."""
    return verify_batch(chunk, unpack(packed), render)


def _lost(candidate: Candidate, error: BaseException, render: Render | None) -> Outcome:
    from dsig.results import FileResult

    message = f"not verified: the Dask task failed ({type(error).__name__}: {error})"
    return outcome_of(FileResult(candidate.path, error=" ".join(message.split())), render)
