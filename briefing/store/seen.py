"""Remember which keys a long stream has shown, and where, on disk rather than in memory.

An import of a million rows must tell a mailbox given twice in the file by the
line it was first on, without keeping every address in memory. :class:`FirstLines`
keeps them in a private temporary SQLite database (stdlib ``sqlite3``, not the
briefing's database): SQLite's page cache is bounded (``CACHE_KIB``), the rest
lives in a temporary file that is deleted when it is closed. It costs about
45 bytes of disk per key and a few microseconds per row; memory stays flat.
"""

from __future__ import annotations

import sqlite3
from types import TracebackType

from briefing.errors import StoreError

CACHE_KIB = 4096
"""Most memory the temporary database's page cache takes, in KiB."""

_HINT = "it lives in $SQLITE_TMPDIR or $TMPDIR (else /var/tmp): point TMPDIR at a disk with room"


def _failed(exc: sqlite3.Error) -> StoreError:
    return StoreError(
        f"cannot keep the keys seen so far in a temporary SQLite file: {exc}", hint=_HINT
    )


class FirstLines:
    """The first line each (key, scope) pair was seen on, kept in a temporary database."""

    def __init__(self) -> None:
        # "" opens a private, temporary on-disk database, deleted when closed.
        try:
            self._db = sqlite3.connect("", isolation_level=None)
            self._db.executescript(
                f"""
                PRAGMA journal_mode = OFF;
                PRAGMA synchronous = OFF;
                PRAGMA cache_size = -{CACHE_KIB};
                CREATE TABLE seen (
                    key TEXT NOT NULL,
                    scope TEXT NOT NULL,
                    line INTEGER NOT NULL,
                    PRIMARY KEY (key, scope)
                ) WITHOUT ROWID;
                BEGIN;
                """
            )
        except sqlite3.Error as exc:
            raise _failed(exc) from exc

    def first(self, key: str, scope: str, line: int) -> int | None:
        """Record ``key`` in ``scope`` at ``line``; return the line it was first on if seen before."""
        try:
            cursor = self._db.execute(
                "INSERT INTO seen (key, scope, line) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (key, scope, line),
            )
            if cursor.rowcount == 1:
                return None
            found = self._db.execute(
                "SELECT line FROM seen WHERE key = ? AND scope = ?", (key, scope)
            ).fetchone()
        except sqlite3.Error as exc:
            raise _failed(exc) from exc
        return int(found[0])

    def close(self) -> None:
        """Drop what was remembered (the temporary file goes with it)."""
        self._db.close()

    def __enter__(self) -> FirstLines:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
