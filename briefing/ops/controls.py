"""Keep ops' say over each briefing in the ``briefing_controls`` table.

Pause, resume and run-now are rows, not scheduler jobs: any process (the CLI
in another terminal, a web console later) writes them, and every dispatch of
a running ``briefing serve`` reads them. A paused briefing dispatches and
delivers nothing; a run-now request is taken by the running scheduler, which
clears it once done.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from briefing.store import Database
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


def operator() -> str:
    """Name who is acting, for the ``paused_by`` record: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


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
    """Return every briefing's control row; a briefing without one is neither paused nor asked."""
    return {row.briefing: _state(row) for row in session.scalars(select(BriefingControl))}


def control_of(database: Database, briefing: str) -> ControlState:
    """Return one briefing's controls."""
    with database.transaction() as session:
        row = session.get(BriefingControl, briefing)
        return _state(row) if row is not None else ControlState(briefing)


def _set_paused(database: Database, briefing: str, now: datetime, by: str | None) -> ControlState:
    """Pause (``by`` names who) or resume (``by`` is None); return the controls as they were."""
    with database.transaction() as session:
        row = _row(session, briefing, now)
        before = _state(row)
        if row.paused != (by is not None):
            row.paused, row.paused_at, row.paused_by = by is not None, now if by else None, by
            row.updated_at = now
        return before


def pause(database: Database, briefing: str, now: datetime, by: str) -> ControlState:
    """Pause a briefing; return its controls as they were before."""
    return _set_paused(database, briefing, now, by)


def resume(database: Database, briefing: str, now: datetime) -> ControlState:
    """Resume a briefing; return its controls as they were before."""
    return _set_paused(database, briefing, now, None)


def request_run_now(database: Database, briefing: str, now: datetime) -> None:
    """Ask the running scheduler to dispatch a briefing at once."""
    with database.transaction() as session:
        row = _row(session, briefing, now)
        row.run_now_requested_at = now
        row.updated_at = now


def clear_run_now(database: Database, briefing: str, requested_at: datetime, now: datetime) -> bool:
    """Clear a run-now request once handled, unless a newer one came meanwhile."""
    with database.transaction() as session:
        result = session.execute(
            update(BriefingControl)
            .where(
                BriefingControl.briefing == briefing,
                BriefingControl.run_now_requested_at == requested_at,
            )
            .values(run_now_requested_at=None, updated_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
