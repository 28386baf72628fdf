"""What an audit keeps of every file for the outputs written at its end (``--json``, ``--report``,
``--csv``), on disk rather than in lists, so memory does not grow with the number of files.

An SQLite database opened with an empty file name is private, lives in a temporary file (only
its page cache is in memory) and is deleted when the connection closes. Rows are read back with
a cursor, one at a time; the report order (most severe first, then path) is SQLite's sort.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

#: Rows inserted per transaction.
_BATCH = 2_000
_SEVERITY = {"INVALID": 0, "ERROR": 1, "INDETERMINATE": 2, "UNSIGNED": 3, "VALID": 4}
_TABLES = ("results", "records", "skipped")


class AuditSpool:
    """Three append-only lists on disk: verification results (``--json``), audit records
    (:func:`dsig.operations.audit_record.audit_record`, for the reports) and skipped paths."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA cache_size = -2048")  # KiB of page cache
        self._db.execute("CREATE TABLE results (seq INTEGER PRIMARY KEY, data TEXT)")
        self._db.execute(
            "CREATE TABLE records (seq INTEGER PRIMARY KEY, rank INTEGER, path TEXT, data TEXT)"
        )
        self._db.execute("CREATE TABLE skipped (seq INTEGER PRIMARY KEY, path TEXT)")
        self._pending: dict[str, list[tuple[Any, ...]]] = {t: [] for t in _TABLES}
        self._queued = 0

    def add_result(self, result: dict[str, Any]) -> None:
        """Keep one file's full result (as ``--json`` prints it)."""
        self._queue("results", (json.dumps(result),))

    def add_record(self, record: dict[str, Any]) -> None:
        """Keep one file's audit record."""
        indication = str(record.get("indication"))
        row = (_SEVERITY.get(indication, 9), str(record.get("path")), json.dumps(record))
        self._queue("records", row)

    def add_skipped(self, path: str) -> None:
        """Keep the path of a file skipped as not DICOM."""
        self._queue("skipped", (path,))

    def _queue(self, table: str, row: tuple[Any, ...]) -> None:
        self._pending[table].append(row)
        self._queued += 1
        if self._queued >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self._queued:
            return
        self._db.execute("BEGIN")
        for table, rows in self._pending.items():
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                columns = {"results": "data", "records": "rank, path, data", "skipped": "path"}
                self._db.executemany(
                    f"INSERT INTO {table} ({columns[table]}) VALUES ({marks})",  # noqa: S608
                    rows,
                )
                rows.clear()
        self._db.execute("COMMIT")
        self._queued = 0

    def _rows(self, query: str) -> Iterator[Any]:
        self._flush()
        for (value,) in self._db.execute(query):
            yield value

    def results(self) -> Iterator[dict[str, Any]]:
        """The results, in the order they were added."""
        return (json.loads(v) for v in self._rows("SELECT data FROM results ORDER BY seq"))

    def records(self) -> Iterator[dict[str, Any]]:
        """The audit records, in the order they were added."""
        return (json.loads(v) for v in self._rows("SELECT data FROM records ORDER BY seq"))

    def records_in_report_order(self) -> Iterator[dict[str, Any]]:
        """The audit records, failures first (INVALID, ERROR, INDETERMINATE, UNSIGNED,
        VALID), then by path."""
        query = "SELECT data FROM records ORDER BY rank, path, seq"
        return (json.loads(v) for v in self._rows(query))

    def skipped(self) -> Iterator[str]:
        """The skipped paths, in the order they were added."""
        return (str(v) for v in self._rows("SELECT path FROM skipped ORDER BY seq"))

    def count(self, what: str) -> int:
        """Rows of ``results``, ``records`` or ``skipped``."""
        if what not in _TABLES:
            raise ValueError(f"no such list: {what}")
        self._flush()
        return int(self._db.execute(f"SELECT count(*) FROM {what}").fetchone()[0])  # noqa: S608

    def close(self) -> None:
        """Delete the temporary database."""
        self._db.close()
