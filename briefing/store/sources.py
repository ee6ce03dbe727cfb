"""Read what the store knows of each configured source's health."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from briefing.store.schema import Source


@dataclass(frozen=True)
class SourceState:
    """One source as the store last saw it."""

    key: str
    last_checked_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    consecutive_failures: int
    items_seen: int
    has_etag: bool
    has_last_modified: bool


def source_states(session: Session, keys: Collection[str]) -> dict[str, SourceState]:
    """Return the stored state of each source in ``keys`` that has been seen, by key."""
    return {
        row.key: SourceState(
            key=row.key,
            last_checked_at=row.last_checked_at,
            last_success_at=row.last_success_at,
            last_error=row.last_error,
            consecutive_failures=row.consecutive_failures,
            items_seen=row.items_seen,
            has_etag=bool(row.etag),
            has_last_modified=bool(row.last_modified),
        )
        for row in session.scalars(select(Source).where(Source.key.in_(list(keys))))
    }
