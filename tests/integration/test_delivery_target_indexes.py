"""Migration 0015: a delivery's target columns are indexed only where set, rows kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import func, inspect, select, update
from sqlalchemy.exc import IntegrityError

from briefing.deliver import deliver, make_transport
from briefing.domain.tokens import Signer
from briefing.store import Database
from briefing.store.schema import Delivery, DeliveryAttempt, TestSend
from tests.support.delivery import AT, smtp_project
from tests.support.factories import KEY
from tests.support.smtp_server import smtp_server

TARGETS = ("confirmation_id", "request_id", "test_id")


def downgrade_to(database: Database, revision: str) -> None:
    """Migrate down to ``revision`` as ``Database.upgrade`` migrates up (SQLite: keys off)."""
    database.migrate(lambda settings: command.downgrade(settings, revision))


def counts(database: Database) -> tuple[int, int]:
    with database.transaction() as session:
        deliveries = session.scalar(select(func.count()).select_from(Delivery))
        attempts = session.scalar(select(func.count()).select_from(DeliveryAttempt))
    return int(deliveries or 0), int(attempts or 0)


def target_indexes(database: Database) -> dict[str, tuple[bool, str]]:
    dialect = database.engine.dialect.name
    found = {}
    for index in inspect(database.engine).get_indexes("deliveries"):
        name = str(index["name"])
        if name.startswith("uq_deliveries_"):
            where = index.get("dialect_options", {}).get(f"{dialect}_where", "")
            found[name] = (bool(index["unique"]), str(where))
    return found


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_up_and_down_from_0014_keep_every_delivery_and_attempt(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if engine == "postgresql" else None
    with smtp_server() as server:
        config, database = smtp_project(tmp_path, server, count=5, database_url=url)
        transport = make_transport(config)
        try:
            deliver(config, database, Signer([KEY]), transport, clock=lambda: AT)
        finally:
            transport.close()
    try:
        before = counts(database)
        assert before == (5, 5)
        assert set(target_indexes(database)) == {f"uq_deliveries_{c}" for c in TARGETS}
        assert all(
            unique and "IS NOT NULL" in where for unique, where in target_indexes(database).values()
        )

        downgrade_to(database, "0014")
        assert counts(database) == before  # the table rebuilt on SQLite, attempts not cascaded
        # Unique constraints again (PostgreSQL lists their indexes, SQLite does not).
        assert all(unique and not where for unique, where in target_indexes(database).values())

        database.upgrade()
        assert counts(database) == before
        assert len(target_indexes(database)) == 3
        # Still one row per target: two deliveries of one test send are refused.
        with database.transaction() as session:
            sent = TestSend(
                briefing="daily",
                issue_date=AT.date(),
                shown_as="a reader",
                recipient="editor@example.com",
                requested_by="editor",
                subject="[TEST]",
                message=b"",
                created_at=AT,
                expires_at=AT,
            )
            session.add(sent)
            session.flush()
            test_id = sent.id
            ids = list(session.scalars(select(Delivery.id).limit(2)))
        with database.transaction() as session:
            session.execute(update(Delivery).where(Delivery.id == ids[0]).values(test_id=test_id))
        with pytest.raises(IntegrityError) as refused, database.transaction() as session:
            session.execute(update(Delivery).where(Delivery.id == ids[1]).values(test_id=test_id))
        assert "unique" in str(refused.value).lower()
    finally:
        database.dispose()
