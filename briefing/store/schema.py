"""Declare the tables: sources, articles, subscribers, editions, variants, the ledger.

The model is meant to be settled once:

- a **subscription** is subscriber x briefing, with its own sections, timezone,
  send time, frequency, lifecycle status and consent record;
- a **variant** is the frozen content of a digest (items per section, their
  summaries and related links, and the composed message template), shared by
  every subscription with the same sections, window, cut time and locale;
- an **edition** is (briefing, subscriber, local issue date) pointing at its
  variant; a **delivery** is the ledger row of one message: of one edition
  (kind ``digest``, unique) or of one confirmation (kind ``confirmation``);
- a **confirmation** is one double opt-in link sent to an address, and a
  **sign-up attempt** (hashed) is what the web sign-up limits count;
- an **account request** is one single-use self-service link (download,
  delete, change of address, undo) mailed to a reader (kind ``account``).

Times are stored as UTC (naive in SQLite, converted on the way in and out).
Every status column has a CHECK constraint listing the states of
:mod:`briefing.domain.states`, so a typo is refused by the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    cast,
    func,
    literal_column,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from briefing.domain.states import (
    AccountAction,
    BounceKind,
    BounceMatch,
    DeliveryState,
    MessageKind,
    OverrideKind,
    ProcessKind,
    Role,
    SubscriptionState,
)

# What a transport said about one attempt (a subset of the delivery states).
ATTEMPT_OUTCOMES = (
    DeliveryState.SENT,
    DeliveryState.DEFERRED,
    DeliveryState.FAILED,
    DeliveryState.BOUNCED,
)


def one_of(column: str, values: Iterable[StrEnum], *, nullable: bool = False) -> str:
    """Return the SQL of a CHECK that ``column`` holds one of ``values``."""
    listed = ", ".join(f"'{value.value}'" for value in values)
    check = f"{column} IN ({listed})"
    return f"{column} IS NULL OR {check}" if nullable else check


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as UTC and hand them back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored; attach a timezone")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Base of every table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Source(Base):
    """One configured source and its health."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(1000), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    last_checked_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    items_seen: Mapped[int] = mapped_column(Integer, default=0)


class Article(Base):
    """One story, deduplicated by GUID or canonical URL."""

    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(1000), unique=True)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"))
    url: Mapped[str | None] = mapped_column(Text)
    guid: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    dek: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text, default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str | None] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(Text)
    image_alt: Mapped[str | None] = mapped_column(Text)
    image_credit: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    published_at: Mapped[datetime | None]
    first_seen_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    content_hash: Mapped[str] = mapped_column(String(64))

    sections: Mapped[list[ArticleSection]] = relationship(
        back_populates="article", cascade="all, delete-orphan", lazy="selectin"
    )


class ArticleSection(Base):
    """Place an article in a section (an article may sit in several)."""

    __tablename__ = "article_sections"

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    section: Mapped[str] = mapped_column(String(100), primary_key=True)

    article: Mapped[Article] = relationship(back_populates="sections")


class Subscriber(Base):
    """One person, keyed by their normalised address."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan"
    )


class Subscription(Base):
    """A subscriber's choice of one briefing: sections, time, frequency, status, consent."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "briefing"),
        CheckConstraint(one_of("status", SubscriptionState), name="ck_subscriptions_status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    briefing: Mapped[str] = mapped_column(String(100), index=True)
    sections: Mapped[list[Any] | None] = mapped_column(JSON)
    timezone: Mapped[str] = mapped_column(String(64))
    send_time: Mapped[str] = mapped_column(String(5))
    frequency: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True)
    status_changed_at: Mapped[datetime]
    status_source: Mapped[str] = mapped_column(String(100))
    consent_source: Mapped[str] = mapped_column(String(200))
    consent_at: Mapped[datetime]
    preferences_set_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    subscriber: Mapped[Subscriber] = relationship(back_populates="subscriptions")


SECTIONS_KEY = func.coalesce(cast(Subscription.sections, Text), literal_column("''"))
"""A subscription's sections as dispatch groups them: the stored JSON's text, '' for none.

An expression, not ``IS NOT DISTINCT FROM``, so that PostgreSQL can look it up in an index.
"""

