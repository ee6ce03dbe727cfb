"""Find the editions that are due, cut their variants, and put them in the ledger.

For each active subscription the local send time is found on the
subscriber's local date (and the day before, for late sends and missed
ones). An edition is due once that moment has passed and none exists for the
date; past the briefing's ``deadline`` it is recorded as expired instead of
sent late. ``force`` sends today's edition at once to every subscription that
has none for its local today (the demo, and ops' run-now).

Dispatch works by set, never by subscriber: subscriptions timed alike (same
timezone, send time, frequency and sections) form a cohort, whose due moments
are computed once, in Python (SQLite has no timezone database). The due cohorts
then go into a temporary table that every statement joins, so the number of
statements grows with variants, not cohorts: one finds the suppressed, one
the selection windows, and one ``INSERT ... SELECT`` per variant puts in its
editions and deliveries, Message-IDs included (per range of subscription ids
for a big list, to keep transactions short). Memory holds cohorts and
variants, not subscribers.

A briefing whose ``approval`` is ``required`` is held per issue date: until
an editor approves the date (``briefing approve``), dispatch creates nothing
for it, neither editions nor deliveries, and says how many subscriptions
wait; once approved, the next run dispatches what is due at once, and what
passed its deadline meanwhile is recorded as expired, as for any briefing.

Subscriptions due in one run with the same sections, previous cut, locale and
issue date share one variant. Every variant of a run has the same cut time, so
they share one related-link archive and its similarity index, read and built
once per run. Edition and delivery rows are inserted with the unique keys
deciding races, so no edition is ever dispatched twice; a crash leaves whole
statements done or undone, and the next run does the rest.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from briefing.config import Config
from briefing.domain.calendar import due_dates
from briefing.domain.states import ApprovalMode, DeliveryState
from briefing.domain.tokens import Signer
from briefing.editions.variants import (
    ArchiveKey,
    VariantSpec,
    build_variant,
    frozen,
    ordered_sections,
)
from briefing.pipeline.relate import Archive
from briefing.store import Database
from briefing.store.controls import paused_briefings
from briefing.store.editions import (
    Cohort,
    CohortDue,
    NewEdition,
    due_windows,
    freeze_variant,
    insert_due_editions,
    insert_edition,
    subscription_cohorts,
    subscription_id_range,
    suppression_candidates,
)
from briefing.store.overrides import approved_dates
from briefing.store.suppressions import suppression_for

logger = logging.getLogger(__name__)


@dataclass
class DispatchReport:
    """What one dispatch run put in the ledger, per briefing."""

    variants: int = 0
    paused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Editions put in the ledger, by the state of their delivery.
    counts: Counter[DeliveryState] = field(default_factory=Counter)
    # The same, and the variants cut, per (briefing, issue date).
    by_edition: dict[tuple[str, date], Counter[DeliveryState]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    variants_by_edition: Counter[tuple[str, date]] = field(default_factory=Counter)
    # Subscriptions due but waiting for an editor's approval, per (briefing, issue date).
    held: Counter[tuple[str, date]] = field(default_factory=Counter)
    seconds: float = 0.0  # how long the run took, wall time

    def held_lines(self) -> list[str]:
        """Say, per issue held for approval, how many subscriptions wait for it."""
        return [
            f"held for approval: {name} {issue_date.isoformat()}, {count:,} subscription(s) waiting"
            for (name, issue_date), count in sorted(self.held.items())
        ]

    def summary(self) -> str:
        """Say in one line how much was dispatched and how long it took."""
        editions = len(self.by_edition)
        return (
            f"dispatched {self.dispatched:,} deliveries in {editions} edition(s)' "
            f"{self.variants} variant(s) in {self.seconds:.1f} s"
        )

    @property
    def pending(self) -> int:
        """Count editions waiting to be sent."""
        return self.counts[DeliveryState.PENDING]

    @property
    def skipped(self) -> int:
        """Count editions skipped for having no new articles."""
        return self.counts[DeliveryState.SKIPPED]

    @property
    def suppressed(self) -> int:
        """Count editions not sent to a suppressed address."""
        return self.counts[DeliveryState.SUPPRESSED]

    @property
    def expired(self) -> int:
        """Count editions recorded as past their deadline."""
        return self.counts[DeliveryState.EXPIRED]

    @property
    def dispatched(self) -> int:
        """Count editions put in the ledger."""
        return self.counts.total()

    def count(
        self, briefing: str, issue_date: date, status: DeliveryState, number: int = 1
    ) -> None:
        """Count ``number`` editions of one date put in the ledger with ``status``."""
        if number:
            self.counts[status] += number
            self.by_edition[(briefing, issue_date)][status] += number

    def count_variant(self, briefing: str, issue_date: date) -> None:
        """Count one variant cut for an edition date."""
        self.variants += 1
        self.variants_by_edition[(briefing, issue_date)] += 1

    def log(self, briefing: str) -> None:
        """Log one line per edition date of ``briefing`` that got anything."""
        for (name, issue_date), counts in sorted(self.by_edition.items()):
            if name == briefing:
                logger.info(
                    "briefing %s, edition %s: dispatched %d pending, %d skipped, "
                    "%d suppressed, %d expired in %d variant(s)",
                    name,
                    issue_date,
                    counts[DeliveryState.PENDING],
                    counts[DeliveryState.SKIPPED],
                    counts[DeliveryState.SUPPRESSED],
                    counts[DeliveryState.EXPIRED],
                    self.variants_by_edition[(name, issue_date)],
                )


def edition_key(briefing: str, subscriber_id: int, issue_date: date) -> str:
    """Name an edition stably: the input of its Message-ID."""
    return f"{briefing}:{subscriber_id}:{issue_date.isoformat()}"


# Subscriptions per dispatch statement at most: a cohort bigger than this is inserted a range
# of subscription ids at a time, one short transaction each, so that a send, an import or
# the web never waits long on a dispatch of a big list.
CHUNK = 20_000


@dataclass(frozen=True)
class _Share:
    """The members of one cohort due on one date whose selection window starts at ``since``."""

    due: CohortDue
    since: datetime | None
    count: int


def _cohort_dues(
    name: str, cohorts: list[Cohort], now: datetime, deadline: timedelta, force: bool
) -> list[tuple[CohortDue, bool]]:
    """Return each cohort's dates due at ``now``, and whether each is past the deadline."""
    found = []
    for cohort in cohorts:
        # The oldest member bounds the dates; insert statements apply each member's own.
        for day in due_dates(cohort, now, deadline, force=force):
            found.append(
                (CohortDue(name, cohort, day.issue_date, day.scheduled_at, force), day.expired)
            )
    return found


