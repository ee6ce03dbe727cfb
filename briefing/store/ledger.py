"""Read and write the delivery ledger: claims, leases, outcomes, cancels and summaries.

The ledger is the queue's truth. A run *claims* due rows
(``pending``, or ``deferred`` whose ``next_attempt_at`` has come) by setting
``status = 'sending'`` with its ``owner`` and a ``lease_until``; it renews the
lease with a heartbeat while it lives, so a live run's claims are never taken.
Leases are set and judged by the database's clock (:mod:`briefing.store.dbclock`),
never a worker's own, so workers on machines whose clocks disagree still agree
on whose claim has lapsed. A claim whose lease has lapsed is claimable again by
any run. ``briefing send`` (one machine) also takes over at once the claims of
a process on its own host that no longer exists (an owner is named
``host:pid:random``); ``briefing deliver`` workers never judge by host or pid.
On PostgreSQL claims use ``FOR UPDATE SKIP LOCKED`` so concurrent runs never
wait on or take each other's rows.

Outcomes are written in batches, each guarded by the owner, so a run that
lost its claim never overwrites another run's state: with ``executemany`` on
SQLite (statements compiled once, run through the driver), in one statement
per batch on PostgreSQL (updates and attempt rows
together, one round trip). A
``sent`` is always written (it is the truth about a message the relay took,
even if the delivery was cancelled meanwhile); other outcomes only while the
row is still ours and ``sending``.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sqlite3
import uuid
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Integer,
    Table,
    and_,
    any_,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from briefing.config import Config
from briefing.domain.addresses import address_hash
from briefing.domain.states import (
    CLAIMABLE,
    OPEN,
    DeliveryState,
    SubscriptionState,
    SuppressionReason,
)
from briefing.errors import BriefingError
from briefing.store.db import Database
from briefing.store.dbclock import db_now
from briefing.store.schema import (
    BriefingControl,
    Delivery,
    DeliveryAttempt,
    Edition,
    Subscriber,
    Subscription,
    Suppression,
    Variant,
)
from briefing.store.suppressions import suppress

logger = logging.getLogger(__name__)

# Refused for good: what a streak of identical refusals puts back to pending.
_REFUSED = (DeliveryState.FAILED, DeliveryState.BOUNCED)
_NO_REASON = (DeliveryState.SENT, DeliveryState.SENDING)
_DELIVERIES = cast(Table, Delivery.__table__)
_ATTEMPTS = cast(Table, DeliveryAttempt.__table__)


def new_owner() -> str:
    """Name this run in claims: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """Tell whether ``owner`` was a process on this host that has gone.

    Only a same-host owner can be judged; any other is alive until its lease
    lapses. Host names must differ between hosts (and containers) that share
    a database, which they do by default.
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, owned by another user
    return False


def release_dead_claims(session: Session, now: datetime) -> int:
    """End the leases of claims whose owner process on this host has died; return how many."""
    dialect = session.get_bind().dialect.name
    owners = session.scalars(
        select(Delivery.owner)
        .where(Delivery.status == DeliveryState.SENDING, Delivery.lease_until >= db_now(dialect))
        .distinct()
    )
    dead = [owner for owner in owners if owner and owner_is_dead(owner)]
    return end_leases(session, dead)


def end_leases(session: Session, owners: Collection[str]) -> int:
    """End the leases of the claims ``owners`` hold, known dead: any run may take them now."""
    if not owners:
        return 0
    dialect = session.get_bind().dialect.name
    result = session.execute(
        update(Delivery)
        .where(Delivery.owner.in_(list(owners)), Delivery.status == DeliveryState.SENDING)
        .values(lease_until=db_now(dialect, -timedelta(milliseconds=1)))
    )
    count = int(result.rowcount)  # type: ignore[attr-defined]
    logger.warning("taking over %d claim(s) of dead run(s) %s", count, ", ".join(owners))
    return count


def _due(now: datetime, dialect: str) -> Any:
    # Retry times follow the run's clock (``send --at``); leases only the database's.
    return or_(
        Delivery.status.in_(CLAIMABLE)
        & or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
        (Delivery.status == DeliveryState.SENDING) & (Delivery.lease_until < db_now(dialect)),
    )


def _not_paused() -> Any:
    # Ops pause a briefing in the briefing_controls table; every run, from any process,
    # leaves that briefing's deliveries alone until it is resumed.
    paused = select(BriefingControl.briefing).where(BriefingControl.paused.is_(True))
    return Edition.briefing.not_in(paused)


def claim(
    session: Session,
    owner: str,
    now: datetime,
    limit: int,
    briefing: str | None = None,
    *,
    lease: timedelta = timedelta(minutes=2),
) -> list[int]:
    """Claim up to ``limit`` due deliveries for ``owner``; a lapsed lease is claimable again.

    Recipient domains take turns: the batch holds the oldest due delivery of
    every domain, then the second of each, and so on (a row number per domain),
    so a list sorted by domain with one slow or dead domain does not fill a
    batch, or a run, with that domain alone. One statement either way; on
    PostgreSQL the rows are locked with SKIP LOCKED so runs side by side take
    different rows.
    """
    dialect = session.get_bind().dialect.name
    query = _in_turn(dialect, now, limit, briefing)
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Delivery)
    ids = list(session.scalars(query))
    taken = set(take_claims(session, ids, _due(now, dialect), owner, now, lease))
    return [delivery_id for delivery_id in ids if delivery_id in taken]  # domains in turn


def claim_order(
    session: Session,
    now: datetime,
    limit: int,
    briefing: str | None = None,
    part: tuple[int, int] | None = None,
) -> list[int]:
    """Return up to ``limit`` due deliveries in the order :func:`claim` takes them; claim none.

    Ranking the due rows reads all of them (a row number per recipient
    domain), so a run reads the order for many batches at once and claims
    from it with :func:`claim_listed`, batch by batch, instead of ranking the
    whole backlog again for every batch. ``part`` ``(k, n)``: only the rows
    whose id is k modulo n, so n processes of one run never reach for the
    same rows (each would otherwise walk the same order, finding the rows
    the others took).
    """
    dialect = session.get_bind().dialect.name
    return list(session.scalars(_in_turn(dialect, now, limit, briefing, part)))


def claim_listed(
    session: Session, owner: str, ids: Sequence[int], now: datetime, lease: timedelta
) -> list[int]:
    """Claim those of ``ids`` (from :func:`claim_order`) still due and not paused, in their order.

    A row another run took since the order was read, one sent, cancelled or
    deferred meanwhile, or one of a briefing paused since, is left alone: the
    update checks each row again. On PostgreSQL rows another transaction is
    claiming right now are skipped (SKIP LOCKED), not waited for.
    """
    if not ids:
        return []
    dialect = session.get_bind().dialect.name
    due = _due(now, dialect)
    if dialect == "postgresql":
        # Driven by the list: each id looked up by its key, whatever the planner's statistics
        # say (right after a dispatch they are stale, and a plan that scans the due rows by
        # status and filters on the list reads the whole backlog for every batch).
        listed = _id_table(ids)
        locked = (
            select(Delivery.id)
            .select_from(listed)
            .join(Delivery, Delivery.id == listed.c.id)
            .join(Edition, Edition.id == Delivery.edition_id)
            .where(due, _not_paused())
            .with_for_update(of=Delivery, skip_locked=True)
            .subquery("locked")
        )
        taken = set(_take(session, Delivery.id == locked.c.id, owner, now, lease))
        return [delivery_id for delivery_id in ids if delivery_id in taken]
    paused = select(BriefingControl.briefing).where(BriefingControl.paused.is_(True))
    unpaused = ~(
        select(Edition.id)
        .where(Edition.id == Delivery.edition_id, Edition.briefing.in_(paused))
        .exists()
    )
    # Checked row by row on the listed ids: as a plain condition SQLite would rather walk the
    # index on status through the whole backlog than look up the batch's ids.
    still_due = case((and_(due, unpaused), 1), else_=0) == 1
    taken = set(take_claims(session, list(ids), still_due, owner, now, lease))
    return [delivery_id for delivery_id in ids if delivery_id in taken]


class Claimer:
    """Claim one run's batches in :func:`claim`'s order, ranking the backlog once per many.

    Holds the ids of the last :func:`claim_order` (``lookahead`` batches) and
    claims each batch from them with :func:`claim_listed`; when they are used
    up, or none of what is left can be claimed, ranks the due rows again.
    Rows that fell due after the ranking wait for the next one.
    """

    def __init__(
        self,
        owner: str,
        batch_size: int,
        *,
        lookahead: int,
        briefing: str | None,
        lease: timedelta,
        part: tuple[int, int] | None = None,
    ) -> None:
        self.owner = owner
        self.batch_size = batch_size
        self.lookahead = max(1, lookahead)
        self.briefing = briefing
        self.lease = lease
        self.part = part
        self.candidates: deque[int] = deque()
        self.rankings = 0  # how many times the backlog was ranked

    def claim(self, session: Session, now: datetime) -> list[int]:
        """Claim the next batch, in domain turns; an empty list when nothing is due."""
        size = self.batch_size
        ranked = False
        while True:
            if not self.candidates:
                if ranked:  # ranked just now, and none of it could be claimed
                    return []
                self.candidates.extend(
                    claim_order(session, now, size * self.lookahead, self.briefing, self.part)
                )
                self.rankings += 1
                ranked = True
                if not self.candidates:
                    return []
            listed = [self.candidates.popleft() for _ in range(min(size, len(self.candidates)))]
            ids = claim_listed(session, self.owner, listed, now, self.lease)
            if ids:
                return ids


def _in_turn(
    dialect: str,
    now: datetime,
    limit: int,
    briefing: str | None,
    part: tuple[int, int] | None = None,
) -> Any:
    # Due rows ordered by their turn within their recipient domain, then by id.
    turn = func.row_number().over(partition_by=_recipient_domain(dialect), order_by=Delivery.id)
    ranked = (
        select(Delivery.id.label("id"), turn.label("turn"))
        .join(Edition, Edition.id == Delivery.edition_id)
        .outerjoin(Subscriber, Subscriber.id == Edition.subscriber_id)
        .where(_due(now, dialect), _not_paused())
    )
    if briefing:
        ranked = ranked.where(Edition.briefing == briefing)
    if part is not None:
        ranked = ranked.where(Delivery.id % part[1] == part[0])
    turns = ranked.subquery("turns")
    return (
        select(Delivery.id)
        .join(turns, turns.c.id == Delivery.id)
        .where(_due(now, dialect))
        .order_by(turns.c.turn, Delivery.id)
        .limit(limit)
    )


def _recipient_domain(dialect: str) -> Any:
    # What follows the "@", lower-cased: the recipient's domain ("" when there is none).
    email = func.lower(func.coalesce(Subscriber.email, ""))
    at = func.strpos(email, "@") if dialect == "postgresql" else func.instr(email, "@")
    return func.substr(email, at + 1)


def take_claims(
    session: Session, ids: list[int], due: Any, owner: str, now: datetime, lease: timedelta
) -> list[int]:
    """Mark the rows of ``ids`` still ``due`` as ``owner``'s under a lease; return those it got.

    The update re-checks ``due``, so a row another process claimed between the
    select and here is left alone (SQLite has no SKIP LOCKED). The lease ends
    ``lease`` after the database's time now, whatever this machine's clock says.
    """
    if not ids:
        return []
    dialect = session.get_bind().dialect.name
    return _take(session, and_(_in_list(Delivery.id, ids, dialect), due), owner, now, lease)


def _take(session: Session, rows: Any, owner: str, now: datetime, lease: timedelta) -> list[int]:
    # The rows the update took, from the update itself (RETURNING): no second query, and no
    # ORM bookkeeping of a session that holds none of these rows.
    dialect = session.get_bind().dialect.name
    taken = session.scalars(
        update(Delivery)
        .where(rows)
        .values(
            status=DeliveryState.SENDING,
            owner=owner,
            lease_until=db_now(dialect, lease),
            heartbeat_at=db_now(dialect),
            updated_at=now,
        )
        .returning(Delivery.id),
        execution_options={"synchronize_session": False},
    )
    return sorted(taken)


def _in_list(column: Any, values: Sequence[Any], dialect: str) -> Any:
    """Return ``column IN (values)``, the list bound as one parameter, not checked item by item.

    On PostgreSQL ``column = ANY(array)``: one parameter, where an expanded list
    is one per item, each parsed and planned.
    """
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type), unique=True))
    return column.in_(bindparam("values", list(values), expanding=True, unique=True))


def _id_table(ids: Sequence[int]) -> Any:
    """PostgreSQL: ``ids`` as a table of one column ``id`` (``unnest`` of one array) to join from."""
    array = bindparam(None, list(ids), type_=ARRAY(Integer), unique=True)
    return func.unnest(array).table_valued("id").render_derived(name="listed")


def count_due(session: Session, now: datetime, briefing: str | None = None) -> int:
    """Count the deliveries a run starting now would take on (for the progress bar)."""
    query = (
        select(func.count())
        .select_from(Delivery)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(_due(now, session.get_bind().dialect.name), _not_paused())
    )
    if briefing:
        query = query.where(Edition.briefing == briefing)
    return int(session.scalar(query) or 0)


def due_ids(
    session: Session, now: datetime, after: int, limit: int, briefing: str | None = None
) -> list[int]:
    """List due deliveries after id ``after`` without claiming them (the redirect switch)."""
    query = (
        select(Delivery.id)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(Delivery.status.in_(CLAIMABLE), Delivery.id > after, _not_paused())
        .where(or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now))
    )
    if briefing:
        query = query.where(Edition.briefing == briefing)
    return list(session.scalars(query.order_by(Delivery.id).limit(limit)))


@dataclass(frozen=True)
class Outgoing:
    """One claimed delivery with what is needed to personalise and send it."""

    delivery_id: int
    edition_id: int
    subscription_id: int
    briefing: str
    recipient: str
    name: str | None
    message_id: str
    variant_id: int
    deadline: datetime


@dataclass(frozen=True)
class Settlement:
    """A delivery settled without a send: cancelled, expired or suppressed, with the reason."""

    delivery_id: int
    status: DeliveryState
    reason: str
    recipient: str | None = None


def load(
    session: Session, config: Config, ids: Sequence[int], now: datetime
) -> tuple[list[Outgoing], list[Settlement]]:
    """Load claimed deliveries; sort out those that must not be sent, and why.

    Checked just before sending, for the whole batch in two queries: the
    subscriber still exists, the subscription is active, the edition has
    content, the deadline has not passed, and the address is not suppressed.
    """
    dialect = session.get_bind().dialect.name
    query = select(
        Delivery.id,
        Delivery.message_id,
        Edition.id,
        Edition.briefing,
        Edition.scheduled_at,
        Edition.variant_id,
        Subscription.id,
        Subscription.status,
        Subscriber.email,
        Subscriber.name,
    )
    if dialect == "postgresql":
        # From the list, by key: PostgreSQL would otherwise hash-join the batch against a
        # scan of every edition, once per batch.
        listed = _id_table(ids)
        query = query.select_from(listed).join(Delivery, Delivery.id == listed.c.id)
    else:
        query = query.where(_in_list(Delivery.id, ids, dialect))
    rows = session.execute(
        query.join(Edition, Edition.id == Delivery.edition_id)
        .outerjoin(Subscription, Subscription.id == Edition.subscription_id)
        .outerjoin(Subscriber, Subscriber.id == Edition.subscriber_id)
        .order_by(Delivery.id)
    ).all()
    # One hash per recipient: address_hash validates the address, the costliest step here.
    hash_of = {row[8]: address_hash(row[8]) for row in rows if row[8]}
    hashes = set(hash_of.values())
    suppressed: dict[tuple[str, str], str] = {}
    if hashes:
        for email_hash, briefing, reason in session.execute(
            select(Suppression.email_hash, Suppression.briefing, Suppression.reason).where(
                _in_list(Suppression.email_hash, sorted(hashes), dialect)
            )
        ):
            suppressed[(email_hash, briefing)] = reason
    outgoing: list[Outgoing] = []
    settled: list[Settlement] = []
    for (
        delivery_id,
        message_id,
        edition_id,
        briefing,
        scheduled_at,
        variant_id,
        subscription_id,
        subscription_status,
        email,
        name,
    ) in rows:
        settings = config.briefings.get(briefing)
        deadline = scheduled_at + (settings.deadline if settings else timedelta(0))
        if email is None or subscription_id is None:
            settled.append(
                Settlement(
                    delivery_id, DeliveryState.CANCELLED, "subscriber was removed before sending"
                )
            )
        elif subscription_status != SubscriptionState.ACTIVE:
            settled.append(
                Settlement(
                    delivery_id,
                    DeliveryState.CANCELLED,
                    f"subscription is {subscription_status}",
                    email,
                )
            )
        elif variant_id is None:
            settled.append(
                Settlement(delivery_id, DeliveryState.CANCELLED, "edition has no content", email)
            )
        elif now > deadline:
            settled.append(
                Settlement(
                    delivery_id,
                    DeliveryState.EXPIRED,
                    "not sent before the briefing's deadline",
                    email,
                )
            )
        elif hit := (
            suppressed.get((hash_of[email], briefing)) or suppressed.get((hash_of[email], "*"))
        ):
            settled.append(
                Settlement(
                    delivery_id, DeliveryState.SUPPRESSED, f"address suppressed ({hit})", email
                )
            )
        else:
            outgoing.append(
                Outgoing(
                    delivery_id,
                    edition_id,
                    subscription_id,
                    briefing,
                    email,
                    name,
                    message_id,
                    variant_id,
                    deadline,
                )
            )
    return outgoing, settled


def variant_message(session: Session, variant_id: int) -> tuple[bytes, dict[str, str]]:
    """Return a variant's stored message and the placeholders its personal links carry."""
    variant = session.get(Variant, variant_id)
    if variant is None:
        raise BriefingError(f"variant {variant_id} is missing from the database")
    return variant.message, {str(k): str(v) for k, v in variant.placeholders.items()}


