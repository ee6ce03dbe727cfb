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
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from briefing.config import Config, frequency_includes, parse_send_time
from briefing.domain.tokens import Signer
from briefing.editions.variants import (
    ArchiveKey,
    VariantSpec,
    build_variant,
    load_inputs,
    ordered_sections,
    store_variant,
)
from briefing.pipeline.relate import Archive
from briefing.store import Database
from briefing.store.queries import insert_ignore
from briefing.store.schema import (
    BriefingControl,
    Delivery,
    Edition,
    Subscriber,
    Subscription,
)
from briefing.store.suppressions import suppression_for

logger = logging.getLogger(__name__)


def local_send_moment(day: date, send_time: time, zone: ZoneInfo) -> datetime:
    """Return when ``send_time`` happens on ``day`` in ``zone``, as UTC.

    In the spring-forward gap the first valid minute after it is used; in the
    autumn fold, the first of the two moments.
    """
    wall = datetime.combine(day, send_time)
    for minutes in range(24 * 60):
        candidate = (wall + timedelta(minutes=minutes)).replace(tzinfo=zone, fold=0)
        round_trip = candidate.astimezone(UTC).astimezone(zone)
        if round_trip.replace(tzinfo=None) == candidate.replace(tzinfo=None):
            return candidate.astimezone(UTC)
    raise ValueError(f"no valid local time at or after {wall} in {zone}")


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
    subscription: Subscription,
    now: datetime,
    deadline: timedelta,
    *,
    force: bool = False,
) -> list[Due]:
    """List the editions of one subscription that are due or expired at ``now``."""
    zone = ZoneInfo(subscription.timezone)
    today = now.astimezone(zone).date()
    if force:
        return [
            Due(
                subscription.id,
                subscription.subscriber_id,
                subscription.briefing,
                today,
                now,
                False,
            )
        ]
    send_time = parse_send_time(subscription.send_time)
    found = []
    for day in (today - timedelta(days=1), today):
        if not frequency_includes(subscription.frequency, day):
            continue
        moment = local_send_moment(day, send_time, zone)
        if moment > now or moment < subscription.created_at:
            continue
        found.append(
            Due(
                subscription.id,
                subscription.subscriber_id,
                subscription.briefing,
                day,
                moment,
                expired=now > moment + deadline,
            )
        )
    return found


@dataclass
class DispatchReport:
    """What one dispatch run put in the ledger, per briefing."""

    pending: int = 0
    skipped: int = 0
    suppressed: int = 0
    expired: int = 0
    variants: int = 0
    paused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # (briefing, issue date) -> delivery status -> editions; "variants" counts variants cut.
    by_edition: dict[tuple[str, date], Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )

    @property
    def dispatched(self) -> int:
        """Count editions put in the ledger."""
        return self.pending + self.skipped + self.suppressed + self.expired

    def count(self, due: Due, status: str) -> None:
        """Count one edition put in the ledger with ``status``."""
        setattr(self, status, getattr(self, status) + 1)
        self.by_edition[(due.briefing, due.issue_date)][status] += 1

    def log(self, briefing: str) -> None:
        """Log one line per edition date of ``briefing`` that got anything."""
        for (name, issue_date), counts in sorted(self.by_edition.items()):
            if name == briefing:
                logger.info(
                    "briefing %s, edition %s: dispatched %d pending, %d skipped, "
                    "%d suppressed, %d expired in %d variant(s)",
                    name,
                    issue_date,
                    counts["pending"],
                    counts["skipped"],
                    counts["suppressed"],
                    counts["expired"],
                    counts["variants"],
                )


def paused_briefings(session: Session) -> set[str]:
    """Return the briefings ops paused (read by every process from the table)."""
    return set(session.scalars(select(BriefingControl.briefing).where(BriefingControl.paused)))


def _existing(session: Session, briefing: str, dates: set[date]) -> set[tuple[int, date]]:
    rows = session.execute(
        select(Edition.subscriber_id, Edition.issue_date).where(
            Edition.briefing == briefing, Edition.issue_date.in_(dates)
        )
    )
    return {(subscriber_id, issue_date) for subscriber_id, issue_date in rows if subscriber_id}


