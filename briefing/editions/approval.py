"""Approve an issue of a briefing, and tell which issues wait for an approval.

An issue is (briefing, local issue date). For a briefing whose ``approval``
is ``required``, dispatch creates nothing for an issue until it is approved
(see :mod:`briefing.editions.dispatch`); approving it records who and when,
freezes its overrides, and lets the next dispatch run (``briefing send``, or
``briefing serve`` at its next tick) send what is due at once. Editions whose
deadline passed while the issue was held are recorded as expired by that
run, never sent late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from briefing.config import Config
from briefing.domain.calendar import due_dates
from briefing.domain.states import ApprovalMode
from briefing.errors import EditionError
from briefing.store import Database
from briefing.store.editions import CohortDue, due_windows, subscription_cohorts
from briefing.store.overrides import Approval, approval_of, record_approval


@dataclass(frozen=True)
class IssueStatus:
    """One issue of a briefing that needs approval: how many wait for it, and its approval."""

    briefing: str
    issue_date: date
    waiting: int  # subscriptions whose edition is due now and not yet created
    approval: Approval | None

    @property
    def held(self) -> bool:
        """Tell whether dispatch holds this issue (due, not approved)."""
        return self.approval is None and self.waiting > 0

    def describe(self) -> str:
        """Say in one line where the issue stands."""
        day = self.issue_date.isoformat()
        if self.approval is None:
            if self.waiting:
                return (
                    f"held for approval: {self.briefing} {day}, "
                    f"{self.waiting:,} subscription(s) waiting"
                )
            return f"not approved yet: {self.briefing} {day} (nothing due yet)"
        return (
            f"approved: {self.briefing} {day} by {self.approval.approved_by} at "
            f"{self.approval.approved_at:%Y-%m-%d %H:%M} UTC"
            + (
                f", {self.waiting:,} subscription(s) due at the next dispatch"
                if self.waiting
                else ""
            )
        )


@dataclass(frozen=True)
class ApprovalResult:
    """What approving an issue did."""

    status: IssueStatus
    new: bool  # False when the issue had been approved before (that approval stands)


def next_issue_date(config: Config, briefing: str, now: datetime) -> date:
    """Return the issue date coming next in the briefing's own timezone.

    Today's date there until the briefing's send time, tomorrow's after it.
    """
    settings = config.briefing(briefing)
    local = now.astimezone(ZoneInfo(settings.timezone))
    return local.date() + timedelta(days=1) if local.time() >= settings.send_time else local.date()


def _waiting(config: Config, database: Database, briefing: str, now: datetime) -> dict[date, int]:
    """Count, per issue date, the subscriptions due now (within the deadline) without an edition."""
    deadline = config.briefing(briefing).deadline
    counts: dict[date, int] = {}
    with database.transaction() as session:
        dues = [
            CohortDue(briefing, cohort, day.issue_date, day.scheduled_at, False)
            for cohort in subscription_cohorts(session, briefing)
            for day in due_dates(cohort, now, deadline, force=False)
            if not day.expired
        ]
        for position, _, count in due_windows(session, briefing, dues, now):
            issue_date = dues[position].issue_date
            counts[issue_date] = counts.get(issue_date, 0) + count
    return counts


def issue_statuses(
    config: Config, database: Database, now: datetime, *, briefing: str | None = None
) -> list[IssueStatus]:
    """Return, per briefing that needs approval, its issues due now and its next issue."""
    names = [briefing] if briefing else list(config.briefings)
    found = []
    for name in names:
        if config.briefing(name).approval is not ApprovalMode.REQUIRED:
            continue
        waiting = _waiting(config, database, name, now)
        dates = sorted({*waiting, next_issue_date(config, name, now)})
        with database.transaction() as session:
            for day in dates:
                found.append(
                    IssueStatus(name, day, waiting.get(day, 0), approval_of(session, name, day))
                )
    return found


def default_issue_date(config: Config, database: Database, briefing: str, now: datetime) -> date:
    """Return the issue an editor most likely means: the oldest held, else the next one."""
    for status in issue_statuses(config, database, now, briefing=briefing):
        if status.held:
            return status.issue_date
    return next_issue_date(config, briefing, now)


def approve(
    config: Config,
    database: Database,
    briefing: str,
    issue_date: date,
    *,
    who: str,
    now: datetime,
) -> ApprovalResult:
    """Approve one issue of ``briefing``: dispatch may send it, and its overrides freeze."""
    config.briefing(briefing)
    if not who.strip():
        raise EditionError(
            f"{briefing} {issue_date}: an approval needs a name", hint="Pass --as NAME."
        )
    with database.transaction() as session:
        approval, new = record_approval(session, briefing, issue_date, who.strip(), now)
    waiting = _waiting(config, database, briefing, now).get(issue_date, 0)
    return ApprovalResult(IssueStatus(briefing, issue_date, waiting, approval), new)