# Dispatch reads one cohort (timing and sections alike) of a briefing's active subscriptions
# at a time; with the sections in the index it reads only that cohort's rows.
Index(
    "ix_subscriptions_cohort",
    Subscription.briefing,
    Subscription.status,
    Subscription.timezone,
    Subscription.send_time,
    Subscription.frequency,
    SECTIONS_KEY,
)


class SubscriptionEvent(Base):
    """Record one lifecycle change of a subscription with its time and source."""

    __tablename__ = "subscription_events"
    __table_args__ = (
        CheckConstraint(
            one_of("status_from", SubscriptionState, nullable=True),
            name="ck_subscription_events_status_from",
        ),
        CheckConstraint(
            one_of("status_to", SubscriptionState), name="ck_subscription_events_status_to"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="SET NULL"), index=True
    )
    at: Mapped[datetime]
    status_from: Mapped[str | None] = mapped_column(String(20))
    status_to: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column(Text)


class Suppression(Base):
    """An address that must never be mailed, kept even when the subscriber is deleted."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("email_hash", "briefing"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    briefing: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class BounceEvent(Base):
    """One report that came back by mail (a bounce, complaint, reply or request), and what it did.

    ``fingerprint`` identifies the report and its recipient, so the same
    report read twice is stored once.
    """

    __tablename__ = "bounce_events"
    __table_args__ = (
        CheckConstraint(one_of("kind", BounceKind), name="ck_bounce_events_kind"),
        CheckConstraint(
            one_of("matched_by", BounceMatch, nullable=True), name="ck_bounce_events_matched_by"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(200))
    email_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), index=True
    )
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="SET NULL"), index=True
    )
    matched_by: Mapped[str | None] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(200))


class Variant(Base):
    """The frozen content of a digest shared by subscriptions cut alike."""

    __tablename__ = "variants"
    __table_args__ = (
        # The archive pages a briefing's issue dates, newest first (store/archive.py).
        Index("ix_variants_briefing_issue_date", "briefing", "issue_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    briefing: Mapped[str] = mapped_column(String(100), index=True)
    sections: Mapped[list[Any]] = mapped_column(JSON)
    locale: Mapped[str] = mapped_column(String(20))
    issue_date: Mapped[date] = mapped_column(Date)
    since: Mapped[datetime | None]
    cut_at: Mapped[datetime]
    created_at: Mapped[datetime]
    subject: Mapped[str] = mapped_column(Text)
    item_count: Mapped[int] = mapped_column(Integer)
    html_size: Mapped[int] = mapped_column(Integer)
    notes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    message: Mapped[bytes] = mapped_column(LargeBinary)
    placeholders: Mapped[dict[str, Any]] = mapped_column(JSON)

    items: Mapped[list[VariantItem]] = relationship(
        back_populates="variant", cascade="all, delete-orphan", order_by="VariantItem.position"
    )


class VariantItem(Base):
    """One item of a variant: the article, its section, summary and related links."""

    __tablename__ = "variant_items"

    variant_id: Mapped[int] = mapped_column(
        ForeignKey("variants.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    section: Mapped[str] = mapped_column(String(100))
    article_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id", ondelete="SET NULL"))
    summary: Mapped[str] = mapped_column(Text)
    related: Mapped[list[Any]] = mapped_column(JSON, default=list)
    also_covered: Mapped[list[Any]] = mapped_column(JSON, default=list)

    variant: Mapped[Variant] = relationship(back_populates="items")


class Edition(Base):
    """One subscriber's issue of one briefing for one local date."""

    __tablename__ = "editions"
    __table_args__ = (
        UniqueConstraint("briefing", "subscriber_id", "issue_date"),
        # The ops metrics read recent editions by send time, and each briefing's newest one.
        Index("ix_editions_scheduled_briefing", "scheduled_at", "briefing", "id"),
        Index("ix_editions_briefing_created", "briefing", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    briefing: Mapped[str] = mapped_column(String(100))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="SET NULL")
    )
    issue_date: Mapped[date] = mapped_column(Date)
    scheduled_at: Mapped[datetime]
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("variants.id"), index=True)
    cut_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    delivery: Mapped[Delivery] = relationship(back_populates="edition", uselist=False)
    variant: Mapped[Variant | None] = relationship()