def _expired_reason(scheduled_at: datetime, now: datetime) -> str:
    late = now - scheduled_at
    return (
        f"send time {scheduled_at:%Y-%m-%d %H:%M} UTC passed "
        f"{int(late.total_seconds() // 60)} min ago, past the deadline"
    )


def _id_windows(span: tuple[int, int] | None, count: int) -> list[tuple[int, int] | None]:
    """Split a statement over ``count`` members into ranges of subscription ids."""
    if span is None or count <= CHUNK:
        return [None]
    low, high = span
    return [(start, min(start + CHUNK - 1, high)) for start in range(low, high + 1, CHUNK)]


def dispatch(
    config: Config,
    database: Database,
    signer: Signer,
    now: datetime,
    *,
    briefing: str | None = None,
    force: bool = False,
) -> DispatchReport:
    """Put every due edition in the ledger, cutting the variants they need.

    Due -> group -> cut -> store: cohorts of subscriptions timed alike are read
    and their due dates computed; each cohort's expired and suppressed members
    are recorded; the rest are grouped by variant (sections, previous cut,
    issue date), each variant is cut once, and its editions and deliveries go
    in with one statement for all its cohorts (per range of ids for a big list).
    """
    started = time.perf_counter()
    report = DispatchReport()
    cut_at = now
    archives: dict[ArchiveKey, Archive] = {}
    domain = config.site.from_address.rpartition("@")[2]

    def message_id(name: str, subscriber_id: int, issue_date: date) -> str:
        return signer.message_id(edition_key(name, subscriber_id, issue_date), domain)

    names = [briefing] if briefing else list(config.briefings)
    for name in names:
        settings = config.briefing(name)
        with database.transaction() as session:
            if name in paused_briefings(session):
                report.paused.append(name)
                continue
            dues = _cohort_dues(
                name, subscription_cohorts(session, name), now, settings.deadline, force
            )
            span = subscription_id_range(session, name)
        # Missed editions first: past the deadline they are recorded, never sent.
        missed = [due for due, expired in dues if expired]
        for ids in _id_windows(span, CHUNK + 1) if missed else []:
            with database.transaction() as session:
                counts = insert_due_editions(
                    session,
                    name,
                    missed,
                    status=DeliveryState.EXPIRED,
                    reason=lambda scheduled_at: _expired_reason(scheduled_at, now),
                    now=now,
                    message_id=message_id,
                    ids=ids,
                )
            for issue_date, count in counts.items():
                report.count(name, issue_date, DeliveryState.EXPIRED, count)
        due_now = [due for due, expired in dues if not expired]
        if settings.approval is ApprovalMode.REQUIRED:
            due_now = _hold_unapproved(database, report, name, due_now, cut_at)
        _record_suppressed(database, report, name, due_now, now, message_id)
        groups: dict[VariantSpec, list[_Share]] = defaultdict(list)
        with database.transaction() as session:
            windows = due_windows(session, name, due_now, cut_at)
        for position, since, count in windows:
            due = due_now[position]
            spec = VariantSpec(
                briefing=name,
                sections=ordered_sections(config, name, due.cohort.chosen),
                since=since,
                cut_at=cut_at,
                locale=settings.locale,
                issue_date=due.issue_date,
            )
            groups[spec].append(_Share(due, since, count))
        # Variants are built outside any transaction: rendering takes CPU, not locks.
        for spec, shares in groups.items():
            built = build_variant(
                database, config, spec, archives, feedback_key=signer.feedback_key
            )
            skip = built.empty and settings.skip_if_empty
            status = DeliveryState.SKIPPED if skip else DeliveryState.PENDING
            empty = "no new articles since the last edition" if skip else None
            variant_id: int | None = None
            # One statement per variant for all its cohorts (per range of ids for a big one).
            for ids in _id_windows(span, sum(share.count for share in shares)):
                with database.transaction() as session:
                    if variant_id is None:
                        variant_id = freeze_variant(session, frozen(built), now)
                        report.count_variant(name, spec.issue_date)
                        report.notes.extend(f"{name}: {note}" for note in built.notes)
                    counts = insert_due_editions(
                        session,
                        name,
                        [share.due for share in shares],
                        status=status,
                        reason=empty,
                        now=now,
                        message_id=message_id,
                        variant=(variant_id, cut_at, [share.since for share in shares]),
                        ids=ids,
                    )
                report.count(name, spec.issue_date, status, counts[spec.issue_date])
        report.log(name)
        for (held_name, issue_date), waiting in sorted(report.held.items()):
            if held_name == name:
                logger.info(
                    "held for approval: %s %s, %s subscription(s) waiting",
                    name,
                    issue_date.isoformat(),
                    f"{waiting:,}",
                )
    report.seconds = time.perf_counter() - started
    # Every minute under `briefing serve`: say it when something was dispatched.
    logger.log(logging.INFO if report.dispatched else logging.DEBUG, "%s", report.summary())
    return report


