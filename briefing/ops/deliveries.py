"""Read the delivery ledger for ops and pull what is still to send.

``briefing deliveries`` / ``briefing cancel`` and the desk's ops pages call
these, so both read and cancel alike. Every list is a page (``limit`` and
``offset``), counted in one statement per page, never per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from briefing.config import Config
from briefing.domain.states import DeliveryState
from briefing.store import Database, ledger
from briefing.store.ledger import Cancelled, FailedRow, SummaryRow, Target
from briefing.store.processes import STALE_AFTER_BEATS, ProcessListing, all_processes

__all__ = [
    "Cancelled",
    "FailedRow",
    "IssuePage",
    "LiveRunCancel",
    "SummaryRow",
    "Target",
    "cancel_live_run",
    "cancel_sending",
    "failures",
    "issue_summaries",
    "issues_between",
    "open_issues",
    "processes",
]


def issue_summaries(database: Database, target: Target | None = None) -> list[SummaryRow]:
    """Count deliveries by briefing, issue date and state, newest issue first (every issue)."""
    with database.reading() as session:
        return ledger.summary(session, target)


@dataclass(frozen=True)
class IssuePage:
    """The issues dated ``first`` to ``last`` with their deliveries by state; older ones exist?"""

    first: date
    last: date
    rows: list[SummaryRow]
    older: bool


def issues_between(database: Database, first: date, last: date) -> IssuePage:
    """Count the deliveries of the issues dated ``first`` to ``last``, in one bounded read."""
    with database.reading() as session:
        rows = ledger.summary_between(session, first, last)
        older = ledger.issued_before(session, first)
    return IssuePage(first, last, rows, older)


def open_issues(database: Database, briefing: str) -> list[date]:
    """Return the issue dates of ``briefing`` with deliveries still to send."""
    with database.reading() as session:
        return ledger.open_issues(session, briefing)


def failures(
    database: Database, target: Target | None = None, *, limit: int | None = None, offset: int = 0
) -> list[FailedRow]:
    """List failed and bounced deliveries with the relay's last reply (a page)."""
    with database.reading() as session:
        return ledger.failed(session, target, limit=limit, offset=offset)


def cancel_sending(
    database: Database, target: Target, now: datetime, reason: str
) -> tuple[Cancelled, int]:
    """Cancel every unsent delivery of ``target``; return what stopped and how many were sent."""
    with database.transaction() as session:
        stopped = ledger.cancel(session, target, now, reason)
        rows = ledger.summary(session, target)
    return stopped, sum(row.counts.get(DeliveryState.SENT, 0) for row in rows)


@dataclass(frozen=True)
class LiveRunCancel:
    """What cancelling a briefing's live run did: the issues it touched and the counts."""

    briefing: str
    issues: list[date] = field(default_factory=list)
    cancelled: int = 0
    in_flight: int = 0  # claimed by a run: dropped at its next heartbeat unless on the wire
    sent: int = 0  # of those issues, already handed to the relay

    @property
    def nothing(self) -> bool:
        """Tell whether there was nothing to cancel."""
        return not self.issues


def cancel_live_run(database: Database, briefing: str, now: datetime, reason: str) -> LiveRunCancel:
    """Cancel every delivery of ``briefing`` still to send, whatever its issue date.

    A run that holds claims (``sending``) sees the cancel at its next
    heartbeat and sends no more of them; a message already on the wire may
    still go and is then recorded sent, never lost or sent twice.
    """
    with database.transaction() as session:
        issues = ledger.open_issues(session, briefing)
        if not issues:
            return LiveRunCancel(briefing)
        stopped = ledger.cancel(session, Target(briefing=briefing), now, reason)
        sent = 0
        for issue in issues:  # a run spans one or two issue dates (timezones)
            for row in ledger.summary(session, Target(briefing=briefing, issue_date=issue)):
                sent += row.counts.get(DeliveryState.SENT, 0)
    return LiveRunCancel(briefing, issues, stopped.cancelled, stopped.in_flight, sent)


def processes(config: Config, database: Database, *, limit: int = 200) -> ProcessListing:
    """List the registered processes, stale ones (missed heartbeats) marked."""
    stale = timedelta(seconds=config.delivery.heartbeat * STALE_AFTER_BEATS)
    with database.reading() as session:
        return all_processes(session, stale=stale, limit=limit)