def settle(session: Session, owner: str, settlements: Iterable[Settlement], now: datetime) -> None:
    """Write settlements that involved no send (no attempt row)."""
    params = [
        {"b_id": s.delivery_id, "b_status": s.status, "b_reason": s.reason} for s in settlements
    ]
    if not params:
        return
    session.connection().execute(
        update(_DELIVERIES)
        .where(_DELIVERIES.c.id == bindparam("b_id"), _DELIVERIES.c.owner == owner)
        .values(
            status=bindparam("b_status"),
            reason=bindparam("b_reason"),
            owner=None,
            lease_until=None,
            next_attempt_at=None,
            updated_at=now,
        ),
        params,
    )


@dataclass(frozen=True)
class AttemptOutcome:
    """One send attempt and the state it leaves the delivery in."""

    delivery_id: int
    status: DeliveryState  # sent, failed, bounced, deferred, expired; sending: retried in this run
    attempt: DeliveryState  # what the transport said: sent, deferred, failed or bounced
    started: datetime
    finished: datetime
    code: int | None = None
    reply: str | None = None
    stage: str | None = None
    next_attempt_at: datetime | None = None


_C = _DELIVERIES.c
# Built once: a statement rebuilt per batch costs more than the batch's SQL.
_RECORD = (
    update(_DELIVERIES)
    .where(_C.id == bindparam("b_id"), _C.owner == bindparam("b_owner"))
    .values(
        status=bindparam("b_status", type_=_C.status.type),
        reason=bindparam("b_reason", type_=_C.reason.type),
        attempts=_C.attempts + 1,
        last_code=bindparam("b_code", type_=_C.last_code.type),
        last_reply=bindparam("b_reply", type_=_C.last_reply.type),
        sent_at=bindparam("b_sent_at", type_=_C.sent_at.type),
        next_attempt_at=bindparam("b_next", type_=_C.next_attempt_at.type),
        owner=bindparam("b_new_owner", type_=_C.owner.type),
        # A row retried in this run keeps its lease (renewed by heartbeats); others lose it.
        lease_until=case((bindparam("b_keep", type_=Boolean()), _C.lease_until), else_=None),
        updated_at=bindparam("b_now", type_=_C.updated_at.type),
    )
)
# A message the relay took is recorded sent even if cancelled meanwhile (the truth);
# any other outcome only while the row is still this run's claim.
_RECORD_SENT = _RECORD
_RECORD_OTHER = _RECORD.where(_C.status == DeliveryState.SENDING)
_A = _ATTEMPTS.c
_ATTEMPT_COLUMNS = (
    "delivery_id",
    "owner",
    "started_at",
    "finished_at",
    "outcome",
    "stage",
    "code",
    "reply",
)
_INSERT_ATTEMPT = _ATTEMPTS.insert().values(
    {name: bindparam(name, type_=_A[name].type) for name in _ATTEMPT_COLUMNS}
)


