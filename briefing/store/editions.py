"""Store editions and their frozen variants, and answer questions about them.

A variant is inserted once per key (another process may win the race; its
row is used). An edition row and its delivery row are inserted together,
the edition's unique key deciding races, so no edition is dispatched twice.
"""

from __future__ import annotations

import json
import typing
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    cast,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy import insert as plain_insert
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from briefing.domain.addresses import ALL_BRIEFINGS
from briefing.domain.models import DigestItem
from briefing.domain.states import DeliveryState, MessageKind, SubscriptionState
from briefing.store.queries import insert_ignore
from briefing.store.schema import (
    SECTIONS_KEY,
    Delivery,
    Edition,
    Subscriber,
    Subscription,
    Suppression,
    UTCDateTime,
    Variant,
    VariantItem,
)


@dataclass(frozen=True)
class NewVariant:
    """A variant's frozen content, ready to be stored."""

    key: str
    briefing: str
    sections: Sequence[str]
    locale: str
    issue_date: date
    since: datetime | None
    cut_at: datetime
    subject: str
    item_count: int
    html_size: int
    notes: Sequence[str]
    html: str
    text: str
    message: bytes
    placeholders: Mapping[str, str]
    items: Sequence[DigestItem]


@dataclass(frozen=True)
class StoredVariant:
    """A variant as it was frozen."""

    id: int
    key: str
    sections: tuple[str, ...]
    cut_at: datetime
    subject: str
    item_count: int
    html_size: int
    notes: tuple[str, ...]
    html: str
    text: str
    message: bytes
    placeholders: dict[str, Any]


def stored_variant(row: Variant) -> StoredVariant:
    """Return a variant row as the frozen value the services read."""
    return StoredVariant(
        id=row.id,
        key=row.key,
        sections=tuple(row.sections),
        cut_at=row.cut_at,
        subject=row.subject,
        item_count=row.item_count,
        html_size=row.html_size,
        notes=tuple(row.notes),
        html=row.html,
        text=row.text,
        message=row.message,
        placeholders=dict(row.placeholders),
    )


def freeze_variant(session: Session, variant: NewVariant, now: datetime) -> int:
    """Store a variant frozen; return its id (another process's if it won the race)."""
    inserted = insert_ignore(
        session,
        Variant,
        {
            "key": variant.key,
            "briefing": variant.briefing,
            "sections": list(variant.sections),
            "locale": variant.locale,
            "issue_date": variant.issue_date,
            "since": variant.since,
            "cut_at": variant.cut_at,
            "created_at": now,
            "subject": variant.subject,
            "item_count": variant.item_count,
            "html_size": variant.html_size,
            "notes": list(variant.notes),
            "html": variant.html,
            "text": variant.text,
            "message": variant.message,
            "placeholders": dict(variant.placeholders),
        },
    )
    variant_id = session.scalar(select(Variant.id).where(Variant.key == variant.key))
    assert variant_id is not None
    if inserted:
        session.add_all(
            VariantItem(
                variant_id=variant_id,
                position=position,
                section=item.article.section,
                article_id=item.article.id,
                summary=item.summary,
                related=[link.model_dump(mode="json") for link in item.related],
                also_covered=[link.model_dump(mode="json") for link in item.also_covered],
            )
            for position, item in enumerate(variant.items)
        )
    return variant_id


def find_variant(session: Session, key: str) -> StoredVariant | None:
    """Return the stored variant with ``key``, if it was cut already."""
    row = session.scalar(select(Variant).where(Variant.key == key))
    return stored_variant(row) if row is not None else None


def variant_of_edition(
    session: Session, briefing: str, subscriber_id: int, issue_date: date
) -> StoredVariant | None:
    """Return the variant a subscriber's edition of ``issue_date`` was cut to, if any."""
    row = session.scalar(
        select(Variant)
        .join(Edition, Edition.variant_id == Variant.id)
        .where(
            Edition.briefing == briefing,
            Edition.subscriber_id == subscriber_id,
            Edition.issue_date == issue_date,
        )
    )
    return stored_variant(row) if row is not None else None


def dispatched_dates(session: Session, briefing: str, since: date) -> dict[int, frozenset[date]]:
    """Return each subscriber's issue dates of ``briefing`` from ``since`` on.

    Equal sets are one object, so a caller can key on them cheaply.
    """
    dispatched: dict[int, set[date]] = {}
    for subscriber_id, issue_date in session.execute(
        select(Edition.subscriber_id, Edition.issue_date).where(
            Edition.briefing == briefing, Edition.issue_date >= since
        )
    ):
        if subscriber_id is not None:
            dispatched.setdefault(subscriber_id, set()).add(issue_date)
    shared: dict[frozenset[date], frozenset[date]] = {}
    return {
        subscriber_id: shared.setdefault(frozen, frozen)
        for subscriber_id, dates in dispatched.items()
        for frozen in (frozenset(dates),)
    }


