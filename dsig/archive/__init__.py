"""Archive audits: fsspec sources, resumable JSONL journals, Dask distribution.

The names load on first use; fsspec, s3fs and dask (the ``dsig[archive]`` extra) only when a
URL or a cluster needs them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pki._lazy import lazy_exports

if TYPE_CHECKING:
    from dsig.archive.audit import Plan, outcomes, plan
    from dsig.archive.journal import Journal, outcome_of_record, record_of
    from dsig.archive.sources import SourceUsageError, is_remote, local_path, readable
    from dsig.archive.staging import object_exists, replaces_atomically, staged, upload

__getattr__ = lazy_exports(__name__)

__all__ = [
    "Journal",
    "Plan",
    "SourceUsageError",
    "is_remote",
    "local_path",
    "object_exists",
    "outcome_of_record",
    "outcomes",
    "plan",
    "readable",
    "record_of",
    "replaces_atomically",
    "staged",
    "upload",
]