@dataclass(frozen=True)
class _DriverStatement:
    """A Core statement compiled once for SQLite, run with plain tuples through the driver.

    ``executemany`` of a Core statement runs every row's parameters through
    SQLAlchemy (one dict, one type processor per value): for the small groups
    a delivery commits, that cost more than SQLite's own work. The SQL is
    SQLAlchemy's, compiled from the statements above; the values are given in
    the form its types would have bound them (times by :func:`_sqlite_time`).
    """

    sql: str
    order: tuple[str, ...]  # the parameters' names, in the statement's order
    fixed: dict[str, Any]  # values the statement itself carries (its literals)

    @classmethod
    def compile(cls, statement: Any) -> _DriverStatement:
        compiled = statement.compile(dialect=sqlite_dialect.dialect())
        if compiled.insert_prefetch or compiled.update_prefetch:  # Python-side defaults
            raise RuntimeError(f"{compiled.string!r} needs defaults the driver would not apply")
        order = tuple(compiled.positiontup or ())
        fixed: dict[str, Any] = {}
        for name, value in compiled.params.items():
            if value is not None:
                fixed[name] = value.value if isinstance(value, DeliveryState) else value
        return cls(compiled.string, order, fixed)

    def rows(self, params: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Order each row's parameters (``fixed`` among them) as the statement takes them."""
        if len(self.order) == 1:
            return [(row[self.order[0]],) for row in params]
        return list(map(itemgetter(*self.order), params))


_SQLITE_SENT = _DriverStatement.compile(_RECORD_SENT)
_SQLITE_OTHER = _DriverStatement.compile(_RECORD_OTHER)
_SQLITE_ATTEMPT = _DriverStatement.compile(_INSERT_ATTEMPT)


def _sqlite_time(value: datetime | None) -> str | None:
    """Bind an aware time as :class:`~briefing.store.schema.UTCDateTime` does on SQLite.

    UTC, without zone, in SQLite's DATETIME storage format (microseconds always
    written): the ledger's times are compared as text in SQL, so the form must
    be exactly the one every other statement writes.
    """
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} cannot be stored; attach a timezone")
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d} "
        f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"
    )