class Delivery(Base):
    """The ledger row of one message: kind, state, claim, attempts and the last reply.

    A digest row points at its edition; a confirmation row at its confirmation,
    and goes with it when the sign-up is removed.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
        # The ops metrics count recent editions' deliveries by state from the index alone.
        Index("ix_deliveries_edition_status", "edition_id", "status"),
        CheckConstraint(one_of("status", DeliveryState), name="ck_deliveries_status"),
        CheckConstraint(one_of("kind", MessageKind), name="ck_deliveries_kind"),
        CheckConstraint(
            f"(kind <> '{MessageKind.DIGEST.value}' OR edition_id IS NOT NULL) AND "
            f"(kind <> '{MessageKind.CONFIRMATION.value}' OR confirmation_id IS NOT NULL) AND "
            f"(kind <> '{MessageKind.ACCOUNT.value}' OR request_id IS NOT NULL) AND "
            f"(kind <> '{MessageKind.TEST.value}' OR test_id IS NOT NULL)",
            name="ck_deliveries_target",
        ),
        # One row per confirmation, account request or test send; only the rows of that kind
        # are in each index (a digest's row, every claim and outcome, updates none of them).
        *(
            Index(
                f"uq_deliveries_{column}",
                column,
                unique=True,
                sqlite_where=text(f"{column} IS NOT NULL"),
                postgresql_where=text(f"{column} IS NOT NULL"),
            )
            for column in ("confirmation_id", "request_id", "test_id")
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(
        String(20), default=MessageKind.DIGEST.value, server_default=MessageKind.DIGEST.value
    )
    edition_id: Mapped[int | None] = mapped_column(
        ForeignKey("editions.id", ondelete="CASCADE"), unique=True
    )
    confirmation_id: Mapped[int | None] = mapped_column(
        ForeignKey("confirmations.id", ondelete="CASCADE", name="fk_deliveries_confirmation_id")
    )
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("account_requests.id", ondelete="CASCADE", name="fk_deliveries_request_id")
    )
    test_id: Mapped[int | None] = mapped_column(
        ForeignKey("test_sends.id", ondelete="CASCADE", name="fk_deliveries_test_id")
    )
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(200), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    last_code: Mapped[int | None] = mapped_column(Integer)
    last_reply: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    edition: Mapped[Edition | None] = relationship(back_populates="delivery")


class DeliveryAttempt(Base):
    """One try at handing a delivery to the transport, with the reply."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (
        CheckConstraint(one_of("outcome", ATTEMPT_OUTCOMES), name="ck_delivery_attempts_outcome"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    owner: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(20))
    stage: Mapped[str | None] = mapped_column(String(20))
    code: Mapped[int | None] = mapped_column(Integer)
    reply: Mapped[str | None] = mapped_column(Text)


