"""The store: created without a manual step, SQLite in WAL, PostgreSQL by URL."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect

from briefing.errors import StoreError
from briefing.ingest import ingest
from briefing.store import Database, open_database
from briefing.store.articles import upsert_article
from briefing.store.schema import Article, BriefingControl
from tests.support.factories import NOW, make_draft, make_project


def test_sqlite_is_created_in_wal_with_every_table(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'deep' / 'b.db'}")
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    tables = set(inspect(database.engine).get_table_names())
    assert {
        "articles",
        "subscriptions",
        "suppressions",
        "variants",
        "variant_items",
        "editions",
        "deliveries",
        "delivery_attempts",
        "briefing_controls",
        "sources",
    } <= tables
    open_database(f"sqlite:///{tmp_path / 'deep' / 'b.db'}")  # second open: already current


def test_concurrent_writers_queue_instead_of_failing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    open_database(url)
    errors: list[Exception] = []

    def writer(worker: int) -> None:
        database = open_database(url)
        try:
            for n in range(20):
                with database.transaction() as session:
                    draft = make_draft(
                        uid=f"url:https://x/{worker}/{n}", url=f"https://x/{worker}/{n}"
                    )
                    upsert_article(session, draft, None, NOW)
        except Exception as exc:  # pragma: no cover - the assertion reports it
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with open_database(url).transaction() as session:
        assert session.query(Article).count() == 80


def test_unreachable_database_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot open the database postgresql"):
        open_database("postgresql+psycopg://nobody@127.0.0.1:1/none")


def test_postgresql_runs_the_same_pipeline(postgres_url: str, tmp_path: Path) -> None:
    from briefing.audience.imports import import_subscribers
    from briefing.domain.tokens import Signer
    from briefing.editions.dispatch import dispatch

    config = make_project(tmp_path, database_url=postgres_url)
    database: Database = open_database(config.database)
    reports = ingest(config, database, NOW)
    assert all(r.status == "new" for r in reports)
    path = tmp_path / "s.csv"
    path.write_text("email\nann@example.com\n")
    import_subscribers(config, database, path, datetime(2026, 1, 1, tzinfo=UTC))
    first = dispatch(config, database, Signer([b"k"]), NOW, force=True)
    again = dispatch(config, database, Signer([b"k"]), NOW, force=True)
    assert first.pending == 1 and again.dispatched == 0
    with database.transaction() as session:
        stored = session.query(Article).first()
        assert stored is not None and stored.first_seen_at == NOW
    database.dispose()


def test_wal_checkpoint_truncates_and_reports_a_reader_holding_it(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'b.db'}")
    with database.transaction() as session:
        session.add(BriefingControl(briefing="a", paused=False, updated_at=NOW))
    wal = tmp_path / "b.db-wal"
    assert wal.stat().st_size > 0
    reader = sqlite3.connect(tmp_path / "b.db", isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM briefing_controls").fetchone()  # holds a snapshot
    with database.transaction() as session:
        session.add(BriefingControl(briefing="b", paused=False, updated_at=NOW))
    held = database.checkpoint(attempts=2, wait=0.05)
    assert held is not None and not held.done and held.attempts == 2
    assert held.busy and "another process" in held.busy
    reader.execute("COMMIT")
    reader.close()
    done = database.checkpoint(attempts=2, wait=0.05)
    assert done is not None and done.done and done.attempts == 1
    assert wal.stat().st_size == 0
    with database.engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        assert raw.execute("PRAGMA secure_delete").fetchone() == (1,)
    database.dispose()
