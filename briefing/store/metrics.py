"""Read the ops picture from the database: aggregates for `/metrics` and `briefing status`.

Every number is computed here, from the tables, at the time it is asked for,
so it is right however many processes send. Each query is indexed and bounded:

- deliveries by briefing and state, and the due but unsent among them:
  editions scheduled in a recent window (``ix_editions_scheduled_briefing``),
  joined to their delivery's state by ``ix_deliveries_edition_status`` (index
  entries only), in one pass;
- each briefing's newest dispatched edition (``ix_editions_briefing_created``,
  one index probe per configured briefing, all in one statement);
- sources, paused briefings and live processes: small tables, one row each.

Times are the database's (:mod:`briefing.store.dbclock`), like heartbeats.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from briefing.config import Config
from briefing.domain.states import OPEN, DeliveryState
from briefing.errors import StoreError
from briefing.store.controls import paused_briefings
from briefing.store.db import Database
from briefing.store.dbclock import database_time
from briefing.store.processes import STALE_AFTER_BEATS, ProcessRow, live_processes
from briefing.store.schema import Delivery, Edition, Source


@dataclass(frozen=True)
class Backlog:
    """A briefing's editions that are due and not yet sent."""

    editions: int
    oldest_due: datetime


@dataclass(frozen=True)
class SourceHealth:
    """The configured sources' health, without naming any of them."""

    configured: int
    failing: int  # failed at least once in a row
    flagged: int  # failed at least ``ingest.flag_after_failures`` times in a row
    max_failures_in_a_row: int
    last_success: datetime | None


@dataclass(frozen=True)
class OpsPicture:
    """What ops watch, as the database shows it at ``now``."""

    now: datetime
    since: datetime  # editions scheduled since then are counted (now - metrics.window)
    deliveries: dict[tuple[str, DeliveryState], int]
    backlog: dict[str, Backlog]
    last_dispatch: dict[str, datetime | None]
    sources: SourceHealth
    paused: set[str]
    processes: list[ProcessRow] = field(default_factory=list)


def recent_deliveries(
    session: Session, since: datetime, now: datetime
) -> tuple[dict[tuple[str, DeliveryState], int], dict[str, Backlog]]:
    """Count the deliveries of editions scheduled since ``since`` by briefing and state.

    Return the counts and, by briefing, the editions due by ``now`` whose
    delivery is still open (with the oldest one's send time), in one pass.
    """
    due = Edition.scheduled_at <= now
    rows = session.execute(
        select(
            Edition.briefing,
            Delivery.status,
            func.count(),
            func.sum(case((due, 1), else_=0)),
            func.min(case((due, Edition.scheduled_at))),
        )
        .join(Delivery, Delivery.edition_id == Edition.id)
        .where(Edition.scheduled_at >= since)
        # State first: grouped by briefing first, SQLite would rather walk a briefing index
        # in order (every edition) than read the window's few and sort them.
        .group_by(Delivery.status, Edition.briefing)
    )
    counts: dict[tuple[str, DeliveryState], int] = {}
    waiting: dict[str, Backlog] = {}
    for briefing, status, count, due_count, oldest in rows:
        state = DeliveryState(status)
        counts[(briefing, state)] = int(count)
        if state in OPEN and due_count and oldest is not None:
            before = waiting.get(briefing)
            oldest = _aware(oldest)
            waiting[briefing] = Backlog(
                int(due_count) + (before.editions if before else 0),
                min(oldest, before.oldest_due) if before else oldest,
            )
    return counts, waiting


def last_dispatches(session: Session, briefings: Collection[str]) -> dict[str, datetime | None]:
    """Return when each briefing's newest edition was put in the ledger (None: never).

    One statement: a subquery per briefing, each one index probe
    (``ix_editions_briefing_created``), instead of a round trip per briefing.
    """
    names = list(briefings)
    if not names:
        return {}
    newest = session.execute(
        select(
            *(
                select(func.max(Edition.created_at))
                .where(Edition.briefing == briefing)
                .scalar_subquery()
                for briefing in names
            )
        )
    ).one()
    return {
        briefing: _aware(moment) if moment is not None else None
        for briefing, moment in zip(names, newest, strict=True)
    }


def source_health(session: Session, keys: Collection[str], flag_after: int) -> SourceHealth:
    """Summarise the health of the configured sources ``keys`` (their locations)."""
    failing, flagged, worst, last = session.execute(
        select(
            func.count().filter(Source.consecutive_failures > 0),
            func.count().filter(Source.consecutive_failures >= flag_after),
            func.coalesce(func.max(Source.consecutive_failures), 0),
            func.max(Source.last_success_at),
        ).where(Source.key.in_(list(keys)))
    ).one()
    return SourceHealth(
        configured=len(keys),
        failing=int(failing or 0),
        flagged=int(flagged or 0),
        max_failures_in_a_row=int(worst or 0),
        last_success=_aware(last) if last is not None else None,
    )


def ops_picture(
    session: Session,
    *,
    briefings: Collection[str],
    source_keys: Collection[str],
    window: timedelta,
    stale: timedelta,
    flag_after: int,
) -> OpsPicture:
    """Read everything ops watch in one read transaction."""
    now = database_time(session)
    since = now - window
    deliveries, waiting = recent_deliveries(session, since, now)
    return OpsPicture(
        now=now,
        since=since,
        deliveries=deliveries,
        backlog=waiting,
        last_dispatch=last_dispatches(session, briefings),
        sources=source_health(session, source_keys, flag_after),
        paused=paused_briefings(session),
        processes=live_processes(session, stale=stale),
    )


def source_keys(config: Config) -> list[str]:
    """Return the configured sources' keys (their locations), each once."""
    return list(
        dict.fromkeys(
            source.location for section in config.sections.values() for source in section.sources
        )
    )


def read_ops_picture(config: Config, database: Database) -> OpsPicture:
    """Read the ops picture of ``config``'s briefings and sources in a read-only transaction."""
    with database.reading() as session:
        return ops_picture(
            session,
            briefings=list(config.briefings),
            source_keys=source_keys(config),
            window=config.metrics.window,
            stale=timedelta(seconds=config.delivery.heartbeat * STALE_AFTER_BEATS),
            flag_after=config.ingest.flag_after_failures,
        )


def ping(session: Session) -> None:
    """Run a trivial query that still reads the database file (not only the connection)."""
    session.execute(select(func.count()).select_from(Source)).scalar()


def _aware(moment: datetime) -> datetime:
    if isinstance(moment, str):  # SQLite aggregates hand back text
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_database(database: Database) -> None:
    """Raise a StoreError unless the database answers a query; a SQLite file must be on disk.

    An open SQLite connection keeps reading a file that was deleted (or whose
    folder was), so the file's presence is checked too.
    """
    path = database.sqlite_path
    if path is not None and not path.exists():
        raise StoreError(f"the database file {path} is gone")
    try:
        with database.reading() as session:
            ping(session)
    except SQLAlchemyError as exc:
        raise StoreError(_first_line(exc)) from exc


def schema_revisions(database: Database) -> tuple[str | None, str | None]:
    """Return (the database's migration revision, the newest known), or raise a StoreError."""
    path = database.sqlite_path
    if path is not None and not path.exists():
        raise StoreError(f"the database file {path} is gone")
    try:
        return database.revisions()
    except SQLAlchemyError as exc:
        raise StoreError(_first_line(exc)) from exc


def _first_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{exc.__class__.__name__}: {text}"
