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
from datetime import datetime

from briefing.store import Database
from briefing.store import controls as store
from briefing.store.controls import ControlState

__all__ = [
    "ControlState",
    "clear_run_now",
    "control_of",
    "operator",
    "pause",
    "read_controls",
    "request_run_now",
    "resume",
]


def operator() -> str:
    """Name who is acting, for the ``paused_by`` record: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def read_controls(database: Database) -> dict[str, ControlState]:
    """Return every briefing's controls; a briefing without a row is neither paused nor asked."""
    with database.transaction() as session:
        return store.read_controls(session)


def control_of(database: Database, briefing: str) -> ControlState:
    """Return one briefing's controls."""
    with database.transaction() as session:
        return store.control_of(session, briefing)


def pause(database: Database, briefing: str, now: datetime, by: str) -> ControlState:
    """Pause a briefing; return its controls as they were before."""
    with database.transaction() as session:
        return store.set_paused(session, briefing, now, by)


def resume(database: Database, briefing: str, now: datetime) -> ControlState:
    """Resume a briefing; return its controls as they were before."""
    with database.transaction() as session:
        return store.set_paused(session, briefing, now, None)


def request_run_now(database: Database, briefing: str, now: datetime) -> None:
    """Ask the running scheduler to dispatch a briefing at once."""
    with database.transaction() as session:
        store.request_run_now(session, briefing, now)


def clear_run_now(database: Database, briefing: str, requested_at: datetime, now: datetime) -> bool:
    """Clear a run-now request once handled, unless a newer one came meanwhile."""
    with database.transaction() as session:
        return store.clear_run_now(session, briefing, requested_at, now)
