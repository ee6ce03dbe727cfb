"""Self-service links are single use in the database itself, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from briefing.domain.states import AccountAction
from briefing.store import Database, open_database
from briefing.store.account import add_request, use_request
from briefing.store.subscriptions import add_subscriber

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def one_request(database: Database, expires_at: datetime) -> int:
    with database.transaction() as session:
        subscriber = add_subscriber(session, "ann@example.com", name=None, now=NOW)
        return add_request(
            session,
            subscriber.id,
            AccountAction.EXPORT,
            email="ann@example.com",
            now=NOW,
            expires_at=expires_at,
        ).id


def check_single_use(database: Database) -> None:
    ident = one_request(database, NOW + timedelta(hours=1))
    results: list[bool] = []
    start = threading.Barrier(4)

    def take() -> None:
        start.wait()
        with database.transaction() as session:
            results.append(use_request(session, ident, NOW + timedelta(minutes=5)))

    racers = [threading.Thread(target=take) for _ in range(4)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert sorted(results) == [False, False, False, True]
    with database.transaction() as session:
        assert not use_request(session, ident, NOW + timedelta(minutes=6))


def test_a_link_acts_once_on_sqlite(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'briefing.db'}")
    try:
        check_single_use(database)
    finally:
        database.dispose()


def test_a_link_acts_once_on_postgresql(postgres_url: str) -> None:
    database = open_database(postgres_url)
    try:
        check_single_use(database)
    finally:
        database.dispose()


@pytest.mark.parametrize("minutes", [61, 24 * 60])
def test_an_expired_link_acts_never(tmp_path: Path, minutes: int) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'briefing.db'}")
    try:
        ident = one_request(database, NOW + timedelta(hours=1))
        with database.transaction() as session:
            assert not use_request(session, ident, NOW + timedelta(minutes=minutes))
    finally:
        database.dispose()