def last_cut_before(
    session: Session, briefing: str, subscriber_id: int, before: datetime
) -> datetime | None:
    """Return a subscriber's latest cut time of ``briefing`` before ``before``."""
    return session.scalar(
        select(func.max(Edition.cut_at)).where(
            Edition.briefing == briefing,
            Edition.subscriber_id == subscriber_id,
            Edition.variant_id.is_not(None),
            Edition.cut_at < before,
        )
    )


@dataclass(frozen=True)
class NewEdition:
    """One edition to put in the ledger, with its delivery's first state."""

    briefing: str
    subscriber_id: int
    subscription_id: int
    issue_date: date
    scheduled_at: datetime
    variant_id: int | None
    cut_at: datetime | None
    status: DeliveryState
    reason: str | None
    message_id: str


def insert_edition(session: Session, edition: NewEdition, now: datetime) -> bool:
    """Insert an edition and its delivery row unless it exists; tell whether it was inserted."""
    inserted = insert_ignore(
        session,
        Edition,
        {
            "briefing": edition.briefing,
            "subscriber_id": edition.subscriber_id,
            "subscription_id": edition.subscription_id,
            "issue_date": edition.issue_date,
            "scheduled_at": edition.scheduled_at,
            "variant_id": edition.variant_id,
            "cut_at": edition.cut_at,
            "created_at": now,
        },
    )
    if not inserted:
        return False
    edition_id = session.scalar(
        select(Edition.id).where(
            Edition.briefing == edition.briefing,
            Edition.subscriber_id == edition.subscriber_id,
            Edition.issue_date == edition.issue_date,
        )
    )
    session.add(
        Delivery(
            edition_id=edition_id,
            status=edition.status,
            reason=edition.reason,
            message_id=edition.message_id,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
    )
    return True


def delivery_counts(session: Session, briefing: str, since: datetime) -> Counter[DeliveryState]:
    """Count the deliveries of ``briefing``'s editions created from ``since`` on, by state."""
    rows = session.execute(
        select(Delivery.status, func.count())
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(Edition.briefing == briefing, Edition.created_at >= since)
        .group_by(Delivery.status)
    )
    return Counter({DeliveryState(status): int(count) for status, count in rows})


# --- dispatch by set --------------------------------------------------------------------
#
# Dispatch works on cohorts: a briefing's active subscriptions with the same timezone, send
# time, frequency and stored sections. Their due moments are computed once per cohort (in
# Python: SQLite has no timezone database). The due cohorts go in a temporary table, which
# each statement joins: one reads the windows, one the suppressed, and one INSERT ... SELECT
# per variant puts in its editions and deliveries, so the number of statements grows with
# variants, the cost per subscriber is database work only, and no list of subscribers is
# ever held in memory.

DELIVERY_BATCH = 5000  # delivery rows per COPY on PostgreSQL

DISPATCH_CACHE_KIB = 16384
"""SQLite page cache of a connection while it runs a dispatch statement, in KiB.

A dispatch statement walks a briefing's subscriptions and the editions' and deliveries'
indexes at once; with SQLite's default cache (2,000 KiB) the same pages are read again and
again (half the system time of a 100,000 dispatch). The cache is bounded, and given back
after the statement, so that a delivery run in the same process keeps its memory.
"""

MessageIdOf = Callable[[str, int, date], str]
"""Make an edition's Message-ID from its briefing, subscriber id and issue date."""


@dataclass(frozen=True)
class Cohort:
    """A briefing's active subscriptions timed alike, with their stored sections."""

    timezone: str
    send_time: str
    frequency: str
    sections: str | None  # the JSON text the database holds (``None``/``"null"``: the defaults)
    created_at: datetime  # the oldest member's, which bounds the cohort's due dates

    @property
    def chosen(self) -> tuple[str, ...] | None:
        """Return the sections the cohort chose, or None for the briefing's defaults."""
        value = json.loads(self.sections) if self.sections else None
        return tuple(value) if value else None


@dataclass(frozen=True)
class CohortDue:
    """One issue date due (or expired) for a cohort, and when it was (or is) due."""

    briefing: str
    cohort: Cohort
    issue_date: date
    scheduled_at: datetime
    forced: bool  # run-now: every member gets it, whenever they subscribed


_SECTIONS_TEXT = cast(Subscription.sections, Text)
# Core tables: the bulk statements go straight to the driver, not through the ORM's bulk paths.
_EDITIONS = typing.cast(Table, Edition.__table__)
_DELIVERIES = typing.cast(Table, Delivery.__table__)
_PREVIOUS = aliased(Edition)

# The cohorts (with their issue date) one dispatch statement works on, filled with one
# executemany at the start of the statement's transaction and dropped at its end: the
# statements join it, so their number grows with variants, not with cohorts.
_DUES = Table(
    "dispatch_dues",
    MetaData(),
    Column("position", Integer, primary_key=True),
    Column("briefing", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("send_time", String(5), nullable=False),
    Column("frequency", String(20), nullable=False),
    Column("sections", Text),
    Column("issue_date", Date, nullable=False),
    Column("scheduled_at", UTCDateTime, nullable=False),
    Column("forced", Boolean, nullable=False),
    Column("since", UTCDateTime),  # the previous cut a variant's members share
    prefixes=["TEMPORARY"],
)


def subscription_cohorts(session: Session, briefing: str) -> list[Cohort]:
    """Return the cohorts of ``briefing``'s active subscriptions."""
    rows = session.execute(
        select(
            Subscription.timezone,
            Subscription.send_time,
            Subscription.frequency,
            _SECTIONS_TEXT,
            func.min(Subscription.created_at),
        )
        .where(Subscription.briefing == briefing, Subscription.status == SubscriptionState.ACTIVE)
        .group_by(
            Subscription.timezone, Subscription.send_time, Subscription.frequency, _SECTIONS_TEXT
        )
    )
    return [Cohort(*row) for row in rows]


def _previous_cut(briefing: str, cut_at: datetime) -> Any:
    # A subscriber's latest cut before this run: the start of their next selection window.
    return (
        select(func.max(_PREVIOUS.cut_at))
        .where(
            _PREVIOUS.briefing == briefing,
            _PREVIOUS.subscriber_id == Subscription.subscriber_id,
            _PREVIOUS.variant_id.is_not(None),
            _PREVIOUS.cut_at < cut_at,
        )
        .scalar_subquery()
    )


@contextmanager
def _roomy_cache(session: Session) -> Iterator[None]:
    """Give this SQLite connection a :data:`DISPATCH_CACHE_KIB` page cache for the block."""
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    previous = int(session.execute(sql_text("PRAGMA cache_size")).scalar_one())
    session.execute(sql_text(f"PRAGMA cache_size = -{DISPATCH_CACHE_KIB}"))
    yield
    session.execute(sql_text(f"PRAGMA cache_size = {previous}"))


@contextmanager
def _dues_table(
    session: Session, dues: Sequence[CohortDue], since: Sequence[datetime | None] | None = None
) -> Iterator[Table]:
    """Hold ``dues`` (and each one's previous cut) in a temporary table for one statement.

    A row's ``position`` is its index in ``dues``. The table lives in this
    transaction only: a rollback takes it away, and so does the drop at the end.
    """
    is_sqlite = session.get_bind().dialect.name == "sqlite"
    schema = "temp" if is_sqlite else "pg_temp"
    drop = sql_text(f"DROP TABLE IF EXISTS {schema}.{_DUES.name}")
    session.execute(drop)  # left by a statement that failed halfway on this connection
    _DUES.create(session.connection())
    session.execute(
        plain_insert(_DUES),
        [
            {
                "position": position,
                "briefing": due.briefing,
                "status": SubscriptionState.ACTIVE.value,
                "timezone": due.cohort.timezone,
                "send_time": due.cohort.send_time,
                "frequency": due.cohort.frequency,
                "sections": due.cohort.sections,
                "issue_date": due.issue_date,
                "scheduled_at": due.scheduled_at,
                "forced": due.forced,
                "since": since[position] if since is not None else None,
            }
            for position, due in enumerate(dues)
        ],
    )
    yield _DUES
    session.execute(drop)


def _members(briefing: str, dues: Table, *, ids: tuple[int, int] | None = None) -> list[Any]:
    """Return the conditions joining cohorts' members without an edition on the date to ``dues``."""
    due = dues.c
    conditions = [
        # Every column of the cohort index comes from ``dues`` (not a constant), so that the
        # database reads the few due rows first and each cohort's members by the index.
        Subscription.briefing == due.briefing,
        Subscription.status == due.status,
        Subscription.timezone == due.timezone,
        Subscription.send_time == due.send_time,
        Subscription.frequency == due.frequency,
        func.coalesce(due.sections, literal_column("''")) == SECTIONS_KEY,
        ~exists().where(
            Edition.briefing == briefing,
            Edition.subscriber_id == Subscription.subscriber_id,
            Edition.issue_date == due.issue_date,
        ),
        # Nobody gets an edition whose send time passed before they subscribed (but run-now
        # sends to every member).
        or_(due.forced, Subscription.created_at <= due.scheduled_at),
    ]
    if ids is not None:
        conditions.append(Subscription.id.between(*ids))
    return conditions


def due_windows(
    session: Session, briefing: str, dues: Sequence[CohortDue], cut_at: datetime
) -> list[tuple[int, datetime | None, int]]:
    """Return, per due cohort (its index in ``dues``), its members' previous cuts and counts.

    Members with the same previous cut share a selection window, hence a
    variant. One statement answers for all the cohorts.
    """
    if not dues:
        return []
    with _roomy_cache(session), _dues_table(session, dues) as table:
        previous = _previous_cut(briefing, cut_at).label("previous")
        inner = (
            select(table.c.position, previous)
            .select_from(table)
            .join(Subscription, and_(*_members(briefing, table)))
            .subquery()
        )
        rows = session.execute(
            select(inner.c.position, inner.c.previous, func.count()).group_by(
                inner.c.position, inner.c.previous
            )
        ).all()
    return [(int(position), since, int(count)) for position, since, count in rows]


def subscription_id_range(session: Session, briefing: str) -> tuple[int, int] | None:
    """Return the lowest and highest subscription id of ``briefing``, if it has any."""
    low, high = session.execute(
        select(func.min(Subscription.id), func.max(Subscription.id)).where(
            Subscription.briefing == briefing
        )
    ).one()
    return (int(low), int(high)) if low is not None else None


def suppression_candidates(
    session: Session, briefing: str, dues: Sequence[CohortDue]
) -> list[tuple[int, int, int, str]]:
    """Return (due's index, subscription id, subscriber id, address) of members maybe suppressed.

    The database matches the address's hash against the suppression list; an
    internationalised domain may be on it under an older hash as well
    (:func:`~briefing.domain.addresses.address_hashes`), so those addresses come
    back too and the caller checks them one by one. Both are rare.
    """
    if not dues:
        return []
    hashed = _sha256_hex(session, Subscriber.email)
    on_list = exists().where(
        Suppression.email_hash == hashed,
        Suppression.briefing.in_((briefing, ALL_BRIEFINGS)),
    )
    with _roomy_cache(session), _dues_table(session, dues) as table:
        rows = session.execute(
            select(table.c.position, Subscription.id, Subscription.subscriber_id, Subscriber.email)
            .select_from(table)
            .join(Subscription, and_(*_members(briefing, table)))
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(or_(on_list, Subscriber.email.like("%xn--%")))
        ).all()
    return [(int(a), int(b), int(c), str(d)) for a, b, c, d in rows]


def _sha256_hex(session: Session, text: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.encode(func.sha256(func.convert_to(text, "UTF8")), "hex")
    return func.briefing_sha256(text)  # registered on every SQLite connection (store/db.py)


Reason = str | Callable[[datetime], str] | None
"""A delivery's reason: one for all, or made from each edition's scheduled time."""


def insert_due_editions(
    session: Session,
    briefing: str,
    dues: Sequence[CohortDue],
    *,
    status: DeliveryState,
    reason: Reason,
    now: datetime,
    message_id: MessageIdOf,
    variant: tuple[int, datetime, Sequence[datetime | None]] | None = None,
    ids: tuple[int, int] | None = None,
) -> Counter[date]:
    """Insert the editions and deliveries of the due cohorts' members; count them by date.

    One statement for all of ``dues``. ``variant`` is (variant id, cut time,
    each due's previous cut): only members whose previous cut is their due's
    get it. Members with an edition on the date are left alone (and on
    PostgreSQL the unique key settles a concurrent dispatch). ``ids`` limits
    the statement to a range of subscription ids, to keep a transaction short.
    """
    if not dues:
        return Counter()
    with _roomy_cache(session):
        variant_id, cut_at, since = (None, None, None) if variant is None else variant
        with _dues_table(session, dues, since) as table:
            conditions = _members(briefing, table, ids=ids)
            if cut_at is not None:
                conditions.append(
                    _previous_cut(briefing, cut_at).is_not_distinct_from(table.c.since)
                )
            watermark = session.scalar(select(func.max(Edition.id))) or 0
            chosen = (
                select(
                    literal(briefing, String),
                    Subscription.subscriber_id,
                    Subscription.id,
                    table.c.issue_date,
                    table.c.scheduled_at,
                    literal(variant_id, Integer),
                    literal(cut_at, UTCDateTime),
                    literal(now, UTCDateTime),
                )
                .select_from(table)
                .join(Subscription, and_(*conditions))
            )
            columns = [
                "briefing",
                "subscriber_id",
                "subscription_id",
                "issue_date",
                "scheduled_at",
                "variant_id",
                "cut_at",
                "created_at",
            ]
            dialect = session.get_bind().dialect.name
            upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            statement = upsert(_EDITIONS).from_select(columns, chosen).on_conflict_do_nothing()
            result = session.execute(statement, execution_options={"preserve_rowcount": True})
        inserted = int(result.rowcount)  # type: ignore[attr-defined]
        if not inserted:
            return Counter()
        fresh = _fresh(briefing, watermark, now)
        dates = {due.issue_date for due in dues}
        if len(dates) == 1:
            counts = Counter({dates.pop(): inserted})
        else:
            counts = Counter(
                {
                    day: int(count)
                    for day, count in session.execute(
                        select(Edition.issue_date, func.count())
                        .where(*fresh)
                        .group_by(Edition.issue_date)
                    )
                }
            )
        _insert_deliveries(session, briefing, fresh, status, reason, now, message_id)
        return counts


def _fresh(briefing: str, watermark: int, now: datetime) -> list[Any]:
    """Name the editions this transaction just inserted: above ``watermark``, no delivery yet.

    Any other process's edition is committed with its delivery, in one transaction.
    """
    return [
        Edition.id > watermark,
        Edition.briefing == briefing,
        Edition.created_at == now,
        ~exists().where(Delivery.edition_id == Edition.id),
    ]


def _insert_deliveries(
    session: Session,
    briefing: str,
    fresh: list[Any],
    status: DeliveryState,
    reason: Reason,
    now: datetime,
    message_id: MessageIdOf,
) -> None:
    """Insert the delivery rows of the ``fresh`` editions this transaction just inserted."""
    columns = ["edition_id", "kind", "status", "reason", "message_id", "attempts"]
    columns += ["created_at", "updated_at"]
    if session.get_bind().dialect.name == "sqlite":
        # The Message-ID (and a reason made per edition) is made in the statement, by a
        # function of this connection.
        raw = session.connection().connection.driver_connection
        assert raw is not None

        def made(name: str, subscriber_id: int, issue_date: str) -> str:
            return message_id(name, subscriber_id, date.fromisoformat(issue_date))

        raw.create_function("briefing_message_id", 3, made, deterministic=True)
        why: Any = literal(reason, Text) if not callable(reason) else None
        if callable(reason):
            reason_of = reason

            def explained(scheduled_at: str) -> str:
                return reason_of(datetime.fromisoformat(scheduled_at).replace(tzinfo=UTC))

            raw.create_function("briefing_reason", 1, explained, deterministic=True)
            why = func.briefing_reason(Edition.scheduled_at)
        chosen = select(
            Edition.id,
            literal(MessageKind.DIGEST.value, String),
            literal(status.value, String),
            why,
            func.briefing_message_id(Edition.briefing, Edition.subscriber_id, Edition.issue_date),
            literal(0, Integer),
            literal(now, UTCDateTime),
            literal(now, UTCDateTime),
        ).where(*fresh)
        session.execute(plain_insert(_DELIVERIES).from_select(columns, chosen))
        return
    # PostgreSQL: stream the new editions and COPY their deliveries in, a batch at a time (a
    # batch is fetched, then copied: the connection cannot fetch while a COPY is open).
    # (Editions just inserted always name their subscriber; coalesce only satisfies the type.)
    subscriber = func.coalesce(Edition.subscriber_id, 0)
    rows = session.execute(
        select(Edition.id, subscriber, Edition.issue_date, Edition.scheduled_at).where(*fresh),
        execution_options={"yield_per": DELIVERY_BATCH},
    )
    driver: Any = session.connection().connection.driver_connection
    stamp = now.astimezone(UTC).replace(tzinfo=None)  # as UTCDateTime binds it
    kind, state = MessageKind.DIGEST.value, status.value
    copy_sql = f"COPY {_DELIVERIES.name} ({', '.join(columns)}) FROM STDIN"
    for batch in rows.partitions(DELIVERY_BATCH):
        with driver.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for edition_id, subscriber_id, issue_date, scheduled_at in batch:
                copy.write_row(
                    (
                        edition_id,
                        kind,
                        state,
                        reason(scheduled_at) if callable(reason) else reason,
                        message_id(briefing, subscriber_id, issue_date),
                        0,
                        stamp,
                        stamp,
                    )
                )
