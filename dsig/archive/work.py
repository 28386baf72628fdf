"""One unit of audit work wherever it runs (this process, a forked worker, a Dask worker):
verify a batch of candidates, local paths or URLs, into JSON-able outcomes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from dsig.archive.sources import ObjectBlob, SourceError, is_remote, local_copy, local_path
from dsig.operations.batch import Candidate, Outcome, outcome_of, verify_candidate

if TYPE_CHECKING:
    from dsig.operations.verifier import VerifyOptions
    from dsig.results import FileResult

Render = Callable[["FileResult"], object]


def verify_any(
    candidate: Candidate, options: VerifyOptions, render: Render | None = None
) -> Outcome:
    """Verify a local file, a ``file://`` URL or a remote object (read by ranged requests,
    :class:`~dsig.archive.sources.ObjectBlob`; copied to a scratch file only when evidence
    records are checked); results name the path or URL as given. An unreadable object is an
    ERROR result."""
    from dsig.results import FileResult

    if not is_remote(candidate.path):
        path = str(local_path(candidate.path))
        shown = candidate.path if path != candidate.path else None
        return verify_candidate(
            Candidate(path, candidate.explicit), options, render, shown_as=shown
        )
    if options.evidence is None:  # streamed: ranged reads, nothing copied
        with ObjectBlob(candidate.path, candidate.size) as blob:
            return verify_candidate(candidate, options, render, blob=blob)
    try:  # an evidence record covers the file's bytes: hashed from a scratch copy
        with local_copy(candidate.path) as scratch:
            copy = Candidate(str(scratch), candidate.explicit)
            return verify_candidate(copy, options, render, shown_as=candidate.path)
    except SourceError as e:
        return outcome_of(FileResult(candidate.path, error=str(e)), render)


def verify_batch(
    candidates: Sequence[Candidate], options: VerifyOptions, render: Render | None = None
) -> list[Outcome]:
    """:func:`verify_any` for each candidate, in order (a Dask task or a worker's chunk)."""
    return [verify_any(c, options, render) for c in candidates]