class BriefingControl(Base):
    """Ops state of a briefing that every process reads: paused, run-now requests."""

    __tablename__ = "briefing_controls"

    briefing: Mapped[str] = mapped_column(String(100), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_at: Mapped[datetime | None]
    paused_by: Mapped[str | None] = mapped_column(String(200))
    run_now_requested_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class Confirmation(Base):
    """One double opt-in link sent to an address: when it expires and when it was used."""

    __tablename__ = "confirmations"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(
        String(200), comment="Name given at sign-up; applied only once the address confirms."
    )
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    lead_id: Mapped[int | None] = mapped_column(
        ForeignKey("confirmations.id", ondelete="CASCADE", name="fk_confirmations_lead_id"),
        index=True,
        comment="The confirmation whose link (one mail) confirms this one too: "
        "one sign-up of several briefings.",
    )


class SignupAttempt(Base):
    """One accepted web sign-up, hashed, counted by the per-address and per-client limits."""

    __tablename__ = "signup_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    address_hash: Mapped[str] = mapped_column(String(64), index=True)
    client_hash: Mapped[str] = mapped_column(String(64), index=True)


class WebhookToken(Base):
    """A signed token a provider webhook carried, hashed: each is accepted once."""

    __tablename__ = "webhook_tokens"
    __table_args__ = (
        UniqueConstraint("provider", "token_hash", name="uq_webhook_tokens_provider_token"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[datetime] = mapped_column(index=True)


class AccountRequest(Base):
    """One single-use self-service link mailed to a reader: download, delete, move or undo.

    ``email`` is where the link was mailed: the address on file (download,
    delete, move), the new address (adopt) or the old one (undo, which
    restores it); ``new_email`` is the address a move or adoption goes to.
    ``used_at`` is set once, by a conditional UPDATE, so a link acts only once.
    """

    __tablename__ = "account_requests"
    __table_args__ = (
        CheckConstraint(one_of("action", AccountAction), name="ck_account_requests_action"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(20))
    email: Mapped[str] = mapped_column(String(320))
    new_email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]


class TestSend(Base):
    """One edition mailed as a test: what was shown, who asked, where it goes, the message.

    The message is composed when asked for (inert links, ``[TEST]`` subject),
    so the mail is the edition the editor previewed; its ledger row (kind
    ``test``) is deleted with it.
    """

    __tablename__ = "test_sends"
    __test__ = False  # not a test class, whatever its name says to pytest

    id: Mapped[int] = mapped_column(primary_key=True)
    briefing: Mapped[str] = mapped_column(String(100))
    issue_date: Mapped[date] = mapped_column(Date)
    shown_as: Mapped[str] = mapped_column(String(400))  # "sections world, sport" or a subscriber
    recipient: Mapped[str] = mapped_column(String(320))
    requested_by: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(Text)
    message: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class LiveProcess(Base):
    """One running serve, deliver worker or web process, with its heartbeat.

    Registered at start, its ``heartbeat_at`` renewed every few seconds by the
    database's clock, and removed at a clean exit; a row whose heartbeat is
    stale (a crash, ``kill -9``) is ignored, then pruned.
    """

    __tablename__ = "live_processes"
    __table_args__ = (
        CheckConstraint(one_of("kind", ProcessKind), name="ck_live_processes_kind"),
        Index("ix_live_processes_kind_heartbeat", "kind", "heartbeat_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class DeskUser(Base):
    """One account of the desk: a name, a role and an Argon2 hash of its password."""

    __tablename__ = "desk_users"
    __table_args__ = (CheckConstraint(one_of("role", Role), name="ck_desk_users_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(10))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]


class DeskSession(Base):
    """One logged-in browser: the SHA-256 of its cookie's random id, never the id itself.

    Deleted at logout, at a password change and, by cascade, with its user.
    """

    __tablename__ = "desk_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("desk_users.id", ondelete="CASCADE", name="fk_desk_sessions_user_id"),
        index=True,
    )
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class DeskLoginFailure(Base):
    """One failed desk login, counted by keyed hashes of the account name and the client network."""

    __tablename__ = "desk_login_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    account_hash: Mapped[str] = mapped_column(String(64), index=True)
    client_hash: Mapped[str] = mapped_column(String(64), index=True)


class DeskActivity(Base):
    """One thing done on the desk or to its accounts: who, what, when.

    ``user_name`` keeps who it was after the account is removed (``user_id``
    then becomes NULL); an action of the command line has no user.
    """

    __tablename__ = "desk_activity"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("desk_users.id", ondelete="SET NULL", name="fk_desk_activity_user_id"),
        index=True,
    )
    user_name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")


class EditionApproval(Base):
    """An editor's approval of one issue (briefing x issue date): dispatch may go, overrides freeze."""

    __tablename__ = "edition_approvals"

    briefing: Mapped[str] = mapped_column(String(100), primary_key=True)
    issue_date: Mapped[date] = mapped_column(Date, primary_key=True)
    approved_by: Mapped[str] = mapped_column(String(200))
    approved_at: Mapped[datetime]


class EditionOverride(Base):
    """One editor's change to one issue: pin, drop, headline, summary, source or add; undoable."""

    __tablename__ = "edition_overrides"
    __table_args__ = (
        CheckConstraint(one_of("kind", OverrideKind), name="ck_edition_overrides_kind"),
        Index("ix_edition_overrides_issue", "briefing", "issue_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    briefing: Mapped[str] = mapped_column(String(100))
    issue_date: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(20))
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    text: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    undone_by: Mapped[str | None] = mapped_column(String(200))
    undone_at: Mapped[datetime | None]
