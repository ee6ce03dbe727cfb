"""Hold a database's one scheduler lock for the life of the process.

Only one ``briefing serve`` may schedule a database. The mechanics (an
``flock`` beside a SQLite file, a PostgreSQL session-level advisory lock)
live with the store in :mod:`briefing.store.locks`; this is what the
service and the CLI call.
"""

from __future__ import annotations

from briefing.store.locks import (
    ACQUIRE_PATIENCE_SECONDS,
    SchedulerLock,
    acquire_scheduler_lock,
    lock_file_for,
    scheduler_holder,
)

__all__ = [
    "ACQUIRE_PATIENCE_SECONDS",
    "SchedulerLock",
    "acquire_scheduler_lock",
    "lock_file_for",
    "scheduler_holder",
]