def write_outcomes(
    session: Session,
    owner: str,
    outcomes: Sequence[AttemptOutcome],
    now: datetime,
    lease: timedelta,
    *,
    flush: bool = True,
) -> None:
    """Record a batch of attempts and the deliveries' new states in this transaction.

    ``flush=False`` on PostgreSQL commits this transaction without waiting for
    its WAL to reach the disk (``synchronous_commit`` off, for this transaction
    only): what SQLite's WAL mode with ``synchronous=NORMAL`` already does.
    """
    if session.get_bind().dialect.name == "postgresql":
        for start in range(0, len(outcomes), _OUTCOMES_AT_ONCE):
            chunk = outcomes[start : start + _OUTCOMES_AT_ONCE]
            _write_outcomes_at_once(session, owner, chunk, now, flush=flush)
        return
    del lease  # rows kept for a retry in this run keep the lease they hold
    connection = session.connection()
    for sql, rows in _sqlite_outcome_rows(owner, outcomes, now):
        connection.exec_driver_sql(sql, rows)


def _sqlite_outcome_rows(
    owner: str, outcomes: Sequence[AttemptOutcome], now: datetime
) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Return SQLite's statements for a batch of outcomes, each with its rows of parameters."""
    sent: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    stamp = _sqlite_time(now)
    for outcome in outcomes:
        keep = outcome.status == DeliveryState.SENDING
        is_sent = outcome.status == DeliveryState.SENT
        finished = _sqlite_time(outcome.finished)
        row = {
            **(_SQLITE_SENT if is_sent else _SQLITE_OTHER).fixed,
            "b_id": outcome.delivery_id,
            "b_owner": owner,
            "b_status": outcome.status.value,
            "b_reason": None if outcome.status in _NO_REASON else outcome.reply,
            "b_code": outcome.code,
            "b_reply": outcome.reply,
            "b_sent_at": finished if is_sent else None,
            "b_next": _sqlite_time(outcome.next_attempt_at),
            "b_new_owner": owner if keep else None,
            "b_keep": keep,
            "b_now": stamp,
        }
        (sent if is_sent else others).append(row)
        attempts.append(
            {
                "delivery_id": outcome.delivery_id,
                "owner": owner,
                "started_at": _sqlite_time(outcome.started),
                "finished_at": finished,
                "outcome": outcome.attempt.value,
                "stage": outcome.stage,
                "code": outcome.code,
                "reply": outcome.reply,
            }
        )
    return [
        (statement.sql, statement.rows(params))
        for statement, params in (
            (_SQLITE_SENT, sent),
            (_SQLITE_OTHER, others),
            (_SQLITE_ATTEMPT, attempts),
        )
        if params
    ]


