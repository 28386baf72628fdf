"""Verify files with an explicit trust choice (the public face of :mod:`dsig.operations.verifier`).

Trust is never implied: give a :class:`pki.TrustPolicy` (or any
:class:`pki.TrustEvaluator`), or say ``integrity_only=True`` to check the bytes alone. A
result is never VALID for what was not checked.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from dsig.errors import OptionsError
from dsig.files.inputs import iter_inputs
from dsig.operations.verifier import VerifyOptions
from dsig.operations.verifier import verify_file as _verify_one
from dsig.results import FileResult
from pki.policy import TrustPolicy
from pki.results import TrustEvaluator

StrPath = str | os.PathLike[str]
Trust = TrustPolicy | TrustEvaluator


def verification_options(
    trust: Trust | None, *, integrity_only: bool, options: VerifyOptions | None = None
) -> VerifyOptions:
    """``options`` with the trust choice applied: exactly one of ``trust`` or
    ``integrity_only``. A policy also validates timestamp authorities (its TSA rules) unless
    ``options.tsa_trust`` is set. Raises :class:`~dsig.errors.OptionsError` otherwise."""
    if (trust is None) == (not integrity_only):
        raise OptionsError(
            "give a trust policy (or evaluator), or integrity_only=True to check integrity alone"
            if trust is None
            else "a trust policy and integrity_only exclude each other"
        )
    base = options or VerifyOptions()
    tsa_trust = base.tsa_trust
    evaluator: TrustEvaluator | None
    if isinstance(trust, TrustPolicy):
        from pki.evaluator import PolicyEvaluator

        evaluator = PolicyEvaluator(trust)
        if tsa_trust is None:
            tsa_trust = PolicyEvaluator(trust.for_timestamp_authority())
    else:
        evaluator = trust
    return dataclasses.replace(
        base, trust=evaluator, tsa_trust=tsa_trust, integrity_only=integrity_only
    )


def verify_file(
    path: StrPath,
    *,
    trust: Trust | None = None,
    integrity_only: bool = False,
    options: VerifyOptions | None = None,
) -> FileResult:
    """Read and verify every signature of one file.

    Content problems never raise: an unreadable or malformed file is a result with
    ``error`` set. Contradictory options raise :class:`~dsig.errors.OptionsError`.
    """
    chosen = verification_options(trust, integrity_only=integrity_only, options=options)
    return _verify_one(Path(path), chosen)


def verify_files(
    paths: Iterable[StrPath],
    *,
    trust: Trust | None = None,
    integrity_only: bool = False,
    options: VerifyOptions | None = None,
    recursive: bool = True,
) -> Iterator[FileResult]:
    """Verify files and every file under the directories given (sorted), yielding each
    result as soon as it is known: memory does not grow with the number of files. One
    evaluator serves the whole run, so a certificate chain is validated once."""
    chosen = verification_options(trust, integrity_only=integrity_only, options=options)
    for path, _relative in iter_inputs(paths, recursive=recursive):
        yield _verify_one(path, chosen)