def _record_suppressed(
    database: Database,
    report: DispatchReport,
    name: str,
    dues: list[CohortDue],
    now: datetime,
    message_id: Callable[[str, int, date], str],
) -> None:
    """Record the editions of suppressed members as suppressed, one by one (they are few)."""
    with database.transaction() as session:
        candidates = suppression_candidates(session, name, dues)
        for position, subscription_id, subscriber_id, email in candidates:
            hit = suppression_for(session, email, name)
            if hit is None:
                continue
            due = dues[position]
            edition = NewEdition(
                briefing=name,
                subscriber_id=subscriber_id,
                subscription_id=subscription_id,
                issue_date=due.issue_date,
                scheduled_at=due.scheduled_at if not due.forced else now,
                variant_id=None,
                cut_at=None,
                status=DeliveryState.SUPPRESSED,
                reason=f"address suppressed ({hit.reason})",
                message_id=message_id(name, subscriber_id, due.issue_date),
            )
            if insert_edition(session, edition, now):
                report.count(name, due.issue_date, DeliveryState.SUPPRESSED)


def _hold_unapproved(
    database: Database,
    report: DispatchReport,
    name: str,
    dues: list[CohortDue],
    cut_at: datetime,
) -> list[CohortDue]:
    """Return the dues of approved issue dates; count the members of the others as held.

    Nothing is written for a held date: its editions are created, all at
    once, by the first run after the approval.
    """
    with database.transaction() as session:
        approved = approved_dates(session, name, {due.issue_date for due in dues})
        held = [due for due in dues if due.issue_date not in approved]
        if held:
            for position, _, count in due_windows(session, name, held, cut_at):
                report.held[(name, held[position].issue_date)] += count
    return [due for due in dues if due.issue_date in approved]