class SqliteOutcomes:
    """Commit a run's groups of outcomes on SQLite through one driver connection.

    A group commit through an ORM session (a session, a pooled connection
    checked out, SQLAlchemy's BEGIN and COMMIT around the statements) costs
    more than the statements themselves. The coordinating thread of a run
    holds one connection of the engine's pool for the whole run instead, and
    writes each group in its own ``BEGIN IMMEDIATE`` ... ``COMMIT``: the same
    statements and the same guards as :func:`write_outcomes`, the same
    atomicity. The connection was set up by the engine's ``connect`` hook
    (WAL, busy timeout, foreign keys). Use :meth:`open`; :meth:`close` hands
    the connection back.
    """

    def __init__(self, database: Database, owner: str) -> None:
        self.database = database
        self.owner = owner
        self._proxy = database.engine.raw_connection()
        self._driver = cast(sqlite3.Connection, self._proxy.driver_connection)

    @classmethod
    def open(cls, database: Database, owner: str) -> SqliteOutcomes | None:
        """Return a writer for ``owner``'s outcomes, or None when the database is not SQLite."""
        return cls(database, owner) if database.is_sqlite else None

    def write(self, outcomes: Sequence[AttemptOutcome], now: datetime) -> None:
        """Record a group of attempts and the deliveries' new states in one transaction."""
        driver = self._driver
        try:
            driver.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "database is locked" in str(exc):
                raise self.database.locked_error() from exc
            raise
        try:
            for sql, rows in _sqlite_outcome_rows(self.owner, outcomes, now):
                driver.executemany(sql, rows)
            driver.commit()
        except BaseException:
            driver.rollback()
            raise

    def close(self) -> None:
        """Hand the connection back to the engine's pool."""
        self._proxy.close()


