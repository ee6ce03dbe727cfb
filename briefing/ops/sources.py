"""Read the health of every configured source, for ``briefing sources`` and the desk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from briefing.config import Config
from briefing.ingest import plan_sources
from briefing.store import Database
from briefing.store.sources import source_states


@dataclass(frozen=True)
class SourceHealth:
    """One configured source as the store last saw it."""

    label: str
    location: str
    kind: str
    sections: list[str]
    last_checked_at: str | None
    last_success_at: str | None
    last_error: str | None
    consecutive_failures: int
    items_seen: int
    etag: bool
    last_modified: bool
    flagged: bool


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def source_health(config: Config, database: Database) -> list[SourceHealth]:
    """Return the health of each configured source, in config order (never run: zeros)."""
    planned = plan_sources(config)
    with database.transaction() as session:
        states = source_states(session, [p.config.location for p in planned])
    health = []
    for source in planned:
        row = states.get(source.config.location)
        failures = row.consecutive_failures if row else 0
        health.append(
            SourceHealth(
                label=source.label,
                location=source.config.location,
                kind=source.kind,
                sections=list(source.sections),
                last_checked_at=_iso(row.last_checked_at) if row else None,
                last_success_at=_iso(row.last_success_at) if row else None,
                last_error=row.last_error if row else None,
                consecutive_failures=failures,
                items_seen=row.items_seen if row else 0,
                etag=bool(row and row.has_etag),
                last_modified=bool(row and row.has_last_modified),
                flagged=failures >= config.ingest.flag_after_failures,
            )
        )
    return health
