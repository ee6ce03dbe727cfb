"""Build delivery test setups: a project sending over SMTP to a test server, with N subscribers."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from briefing.audience.imports import import_subscribers
from briefing.config import Config
from briefing.domain.tokens import Signer
from briefing.editions.dispatch import dispatch
from briefing.ingest import ingest
from briefing.store import Database, open_database
from briefing.store.schema import Delivery, DeliveryAttempt, Edition, Subscriber
from tests.support.factories import KEY, NOW, make_project
from tests.support.smtp_server import Server

AT = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


def reader(n: int) -> str:
    """Return the address of test subscriber ``n``."""
    return f"reader{n}@example.com"


def smtp_settings(server: Server, **smtp: Any) -> dict[str, Any]:
    """Return an ``smtp:`` section pointing at ``server`` with short test timeouts."""
    values: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "security": "none",
        "pool_size": 3,
        "connect_timeout": 5,
        "command_timeout": 5,
        "data_timeout": 5,
        "connect_attempts": 2,
        "reconnect_backoff": 0.01,
    }
    values.update(smtp)
    return values


def delivery_settings(
    server: Server, smtp: dict[str, Any] | None = None, **delivery: Any
) -> dict[str, Any]:
    """Return a ``delivery:`` section sending to ``server``, with fast retries."""
    values: dict[str, Any] = {
        "transport": "smtp",
        "smtp": smtp_settings(server, **(smtp or {})),
        "retry": {"attempts_per_run": 3, "backoff": 0.01, "max_backoff": 0.05},
        "lease": 10,
        "heartbeat": 0.2,
    }
    values.update(delivery)
    return values


def subscribe(config: Config, database: Database, addresses: list[str]) -> None:
    """Import ``addresses`` as daily subscribers (world section, London 07:00)."""
    path = config.base_dir / "subscribers.csv"
    rows = "".join(
        f"{address},Reader {i},daily,world,Europe/London,07:00,daily\n"
        for i, address in enumerate(addresses)
    )
    path.write_text(
        "email,name,briefing,sections,timezone,send_time,frequency\n" + rows, encoding="utf-8"
    )
    # Subscribed just before the send time: one edition each (no missed, expired one).
    import_subscribers(config, database, path, AT - timedelta(minutes=10))


def smtp_project(
    folder: Path,
    server: Server,
    count: int = 6,
    *,
    addresses: list[str] | None = None,
    smtp: dict[str, Any] | None = None,
    database_url: str | None = None,
    **delivery: Any,
) -> tuple[Config, Database]:
    """Write a project delivering to ``server``, subscribe ``count`` readers, and dispatch."""
    storage = {"database_url": database_url} if database_url else {}
    config = make_project(folder, delivery=delivery_settings(server, smtp, **delivery), **storage)
    database = open_database(config.database)
    ingest(config, database, NOW - timedelta(hours=1))
    subscribe(config, database, addresses or [reader(n) for n in range(count)])
    dispatch(config, database, Signer([KEY]), AT)
    return config, database


def statuses(database: Database) -> dict[str, str]:
    """Return each subscriber's delivery status."""
    with database.transaction() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.status)
            .join(Edition, Edition.subscriber_id == Subscriber.id)
            .join(Delivery, Delivery.edition_id == Edition.id)
        ).all()
    return dict(rows)


def status_counts(database: Database) -> Counter[str]:
    """Count deliveries by status."""
    return Counter(statuses(database).values())


def attempts_of(database: Database, address: str) -> list[DeliveryAttempt]:
    """Return the attempts of one subscriber's delivery, oldest first."""
    with database.transaction() as session:
        return list(
            session.scalars(
                select(DeliveryAttempt)
                .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
                .join(Edition, Edition.id == Delivery.edition_id)
                .join(Subscriber, Subscriber.id == Edition.subscriber_id)
                .where(Subscriber.email == address)
                .order_by(DeliveryAttempt.id)
            )
        )


def without_date(raw: bytes) -> bytes:
    """Drop the Date header: the one thing a resend may change."""
    return re.sub(rb"^Date: .+\r\n", b"", raw, flags=re.M)