class PostgresOutcomes:
    """Commit a run's groups of outcomes on PostgreSQL through one driver connection.

    What :class:`SqliteOutcomes` does for SQLite: the coordinating thread of a
    run holds one connection for the whole run, and each group is the one
    statement of :func:`_write_outcomes_at_once` (same guards, same
    ``synchronous_commit`` switch), its text built once per group size and
    its values bound by the driver (which prepares a text it sees again).
    Through a session, every group built and compiled the statement anew and
    checked a connection out. The connection is in autocommit mode while the
    run holds it: a group of up to ``_OUTCOMES_AT_ONCE`` outcomes is one
    statement, so its own transaction, one round trip to the server where
    ``BEGIN``, the statement and ``COMMIT`` were three.
    """

    def __init__(self, database: Database, owner: str, *, flush: bool) -> None:
        self.owner = owner
        self.flush = flush
        self._proxy = database.engine.raw_connection()
        driver: Any = self._proxy.driver_connection
        driver.autocommit = True
        self._driver = driver

    def write(self, outcomes: Sequence[AttemptOutcome], now: datetime) -> None:
        """Record a group of attempts and the deliveries' new states in one transaction."""
        driver = self._driver
        if len(outcomes) <= _OUTCOMES_AT_ONCE:
            driver.execute(
                _postgres_group_sql(len(outcomes), self.flush),
                _postgres_group_values(self.owner, outcomes, now),
            )
            return
        with driver.transaction(), driver.cursor() as cursor:
            for start in range(0, len(outcomes), _OUTCOMES_AT_ONCE):
                chunk = outcomes[start : start + _OUTCOMES_AT_ONCE]
                cursor.execute(
                    _postgres_group_sql(len(chunk), self.flush),
                    _postgres_group_values(self.owner, chunk, now),
                )

    def close(self) -> None:
        """Hand the connection back to the engine's pool, out of autocommit."""
        self._driver.autocommit = False
        self._proxy.close()


OutcomeLog = SqliteOutcomes | PostgresOutcomes


def outcome_log(database: Database, owner: str, *, flush: bool) -> OutcomeLog | None:
    """Return the writer of a run's groups of outcomes through one connection, if the database has one."""
    if database.is_sqlite:
        return SqliteOutcomes(database, owner)
    if database.engine.dialect.name == "postgresql":
        return PostgresOutcomes(database, owner, flush=flush)
    return None


# The columns of one outcome in the VALUES list of _write_outcomes_at_once, with their types.
_OUTCOME_COLUMNS = (
    ("id", "INTEGER"),
    ("status", "VARCHAR"),
    ("reason", "TEXT"),
    ("code", "INTEGER"),
    ("reply", "TEXT"),
    ("sent_at", "TIMESTAMP"),
    ("next_at", "TIMESTAMP"),
    ("new_owner", "VARCHAR"),
    ("keep", "BOOLEAN"),
    ("started", "TIMESTAMP"),
    ("finished", "TIMESTAMP"),
    ("outcome", "VARCHAR"),
    ("stage", "VARCHAR"),
)
_TIMES = {"sent_at", "next_at", "started", "finished"}
# Outcomes per statement: 13 parameters each, under PostgreSQL's 65,535 a statement.
_OUTCOMES_AT_ONCE = 1_000


def _write_outcomes_at_once(
    session: Session,
    owner: str,
    outcomes: Sequence[AttemptOutcome],
    now: datetime,
    *,
    flush: bool,
) -> None:
    """PostgreSQL: the deliveries' updates and the attempt rows of a batch in one statement.

    The same guards as the statements of other databases (a ``sent`` by owner
    alone, any other outcome while the row is still ``sending``), in one round
    trip instead of one per step: on a loaded machine each round trip waits
    for the server process to be scheduled. ``flush=False`` turns
    ``synchronous_commit`` off for this transaction within the same statement.
    """
    session.connection().exec_driver_sql(
        _postgres_group_sql(len(outcomes), flush), _postgres_group_values(owner, outcomes, now)
    )


def _postgres_group_values(
    owner: str, outcomes: Sequence[AttemptOutcome], now: datetime
) -> dict[str, Any]:
    """Return the parameters of :func:`_postgres_group_sql` for ``outcomes``, by name.

    Times as :class:`~briefing.store.schema.UTCDateTime` binds them: naive UTC.
    """
    values: dict[str, Any] = {
        "owner": owner,
        "now": _naive_utc(now),
        "st_sent": DeliveryState.SENT.value,
        "st_sending": DeliveryState.SENDING.value,
    }
    for n, outcome in enumerate(outcomes):
        keep = outcome.status == DeliveryState.SENDING
        values.update(
            {
                f"id_{n}": outcome.delivery_id,
                f"status_{n}": outcome.status.value,
                f"reason_{n}": None if outcome.status in _NO_REASON else outcome.reply,
                f"code_{n}": outcome.code,
                f"reply_{n}": outcome.reply,
                f"sent_at_{n}": _naive_utc(outcome.finished)
                if outcome.status == DeliveryState.SENT
                else None,
                f"next_at_{n}": _naive_utc(outcome.next_attempt_at),
                f"new_owner_{n}": owner if keep else None,
                f"keep_{n}": keep,
                f"started_{n}": _naive_utc(outcome.started),
                f"finished_{n}": _naive_utc(outcome.finished),
                f"outcome_{n}": outcome.attempt.value,
                f"stage_{n}": outcome.stage,
            }
        )
    return values


