"""Local worker processes for a lazily listed audit (``--jobs N`` over a URL prefix).

Like :func:`dsig.operations.batch.forked_map`, workers are forked so they inherit the verify
options (trust stores loaded, nothing pickled); unlike it, the candidates arrive from a generator,
so each task carries its batch of paths. At most ``jobs * WINDOW`` batches are in flight: memory
stays bounded however long the listing is. Results come back in listing order.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING

from dsig.archive.work import Render, verify_any, verify_batch
from dsig.operations.batch import Candidate, Outcome

if TYPE_CHECKING:
    from dsig.operations.verifier import VerifyOptions

#: Paths per task (amortises inter-process messages for small objects).
BATCH = 8
#: Tasks in flight per worker.
WINDOW = 4

_inherited: tuple[VerifyOptions, Render | None] | None = None


def batches(items: Iterable[Candidate], size: int) -> Iterator[list[Candidate]]:
    """Consecutive lists of ``size`` items (the last may be shorter), read lazily."""
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _run(chunk: list[Candidate]) -> list[Outcome]:
    assert _inherited is not None
    return verify_batch(chunk, *_inherited)


def forked_stream(
    candidates: Iterable[Candidate],
    options: VerifyOptions,
    *,
    jobs: int,
    render: Render | None = None,
) -> Iterator[Outcome]:
    """Verify ``candidates`` in ``jobs`` forked processes (in this one when ``jobs`` is 1).
    The first file is verified here before forking, so workers inherit its signer's trust."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    global _inherited
    it = iter(candidates)
    first = next(it, None)
    if first is None:
        return
    yield verify_any(first, options, render)
    if jobs <= 1:
        for c in it:
            yield verify_any(c, options, render)
        return
    _inherited = (options, render)
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"))
    pending: deque[Future[list[Outcome]]] = deque()
    try:
        for chunk in batches(it, BATCH):
            pending.append(pool.submit(_run, chunk))
            if len(pending) >= jobs * WINDOW:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _inherited = None
