"""Read the time from the database server, for leases and heartbeats.

Leases and heartbeats are compared between processes on different machines,
so they are set and judged by one clock: the database's. A worker's own clock
may be skewed by minutes; it never decides whether a claim has lapsed or a
process is alive.

- PostgreSQL: ``now()`` (the transaction's start), as naive UTC like every
  stored time;
- SQLite: ``strftime('%Y-%m-%d %H:%M:%f', 'now')``, padded to microseconds so
  it compares with the stored ``YYYY-MM-DD HH:MM:SS.ffffff`` text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%f"


def db_now(dialect: str, later: timedelta = timedelta(0)) -> Any:
    """Return an SQL expression of the database's time now, plus ``later``."""
    if dialect == "postgresql":
        moment = func.timezone("UTC", func.now())
        return moment + literal(later) if later else moment
    seconds = later.total_seconds()
    return func.strftime(_SQLITE_FORMAT, "now", f"{seconds:+.6f} seconds").op("||")("000")


def database_time(session: Session) -> datetime:
    """Return the database server's time now (aware, UTC)."""
    dialect = session.get_bind().dialect.name
    value = session.scalar(select(db_now(dialect)))
    if isinstance(value, str):  # SQLite hands back text
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