def _naive_utc(value: datetime | None) -> datetime | None:
    """Bind an aware time as :class:`~briefing.store.schema.UTCDateTime` does: naive UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} cannot be stored; attach a timezone")
    return value.astimezone(UTC).replace(tzinfo=None)


@lru_cache(maxsize=64)
def _postgres_group_sql(count: int, flush: bool) -> str:
    """Return the one statement recording ``count`` outcomes, with ``%(name)s`` parameters."""
    rows = [
        "("
        + ", ".join(f"CAST(%({column}_{n})s AS {kind})" for column, kind in _OUTCOME_COLUMNS)
        + ")"
        for n in range(count)
    ]
    names = ", ".join(column for column, _ in _OUTCOME_COLUMNS)
    commit = "" if flush else ", (SELECT set_config('synchronous_commit', 'off', true)) AS c"
    return (
        f"WITH v ({names}) AS (VALUES {', '.join(rows)}), "
        "u AS (UPDATE deliveries AS d SET status = v.status, reason = v.reason, "
        "attempts = d.attempts + 1, last_code = v.code, last_reply = v.reply, "
        "sent_at = v.sent_at, next_attempt_at = v.next_at, owner = v.new_owner, "
        "lease_until = CASE WHEN v.keep THEN d.lease_until END, updated_at = %(now)s "
        "FROM v WHERE d.id = v.id AND d.owner = %(owner)s "
        "AND (v.status = %(st_sent)s OR d.status = %(st_sending)s)) "
        "INSERT INTO delivery_attempts "
        "(delivery_id, owner, started_at, finished_at, outcome, stage, code, reply) "
        "SELECT v.id, %(owner)s, v.started, v.finished, v.outcome, v.stage, v.code, v.reply "
        f"FROM v{commit}"
    )


def bounce_source(delivery_id: int) -> str:
    """Name the suppression a hard bounce of one delivery created."""
    return f"bounce of delivery {delivery_id}"


def suppress_bounce(
    session: Session, delivery_id: int, address: str, reply: str | None, now: datetime
) -> None:
    """Put a hard-bounced address on the suppression list for every briefing."""
    suppress(
        session,
        address,
        reason=SuppressionReason.BOUNCED,
        source=bounce_source(delivery_id),
        now=now,
    )
    logger.info("suppressed %s after a hard bounce: %s", address, reply)


def reopen(session: Session, ids: Sequence[int], now: datetime) -> None:
    """Put refused deliveries back to pending and lift the suppressions their bounces made.

    Used when many recipients in a row were refused alike: that is a problem of
    the session or the message, not of each recipient.
    """
    if not ids:
        return
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.status.in_(_REFUSED))
        .values(status=DeliveryState.PENDING, reason=None, next_attempt_at=None, updated_at=now)
    )
    session.execute(
        delete(Suppression).where(Suppression.source.in_([bounce_source(i) for i in ids]))
    )


def release(session: Session, owner: str, ids: Sequence[int], now: datetime) -> None:
    """Hand unsent claims back: pending if never tried, else deferred and due at once."""
    if not ids:
        return
    session.execute(
        update(Delivery)
        .where(
            Delivery.id.in_(ids), Delivery.owner == owner, Delivery.status == DeliveryState.SENDING
        )
        .values(
            status=case(
                (Delivery.attempts == 0, DeliveryState.PENDING.value),
                else_=DeliveryState.DEFERRED.value,
            ),
            owner=None,
            lease_until=None,
            next_attempt_at=None,
            updated_at=now,
        )
    )


def heartbeat(session: Session, owner: str, now: datetime, lease: timedelta) -> set[int]:
    """Renew this run's leases; return the ids of its claims someone cancelled meanwhile.

    The new lease ends ``lease`` after the database's time now. ``now`` (the
    run's clock) is not used for leases.
    """
    dialect = session.get_bind().dialect.name
    session.execute(
        update(Delivery)
        .where(Delivery.owner == owner, Delivery.status == DeliveryState.SENDING)
        .values(lease_until=db_now(dialect, lease), heartbeat_at=db_now(dialect))
    )
    return set(
        session.scalars(
            select(Delivery.id).where(
                Delivery.owner == owner, Delivery.status == DeliveryState.CANCELLED
            )
        )
    )


@dataclass(frozen=True)
class Target:
    """What ``cancel`` and ``deliveries --edition`` name: one edition, or a briefing's date."""

    edition_id: int | None = None
    briefing: str | None = None
    issue_date: date | None = None

    def where(self) -> Any:
        """Return the condition on editions this target selects (no date: every issue)."""
        if self.edition_id is not None:
            return Edition.id == self.edition_id
        if self.issue_date is None:
            return Edition.briefing == self.briefing
        return (Edition.briefing == self.briefing) & (Edition.issue_date == self.issue_date)

    def __str__(self) -> str:
        if self.edition_id is not None:
            return f"edition {self.edition_id}"
        if self.issue_date is None:
            return f"{self.briefing} (every issue)"
        return f"{self.briefing} {self.issue_date}"


_TARGET = re.compile(r"^(?P<briefing>[a-z0-9][a-z0-9_-]*)[:/ ](?P<date>\d{4}-\d{2}-\d{2})$")


def parse_target(text: str, config: Config) -> Target:
    """Read ``EDITION-ID`` or ``BRIEFING:YYYY-MM-DD``."""
    text = text.strip()
    if text.isdigit():
        return Target(edition_id=int(text))
    match = _TARGET.match(text)
    if match:
        config.briefing(match["briefing"])
        try:
            return Target(briefing=match["briefing"], issue_date=date.fromisoformat(match["date"]))
        except ValueError:
            pass
    raise BriefingError(
        f"{text!r} names no edition",
        hint="Give an edition id (see `briefing deliveries`) or BRIEFING:YYYY-MM-DD, "
        "e.g. daily:2026-11-26.",
    )


@dataclass(frozen=True)
class Cancelled:
    """What ``cancel`` stopped: rows never claimed, and rows a run had claimed (in flight)."""

    cancelled: int
    in_flight: int


def cancel(session: Session, target: Target, now: datetime, reason: str) -> Cancelled:
    """Cancel every unsent delivery of ``target``; count what was stopped and what was in flight.

    Rows waiting to be claimed are cancelled for certain. Claims held by a live
    run (``sending``) are marked cancelled too and keep their owner, so that run
    sees the cancel at its next heartbeat and drops them; but a message already
    on the wire may still go out and be recorded sent, so they are counted apart.
    """
    editions = select(Edition.id).where(target.where())
    counts = []
    for states in (CLAIMABLE, (DeliveryState.SENDING,)):
        result = session.execute(
            update(Delivery)
            .where(Delivery.edition_id.in_(editions), Delivery.status.in_(states))
            .values(
                status=DeliveryState.CANCELLED, reason=reason, next_attempt_at=None, updated_at=now
            )
        )
        counts.append(int(result.rowcount))  # type: ignore[attr-defined]
    return Cancelled(cancelled=counts[0], in_flight=counts[1])


