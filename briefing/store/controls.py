"""Read and write ops' controls of each briefing: pause, resume, run-now.

One ``briefing_controls`` row per briefing that ops ever touched; a briefing
without one is neither paused nor asked to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from briefing.store.queries import insert_ignore
from briefing.store.schema import BriefingControl


@dataclass(frozen=True)
class ControlState:
    """What ops have set for one briefing."""

    briefing: str
    paused: bool = False
    paused_at: datetime | None = None
    paused_by: str | None = None
    run_now_requested_at: datetime | None = None


def _row(session: Session, briefing: str, now: datetime) -> BriefingControl:
    # Two processes may create the row at once; the primary key decides.
    insert_ignore(
        session, BriefingControl, {"briefing": briefing, "paused": False, "updated_at": now}
    )
    row = session.get(BriefingControl, briefing, populate_existing=True)
    assert row is not None
    return row


def _state(row: BriefingControl) -> ControlState:
    return ControlState(
        briefing=row.briefing,
        paused=row.paused,
        paused_at=row.paused_at,
        paused_by=row.paused_by,
        run_now_requested_at=row.run_now_requested_at,
    )


def read_controls(session: Session) -> dict[str, ControlState]:
    """Return every briefing's controls that has a row."""
    return {row.briefing: _state(row) for row in session.scalars(select(BriefingControl))}


def paused_briefings(session: Session) -> set[str]:
    """Return the briefings ops paused."""
    return set(session.scalars(select(BriefingControl.briefing).where(BriefingControl.paused)))


def control_of(session: Session, briefing: str) -> ControlState:
    """Return one briefing's controls (defaults when it has no row)."""
    row = session.get(BriefingControl, briefing)
    return _state(row) if row is not None else ControlState(briefing)


def set_paused(session: Session, briefing: str, now: datetime, by: str | None) -> ControlState:
    """Pause (``by`` names who) or resume (``by`` is None); return the controls as they were."""
    row = _row(session, briefing, now)
    before = _state(row)
    if row.paused != (by is not None):
        row.paused, row.paused_at, row.paused_by = by is not None, now if by else None, by
        row.updated_at = now
    return before


def request_run_now(session: Session, briefing: str, now: datetime) -> None:
    """Record a request to dispatch a briefing at once."""
    row = _row(session, briefing, now)
    row.run_now_requested_at = now
    row.updated_at = now


def clear_run_now(session: Session, briefing: str, requested_at: datetime, now: datetime) -> bool:
    """Clear a run-now request unless a newer one came meanwhile; tell whether it was cleared."""
    result = session.execute(
        update(BriefingControl)
        .where(
            BriefingControl.briefing == briefing,
            BriefingControl.run_now_requested_at == requested_at,
        )
        .values(run_now_requested_at=None, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
