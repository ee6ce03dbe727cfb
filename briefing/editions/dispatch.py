"""Find the editions that are due, cut their variants, and put them in the ledger.

For each active subscription the local send time is found on the
subscriber's local date (and the day before, for late sends and missed
ones). An edition is due once that moment has passed and none exists for the
date; past the briefing's ``deadline`` it is recorded as expired instead of
sent late. ``force`` sends today's edition at once to every subscription that
has none for its local today (the demo, and ops' run-now).

Subscriptions due in one run with the same sections, previous cut, locale and
issue date share one variant. Every variant of a run has the same cut time, so
they share one related-link archive and its similarity index, read and built
once per run. Edition and delivery rows are inserted with the unique keys
deciding races, so no edition is ever dispatched twice.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol

from briefing.config import Config
from briefing.domain.calendar import Timing, due_dates
from briefing.domain.states import DeliveryState
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
    NewEdition,
    existing_editions,
    freeze_variant,
    insert_edition,
    previous_cuts,
)
from briefing.store.schedule import active_subscriptions
from briefing.store.suppressions import suppression_for

logger = logging.getLogger(__name__)


class Scheduled(Timing, Protocol):
    """A subscription as far as dispatch needs it: who, which briefing, and when."""

    @property
    def id(self) -> int: ...

    @property
    def subscriber_id(self) -> int: ...

    @property
    def briefing(self) -> str: ...


@dataclass(frozen=True)
class Due:
    """One edition a subscription should get (or has missed)."""

    subscription_id: int
    subscriber_id: int
    briefing: str
    issue_date: date
    scheduled_at: datetime
    expired: bool


def due_editions(
    subscription: Scheduled,
    now: datetime,
    deadline: timedelta,
    *,
    force: bool = False,
) -> list[Due]:
    """List the editions of one subscription that are due or expired at ``now``."""
    return [
        Due(
            subscription.id,
            subscription.subscriber_id,
            subscription.briefing,
            due.issue_date,
            due.scheduled_at,
            due.expired,
        )
        for due in due_dates(subscription, now, deadline, force=force)
    ]


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

    def count(self, due: Due, status: DeliveryState) -> None:
        """Count one edition put in the ledger with ``status``."""
        self.counts[status] += 1
        self.by_edition[(due.briefing, due.issue_date)][status] += 1

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


def _new_edition(
    signer: Signer,
    config: Config,
    due: Due,
    status: DeliveryState,
    reason: str | None = None,
    *,
    variant_id: int | None = None,
    cut_at: datetime | None = None,
) -> NewEdition:
    domain = config.site.from_address.rpartition("@")[2]
    key = edition_key(due.briefing, due.subscriber_id, due.issue_date)
    return NewEdition(
        briefing=due.briefing,
        subscriber_id=due.subscriber_id,
        subscription_id=due.subscription_id,
        issue_date=due.issue_date,
        scheduled_at=due.scheduled_at,
        variant_id=variant_id,
        cut_at=cut_at,
        status=status,
        reason=reason,
        message_id=signer.message_id(key, domain),
    )


def dispatch(
    config: Config,
    database: Database,
    signer: Signer,
    now: datetime,
    *,
    briefing: str | None = None,
    force: bool = False,
) -> DispatchReport:
    """Put every due edition in the ledger, cutting the variants they need."""
    report = DispatchReport()
    cut_at = now
    archives: dict[ArchiveKey, Archive] = {}
    names = [briefing] if briefing else list(config.briefings)
    for name in names:
        settings = config.briefing(name)
        with database.transaction() as session:
            if name in paused_briefings(session):
                report.paused.append(name)
                continue
            dues = [
                (due, subscription)
                for subscription in active_subscriptions(session, name)
                for due in due_editions(subscription, now, settings.deadline, force=force)
            ]
            existing = existing_editions(session, name, {due.issue_date for due, _ in dues})
            dues = [d for d in dues if (d[0].subscriber_id, d[0].issue_date) not in existing]
            previous = previous_cuts(session, name, [d[0].subscriber_id for d in dues])
            groups: dict[VariantSpec, list[Due]] = defaultdict(list)
            for due, subscription in dues:
                if due.expired:
                    late = now - due.scheduled_at
                    reason = (
                        f"send time {due.scheduled_at:%Y-%m-%d %H:%M} UTC passed "
                        f"{int(late.total_seconds() // 60)} min ago, past the deadline"
                    )
                    edition = _new_edition(signer, config, due, DeliveryState.EXPIRED, reason)
                    if insert_edition(session, edition, now):
                        report.count(due, DeliveryState.EXPIRED)
                    continue
                if (hit := suppression_for(session, subscription.email, name)) is not None:
                    reason = f"address suppressed ({hit.reason})"
                    edition = _new_edition(signer, config, due, DeliveryState.SUPPRESSED, reason)
                    if insert_edition(session, edition, now):
                        report.count(due, DeliveryState.SUPPRESSED)
                    continue
                spec = VariantSpec(
                    briefing=name,
                    sections=ordered_sections(config, name, subscription.sections),
                    since=previous.get(due.subscriber_id),
                    cut_at=cut_at,
                    locale=settings.locale,
                    issue_date=due.issue_date,
                )
                groups[spec].append(due)
        # Variants are built outside any transaction: rendering takes CPU, not locks.
        for spec, members in groups.items():
            built = build_variant(
                database, config, spec, archives, feedback_key=signer.feedback_key
            )
            skip = built.empty and settings.skip_if_empty
            status = DeliveryState.SKIPPED if skip else DeliveryState.PENDING
            empty = "no new articles since the last edition" if skip else None
            with database.transaction() as session:
                variant_id = freeze_variant(session, frozen(built), now)
                report.count_variant(name, spec.issue_date)
                report.notes.extend(f"{name}: {note}" for note in built.notes)
                for due in members:
                    edition = _new_edition(
                        signer, config, due, status, empty, variant_id=variant_id, cut_at=cut_at
                    )
                    if insert_edition(session, edition, now):
                        report.count(due, status)
        report.log(name)
    return report