def open_issues(session: Session, briefing: str, limit: int = 31) -> list[date]:
    """Return the issue dates of ``briefing`` with deliveries still to send, oldest first."""
    # From the few open deliveries (by ix_deliveries_status_next) to their editions, not
    # from every edition of the briefing to its delivery.
    still_open = select(Delivery.edition_id).where(Delivery.status.in_(OPEN))
    return list(
        session.scalars(
            select(Edition.issue_date)
            .where(Edition.id.in_(still_open), Edition.briefing == briefing)
            .group_by(Edition.issue_date)
            .order_by(Edition.issue_date)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class SummaryRow:
    """Counts of one briefing's deliveries on one issue date, by status."""

    briefing: str
    issue_date: date
    counts: dict[DeliveryState, int]

    @property
    def total(self) -> int:
        """Count every delivery of the row."""
        return sum(self.counts.values())


def summary(session: Session, target: Target | None = None) -> list[SummaryRow]:
    """Count deliveries by briefing, issue date and status."""
    query = (
        select(Edition.briefing, Edition.issue_date, Delivery.status, func.count())
        .join(Delivery, Delivery.edition_id == Edition.id)
        .group_by(Edition.briefing, Edition.issue_date, Delivery.status)
        .order_by(Edition.issue_date.desc(), Edition.briefing)
    )
    if target is not None:
        query = query.where(target.where())
    rows: dict[tuple[str, date], dict[DeliveryState, int]] = {}
    for briefing, issue_date, status, count in session.execute(query):
        rows.setdefault((briefing, issue_date), {})[DeliveryState(status)] = count
    return [SummaryRow(b, d, counts) for (b, d), counts in rows.items()]


# An edition is sent at a local time of its issue date, in a zone from UTC-12 to UTC+14
# (run-now sends today's issue now), so it is scheduled between 14 hours before and 36
# hours after its issue date began in UTC: a range on the indexed scheduled_at, an hour
# wider on each side, bounds what is read for a span of issue dates.
SCHEDULED_BEFORE = timedelta(hours=15)
SCHEDULED_AFTER = timedelta(hours=37)


def _scheduled_range(first: date, last: date) -> tuple[datetime, datetime]:
    low = datetime.combine(first, time.min, tzinfo=UTC) - SCHEDULED_BEFORE
    high = datetime.combine(last, time.min, tzinfo=UTC) + SCHEDULED_AFTER
    return low, high


def summary_between(session: Session, first: date, last: date) -> list[SummaryRow]:
    """Count deliveries of the issues dated ``first`` to ``last`` by briefing, date and status.

    One statement reading the editions scheduled around those dates (by
    ``ix_editions_scheduled_briefing``) and their deliveries' states (by
    ``ix_deliveries_edition_status``), however long the ledger; newest first.
    """
    low, high = _scheduled_range(first, last)
    query = (
        select(Edition.briefing, Edition.issue_date, Delivery.status, func.count())
        .join(Delivery, Delivery.edition_id == Edition.id)
        .where(
            Edition.scheduled_at >= low,
            Edition.scheduled_at < high,
            Edition.issue_date >= first,
            Edition.issue_date <= last,
        )
        .group_by(Delivery.status, Edition.briefing, Edition.issue_date)
    )
    rows: dict[tuple[str, date], dict[DeliveryState, int]] = {}
    for briefing, issue_date, status, count in session.execute(query):
        rows.setdefault((briefing, issue_date), {})[DeliveryState(status)] = count
    ordered = sorted(rows.items(), key=lambda item: (-item[0][1].toordinal(), item[0][0]))
    return [SummaryRow(b, d, counts) for (b, d), counts in ordered]


def issued_before(session: Session, first: date) -> bool:
    """Tell whether any edition has an issue date before ``first``."""
    # Read from the oldest send time up: the first row usually answers.
    _, high = _scheduled_range(first - timedelta(days=1), first - timedelta(days=1))
    older = session.scalar(
        select(Edition.id)
        .where(Edition.scheduled_at < high, Edition.issue_date < first)
        .order_by(Edition.scheduled_at)
        .limit(1)
    )
    return older is not None


@dataclass(frozen=True)
class FailedRow:
    """One delivery that failed for good, with the relay's reply."""

    delivery_id: int
    edition_id: int
    briefing: str
    issue_date: date
    recipient: str | None
    status: DeliveryState
    attempts: int
    code: int | None
    reply: str | None


def failed(
    session: Session, target: Target | None = None, *, limit: int | None = None, offset: int = 0
) -> list[FailedRow]:
    """List failed and bounced deliveries with the last reply (a page of them with ``limit``)."""
    query = (
        select(
            Delivery.id,
            Edition.id,
            Edition.briefing,
            Edition.issue_date,
            Subscriber.email,
            Delivery.status,
            Delivery.attempts,
            Delivery.last_code,
            func.coalesce(Delivery.last_reply, Delivery.reason),
        )
        .join(Edition, Edition.id == Delivery.edition_id)
        .outerjoin(Subscriber, Subscriber.id == Edition.subscriber_id)
        .where(Delivery.status.in_(_REFUSED))
        .order_by(Edition.issue_date.desc(), Delivery.id)
    )
    if target is not None:
        query = query.where(target.where())
    if limit is not None:
        query = query.limit(limit).offset(offset)
    return [
        FailedRow(row_id, edition, briefing, day, email, DeliveryState(status), tries, code, reply)
        for row_id, edition, briefing, day, email, status, tries, code, reply in session.execute(
            query
        )
    ]
