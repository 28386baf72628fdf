"""The paths a resumed journal already records, kept on disk so memory stays bounded.

A 10-million-object audit resumed from its journal would need gigabytes for a ``set`` of
paths; an SQLite database opened with an empty file name is private, lives in a temporary
file (only its page cache is in memory) and is deleted when the connection closes.
"""

from __future__ import annotations

import sqlite3

#: Paths inserted per transaction while a journal is replayed.
_BATCH = 10_000


class DoneIndex:
    """A set of paths supporting ``add``, ``in`` and ``len``, backed by a temporary file."""

    def __init__(self) -> None:
        # The candidates may be filtered on another thread than the one replaying the journal;
        # they are never used by two threads at once.
        self._db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA cache_size = -2048")  # KiB of page cache, not the default 2 MB+
        self._db.execute("CREATE TABLE done (path TEXT PRIMARY KEY) WITHOUT ROWID")
        self._pending: list[tuple[str]] = []
        self._count = 0

    def add(self, path: str) -> None:
        """Record ``path`` (batched; visible to ``in`` at once)."""
        self._pending.append((path,))
        if len(self._pending) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        self._db.execute("BEGIN")
        cur = self._db.executemany("INSERT OR IGNORE INTO done VALUES (?)", self._pending)
        self._db.execute("COMMIT")
        self._count += max(cur.rowcount, 0)
        self._pending.clear()

    def __contains__(self, path: object) -> bool:
        self._flush()
        row = self._db.execute("SELECT 1 FROM done WHERE path = ?", (str(path),)).fetchone()
        return row is not None

    def __len__(self) -> int:
        self._flush()
        return self._count

    def close(self) -> None:
        """Delete the temporary database."""
        self._db.close()