def _previous_cuts(
    session: Session, briefing: str, subscriber_ids: list[int]
) -> dict[int, datetime]:
    rows = session.execute(
        select(Edition.subscriber_id, func.max(Edition.cut_at))
        .where(
            Edition.briefing == briefing,
            Edition.subscriber_id.in_(subscriber_ids),
            Edition.variant_id.is_not(None),
        )
        .group_by(Edition.subscriber_id)
    )
    return {
        subscriber_id: cut
        for subscriber_id, cut in rows
        if subscriber_id is not None and cut is not None
    }


def edition_key(briefing: str, subscriber_id: int, issue_date: date) -> str:
    """Name an edition stably: the input of its Message-ID."""
    return f"{briefing}:{subscriber_id}:{issue_date.isoformat()}"


def _insert_edition(
    session: Session,
    signer: Signer,
    config: Config,
    due: Due,
    *,
    variant_id: int | None,
    cut_at: datetime | None,
    status: str,
    reason: str | None,
    now: datetime,
) -> bool:
    inserted = insert_ignore(
        session,
        Edition,
        {
            "briefing": due.briefing,
            "subscriber_id": due.subscriber_id,
            "subscription_id": due.subscription_id,
            "issue_date": due.issue_date,
            "scheduled_at": due.scheduled_at,
            "variant_id": variant_id,
            "cut_at": cut_at,
            "created_at": now,
        },
    )
    if not inserted:
        return False
    edition_id = session.scalar(
        select(Edition.id).where(
            Edition.briefing == due.briefing,
            Edition.subscriber_id == due.subscriber_id,
            Edition.issue_date == due.issue_date,
        )
    )
    domain = config.site.from_address.rpartition("@")[2]
    session.add(
        Delivery(
            edition_id=edition_id,
            status=status,
            reason=reason,
            message_id=signer.message_id(
                edition_key(due.briefing, due.subscriber_id, due.issue_date), domain
            ),
            attempts=0,
            created_at=now,
            updated_at=now,
        )
    )
    return True


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
            rows = session.execute(
                select(Subscription, Subscriber.email)
                .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
                .where(Subscription.briefing == name, Subscription.status == "active")
                .order_by(Subscription.id)
            ).all()
            dues = [
                (due, subscription, email)
                for subscription, email in rows
                for due in due_editions(subscription, now, settings.deadline, force=force)
            ]
            existing = _existing(session, name, {due.issue_date for due, _, _ in dues})
            dues = [d for d in dues if (d[0].subscriber_id, d[0].issue_date) not in existing]
            previous = _previous_cuts(session, name, [d[0].subscriber_id for d in dues])
            groups: dict[VariantSpec, list[Due]] = defaultdict(list)
            for due, subscription, email in dues:
                if due.expired:
                    late = now - due.scheduled_at
                    if _insert_edition(
                        session,
                        signer,
                        config,
                        due,
                        variant_id=None,
                        cut_at=None,
                        status="expired",
                        now=now,
                        reason=f"send time {due.scheduled_at:%Y-%m-%d %H:%M} UTC passed "
                        f"{int(late.total_seconds() // 60)} min ago, past the deadline",
                    ):
                        report.count(due, "expired")
                    continue
                if (hit := suppression_for(session, email, name)) is not None:
                    if _insert_edition(
                        session,
                        signer,
                        config,
                        due,
                        variant_id=None,
                        cut_at=None,
                        status="suppressed",
                        reason=f"address suppressed ({hit.reason})",
                        now=now,
                    ):
                        report.count(due, "suppressed")
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
            with database.transaction() as session:
                inputs = load_inputs(session, config, spec, archives)
            built = build_variant(config, spec, inputs)
            with database.transaction() as session:
                variant_id = store_variant(session, built, now)
                report.variants += 1
                report.by_edition[(name, spec.issue_date)]["variants"] += 1
                report.notes.extend(f"{name}: {note}" for note in built.notes)
                skip = built.empty and settings.skip_if_empty
                for due in members:
                    if _insert_edition(
                        session,
                        signer,
                        config,
                        due,
                        variant_id=variant_id,
                        cut_at=spec.cut_at,
                        status="skipped" if skip else "pending",
                        reason="no new articles since the last edition" if skip else None,
                        now=now,
                    ):
                        report.count(due, "skipped" if skip else "pending")
        report.log(name)
    return report
