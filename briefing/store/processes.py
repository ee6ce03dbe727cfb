"""Register long-running processes and read which ones are alive.

``serve``, every ``briefing deliver`` worker and ``web`` register a row at
start, renew its ``heartbeat_at`` every few seconds and delete it at a clean
exit. Every time here is the database's (:mod:`briefing.store.dbclock`):
whether a process is alive is judged by one clock for all machines, never by
host name or pid. A row whose heartbeat is older than ``stale`` (a crash, a
``kill -9``, a lost machine) is ignored by :func:`live_processes` and removed
by :func:`prune`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from briefing.domain.states import ProcessKind
from briefing.store.dbclock import database_time, db_now
from briefing.store.schema import LiveProcess

# A process is taken for dead after this many missed heartbeats.
STALE_AFTER_BEATS = 3


@dataclass(frozen=True)
class ProcessRow:
    """One live process as the table shows it."""

    process_id: int
    kind: ProcessKind
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    detail: dict[str, Any]


def register(session: Session, kind: ProcessKind, detail: dict[str, Any]) -> int:
    """Add this process to the table; return its row id."""
    dialect = session.get_bind().dialect.name
    row_id = session.scalar(
        insert(LiveProcess)
        .values(
            kind=kind.value,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=db_now(dialect),
            heartbeat_at=db_now(dialect),
            detail=detail,
        )
        .returning(LiveProcess.id)
    )
    assert row_id is not None
    return int(row_id)


def beat(session: Session, process_id: int) -> bool:
    """Renew the heartbeat; return False when the row was pruned meanwhile (re-register)."""
    dialect = session.get_bind().dialect.name
    result = session.execute(
        update(LiveProcess).where(LiveProcess.id == process_id).values(heartbeat_at=db_now(dialect))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def unregister(session: Session, process_id: int) -> None:
    """Remove this process's row (a clean exit)."""
    session.execute(delete(LiveProcess).where(LiveProcess.id == process_id))


def prune(session: Session, stale: timedelta) -> int:
    """Delete the rows whose last heartbeat is older than ``stale``; return how many."""
    dialect = session.get_bind().dialect.name
    result = session.execute(
        delete(LiveProcess).where(LiveProcess.heartbeat_at < db_now(dialect, -stale))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def live_processes(
    session: Session, kind: ProcessKind | None = None, *, stale: timedelta
) -> list[ProcessRow]:
    """List the processes whose heartbeat is fresher than ``stale``, oldest first."""
    dialect = session.get_bind().dialect.name
    query = (
        select(LiveProcess)
        .where(LiveProcess.heartbeat_at >= db_now(dialect, -stale))
        .order_by(LiveProcess.started_at, LiveProcess.id)
    )
    if kind is not None:
        query = query.where(LiveProcess.kind == kind.value)
    return [
        ProcessRow(
            row.id,
            ProcessKind(row.kind),
            row.host,
            row.pid,
            _aware(row.started_at),
            _aware(row.heartbeat_at),
            dict(row.detail or {}),
        )
        for row in session.scalars(query)
    ]


@dataclass(frozen=True)
class ProcessListing:
    """Every registered process, the stale ones marked, as of the database's ``now``."""

    now: datetime
    rows: list[tuple[ProcessRow, bool]]  # (the process, its heartbeat is stale)
    more: bool  # rows beyond ``limit`` were left out


def all_processes(session: Session, *, stale: timedelta, limit: int) -> ProcessListing:
    """List up to ``limit`` registered processes, live ones first, each marked stale or not.

    Stale rows (a crash, a ``kill -9``) are kept until the next process prunes
    them; ops see them marked rather than not at all.
    """
    moment = database_time(session)
    query = (
        select(LiveProcess)
        .order_by(LiveProcess.heartbeat_at.desc(), LiveProcess.id)
        .limit(limit + 1)
    )
    rows = [
        ProcessRow(
            row.id,
            ProcessKind(row.kind),
            row.host,
            row.pid,
            _aware(row.started_at),
            _aware(row.heartbeat_at),
            dict(row.detail or {}),
        )
        for row in session.scalars(query)
    ]
    marked = [(row, moment - row.heartbeat_at > stale) for row in rows[:limit]]
    return ProcessListing(moment, marked, len(rows) > limit)


def count_live(session: Session, kind: ProcessKind, *, stale: timedelta) -> int:
    """Count the live processes of ``kind``."""
    dialect = session.get_bind().dialect.name
    return int(
        session.scalar(
            select(func.count())
            .select_from(LiveProcess)
            .where(
                LiveProcess.kind == kind.value,
                LiveProcess.heartbeat_at >= db_now(dialect, -stale),
            )
        )
        or 0
    )


def now(session: Session) -> datetime:
    """Return the database's time (what heartbeats are compared with)."""
    return database_time(session)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
