"""Dispatch: due editions by local time, DST, frequency, deadline; never twice."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import event, func, literal, literal_column, select, text

from briefing.audience.imports import import_subscribers
from briefing.cli import cli
from briefing.config import Config
from briefing.domain.tokens import Signer
from briefing.editions import dispatch as dispatch_module
from briefing.editions.dispatch import dispatch, edition_key
from briefing.ingest import ingest
from briefing.store import Database, open_database
from briefing.store.schema import (
    SECTIONS_KEY,
    BriefingControl,
    Delivery,
    Edition,
    Subscription,
    Variant,
)
from briefing.store.suppressions import suppress
from tests.support.factories import NOW, make_project


@pytest.fixture
def ready(project: Config, database: Database) -> tuple[Config, Database]:
    ingest(project, database, NOW - timedelta(hours=1))
    path = project.base_dir / "subs.csv"
    path.write_text(
        "email,name,briefing,sections,timezone,send_time,frequency\n"
        "ldn@example.com,,daily,world;business,Europe/London,07:00,daily\n"
        "ldn2@example.com,,daily,world;business,Europe/London,07:00,daily\n"
        "nyc@example.com,,daily,sport,America/New_York,07:00,daily\n"
    )
    import_subscribers(project, database, path, datetime(2026, 1, 1, tzinfo=UTC))
    return project, database


def ledger(database: Database) -> list[tuple[str, str, str]]:
    with database.transaction() as session:
        from briefing.store.schema import Subscriber

        rows = session.execute(
            select(Subscriber.email, Edition.issue_date, Delivery.status)
            .join(Edition, Edition.subscriber_id == Subscriber.id)
            .join(Delivery, Delivery.edition_id == Edition.id)
            .order_by(Subscriber.email, Edition.issue_date)
        ).all()
        return [(email, str(day), status) for email, day, status in rows]


def test_dispatch_by_local_time_shares_variants_and_never_repeats(
    ready: tuple[Config, Database], signer: Signer
) -> None:
    config, database = ready
    at_london_seven = datetime(2026, 11, 26, 7, 0, 30, tzinfo=UTC)
    report = dispatch(config, database, signer, at_london_seven)
    # Yesterday's editions were missed (the service was not running): expired, not sent.
    assert report.expired == 3 and report.pending == 2 and report.variants == 1
    assert ledger(database) == [
        ("ldn2@example.com", "2026-11-25", "expired"),
        ("ldn2@example.com", "2026-11-26", "pending"),
        ("ldn@example.com", "2026-11-25", "expired"),
        ("ldn@example.com", "2026-11-26", "pending"),
        ("nyc@example.com", "2026-11-25", "expired"),
    ]
    again = dispatch(config, database, signer, at_london_seven + timedelta(minutes=1))
    assert again.dispatched == 0
    new_york = dispatch(config, database, signer, datetime(2026, 11, 26, 12, 0, tzinfo=UTC))
    assert new_york.pending == 1
    with database.transaction() as session:
        assert session.query(Variant).count() == 2


def test_second_edition_only_has_articles_first_seen_since_the_first(
    ready: tuple[Config, Database], signer: Signer
) -> None:
    config, database = ready
    dispatch(config, database, signer, datetime(2026, 11, 26, 7, 0, tzinfo=UTC))
    from tests.support.factories import markdown_article

    markdown_article(
        config.base_dir / "content" / "world",
        "new.md",
        title="Fresh story",
        url="https://news.example.org/fresh",
    )
    ingest(config, database, datetime(2026, 11, 26, 20, 0, tzinfo=UTC))
    dispatch(config, database, signer, datetime(2026, 11, 27, 7, 0, tzinfo=UTC))
    with database.transaction() as session:
        editions = session.scalars(
            select(Edition).where(Edition.variant_id.is_not(None)).order_by(Edition.issue_date)
        ).all()
        first, second = [e for e in editions if e.subscription_id == 1]
        assert second.variant is not None and first.variant is not None
        titles = [item.article_id for item in second.variant.items]
        assert len(titles) == 1
        assert first.variant.item_count == 6  # world 3 + business 3, first seen before
        assert second.variant.item_count == 1


def test_skip_if_empty_suppressed_and_paused(
    ready: tuple[Config, Database], signer: Signer
) -> None:
    config, database = ready
    at = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    with database.transaction() as session:
        suppress(session, "ldn2@example.com", reason="bounced", source="test", now=at)
        session.add(BriefingControl(briefing="daily", paused=True, updated_at=at))
    assert dispatch(config, database, signer, at).paused == ["daily"]
    assert ledger(database) == []
    with database.transaction() as session:
        session.get(BriefingControl, "daily").paused = False
    dispatch(config, database, signer, at)
    tomorrow = dispatch(config, database, signer, datetime(2026, 11, 27, 7, 0, tzinfo=UTC))
    assert tomorrow.skipped == 1  # nothing new since the first cut
    statuses = {(e, d): s for e, d, s in ledger(database)}
    assert statuses[("ldn2@example.com", "2026-11-26")] == "suppressed"
    assert statuses[("ldn@example.com", "2026-11-27")] == "skipped"


def test_force_sends_today_to_everyone_once(ready: tuple[Config, Database], signer: Signer) -> None:
    config, database = ready
    early = datetime(2026, 11, 26, 6, 30, tzinfo=UTC)  # before anyone's send time
    assert dispatch(config, database, signer, early, force=True).pending == 3
    assert dispatch(config, database, signer, early, force=True).dispatched == 0


def test_a_big_cohort_goes_in_by_ranges_with_stable_message_ids(
    ready: tuple[Config, Database], signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, database = ready
    path = config.base_dir / "more.csv"
    path.write_text(
        "email,briefing,sections,timezone,send_time,frequency\n"
        + "".join(
            f"reader{n}@example.com,daily,world;business,Europe/London,07:00,daily\n"
            for n in range(7)
        )
    )
    import_subscribers(config, database, path, datetime(2026, 1, 1, tzinfo=UTC))
    # Three subscriptions per statement: the cohort of nine goes in over several transactions.
    monkeypatch.setattr(dispatch_module, "CHUNK", 3)
    report = dispatch(config, database, signer, datetime(2026, 11, 26, 7, 0, 30, tzinfo=UTC))
    assert report.pending == 9 and report.variants == 1 and report.expired == 10
    assert "dispatched 19 deliveries in 2 edition(s)' 1 variant(s) in " in report.summary()
    with database.transaction() as session:
        rows = session.execute(
            select(Edition.subscriber_id, Edition.issue_date, Delivery.message_id).join(
                Delivery, Delivery.edition_id == Edition.id
            )
        ).all()
    assert len(rows) == 19 == len({(s, d) for s, d, _ in rows})
    domain = config.site.from_address.rpartition("@")[2]
    for subscriber_id, issue_date, message_id in rows:
        assert subscriber_id is not None
        assert message_id == signer.message_id(
            edition_key("daily", subscriber_id, issue_date), domain
        )
        assert message_id.startswith("<") and len(message_id.split("@")[0]) == 41


def test_a_subscription_newer_than_the_send_time_waits_for_the_next_one(
    ready: tuple[Config, Database], signer: Signer
) -> None:
    config, database = ready
    path = config.base_dir / "late.csv"
    path.write_text(
        "email,briefing,sections,timezone,send_time,frequency\n"
        "late@example.com,daily,world;business,Europe/London,07:00,daily\n"
    )
    at = datetime(2026, 11, 26, 7, 30, tzinfo=UTC)
    # Same cohort as ldn and ldn2, but it subscribed after this morning's send time.
    import_subscribers(config, database, path, datetime(2026, 11, 26, 7, 10, tzinfo=UTC))
    dispatch(config, database, signer, at)
    assert [row for row in ledger(database) if row[0] == "late@example.com"] == []
    dispatch(config, database, signer, datetime(2026, 11, 27, 7, 1, tzinfo=UTC))
    assert [(e, d) for e, d, _ in ledger(database) if e == "late@example.com"] == [
        ("late@example.com", "2026-11-27")
    ]


def test_send_no_deliver_only_dispatches(ready: tuple[Config, Database]) -> None:
    config, database = ready
    result = CliRunner().invoke(
        cli,
        [
            "--config",
            str(config.base_dir / "config.yaml"),
            "send",
            "--now",
            "--no-deliver",
            "--at",
            "2026-11-26T06:30:00+00:00",
        ],
        env={"BRIEFING_SECRET_KEY": "dispatch-test-key"},
    )
    assert result.exit_code == 0, result.output
    assert "dispatched 3 edition(s) in 2 variant(s): 3 to send" in result.output
    assert "nothing was sent" in result.output and "delivered:" not in result.output
    assert {status for _, _, status in ledger(database)} == {"pending"}


def test_dispatch_by_set_on_postgresql(postgres_url: str, tmp_path: Path, signer: Signer) -> None:
    config = make_project(tmp_path, database_url=postgres_url)
    database = open_database(config.database)
    try:
        ingest(config, database, NOW - timedelta(hours=1))
        path = tmp_path / "subs.csv"
        path.write_text(
            "email,briefing,sections,timezone,send_time,frequency\n"
            + "".join(f"r{n}@example.com,daily,world,Europe/London,07:00,daily\n" for n in range(5))
            + "gone@bücher.example,daily,world,Europe/London,07:00,daily\n"
        )
        import_subscribers(config, database, path, datetime(2026, 1, 1, tzinfo=UTC))
        at = datetime(2026, 11, 26, 7, 0, 30, tzinfo=UTC)
        with database.transaction() as session:
            suppress(session, "r1@example.com", reason="complained", source="test", now=at)
            suppress(session, "gone@xn--bcher-kva.example", reason="bounced", source="t", now=at)
        report = dispatch(config, database, signer, at)
        assert (report.pending, report.suppressed, report.expired) == (4, 2, 6)
        assert dispatch(config, database, signer, at).dispatched == 0
        statuses = {(e, d): s for e, d, s in ledger(database)}
        assert statuses[("r1@example.com", "2026-11-26")] == "suppressed"
        assert statuses[("gone@xn--bcher-kva.example", "2026-11-26")] == "suppressed"
        assert statuses[("r4@example.com", "2026-11-26")] == "pending"
    finally:
        database.dispose()


def _cohorts_share_statements(config: Config, database: Database, signer: Signer) -> None:
    """Four cohorts (send times) of one variant: one insert for the variant, one for the missed."""
    ingest(config, database, NOW - timedelta(hours=1))
    path = config.base_dir / "times.csv"
    times = ("09:00", "09:30", "10:00", "10:30")
    path.write_text(
        "email,briefing,sections,timezone,send_time,frequency\n"
        + "".join(
            f"r{n}-{at.replace(':', '')}@example.com,daily,world,Europe/London,{at},daily\n"
            for at in times
            for n in range(2)
        )
    )
    import_subscribers(config, database, path, datetime(2026, 1, 1, tzinfo=UTC))
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO EDITIONS"):
            statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", seen)
    try:
        # London is on UTC in November: today's four send times are due, within the deadline.
        report = dispatch(config, database, signer, datetime(2026, 11, 26, 11, 0, 30, tzinfo=UTC))
    finally:
        event.remove(database.engine, "before_cursor_execute", seen)
    assert (report.pending, report.expired, report.variants) == (8, 8, 1)
    assert len(statements) == 2  # yesterday's missed editions, then today's one variant
    with database.transaction() as session:
        rows = session.execute(
            select(Edition.issue_date, Edition.scheduled_at, Delivery.status, Delivery.reason).join(
                Delivery, Delivery.edition_id == Edition.id
            )
        ).all()
    assert len(rows) == 16
    for issue_date, scheduled_at, status, reason in rows:
        # Each edition keeps its own cohort's send time, and a missed one says which it was.
        assert f"{scheduled_at:%H:%M}" in times and scheduled_at.date() == issue_date
        if str(issue_date) == "2026-11-25":
            assert status == "expired"
            late = datetime(2026, 11, 26, 11, 0, 30, tzinfo=UTC) - scheduled_at
            assert reason == (
                f"send time {scheduled_at:%Y-%m-%d %H:%M} UTC passed "
                f"{int(late.total_seconds() // 60)} min ago, past the deadline"
            )
        else:
            assert (status, reason) == ("pending", None)
    assert (
        dispatch(config, database, signer, datetime(2026, 11, 26, 11, 1, tzinfo=UTC)).dispatched
        == 0
    )


def test_cohorts_of_one_variant_go_in_by_one_statement(
    project: Config, database: Database, signer: Signer
) -> None:
    _cohorts_share_statements(project, database, signer)


def test_cohorts_of_one_variant_go_in_by_one_statement_on_postgresql(
    postgres_url: str, tmp_path: Path, signer: Signer
) -> None:
    config = make_project(tmp_path, database_url=postgres_url)
    database = open_database(config.database)
    try:
        _cohorts_share_statements(config, database, signer)
    finally:
        database.dispose()


def _two_dispatches_at_once(config: Config, signer: Signer) -> None:
    """Two processes dispatching the same moment together put every edition in once."""
    first, second = open_database(config.database), open_database(config.database)
    try:
        ingest(config, first, NOW - timedelta(hours=1))
        path = config.base_dir / "race.csv"
        path.write_text(
            "email,briefing,sections,timezone,send_time,frequency\n"
            + "".join(
                f"r{n}-{at.replace(':', '')}@example.com,daily,world,Europe/London,{at},daily\n"
                for at in ("09:00", "09:30", "10:00", "10:30")
                for n in range(5)
            )
        )
        import_subscribers(config, first, path, datetime(2026, 1, 1, tzinfo=UTC))
        at = datetime(2026, 11, 26, 11, 0, 30, tzinfo=UTC)
        start = threading.Barrier(2)
        reports: list[int] = []
        errors: list[BaseException] = []

        def run(database: Database) -> None:
            start.wait()
            try:
                reports.append(dispatch(config, database, signer, at).dispatched)
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(db,)) for db in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        assert sum(reports) == 40  # 20 of today's, 20 of yesterday's (expired)
        with first.transaction() as session:
            rows = session.execute(
                select(Edition.subscriber_id, Edition.issue_date, Delivery.id).outerjoin(
                    Delivery, Delivery.edition_id == Edition.id
                )
            ).all()
        assert len(rows) == 40 == len({(s, d) for s, d, _ in rows})
        assert all(delivery is not None for _, _, delivery in rows)
    finally:
        first.dispose()
        second.dispose()


def test_two_dispatches_at_once_put_each_edition_in_once(project: Config, signer: Signer) -> None:
    _two_dispatches_at_once(project, signer)


def test_two_dispatches_at_once_on_postgresql(
    postgres_url: str, tmp_path: Path, signer: Signer
) -> None:
    _two_dispatches_at_once(make_project(tmp_path, database_url=postgres_url), signer)


def test_a_cohort_is_read_by_its_timing_and_sections(
    project: Config, database: Database, signer: Signer
) -> None:
    """Dispatch two section sets of one timing; every editions insert searches one cohort."""
    config = project
    ingest(config, database, NOW - timedelta(hours=1))
    path = config.base_dir / "sections.csv"
    path.write_text(
        "email,briefing,sections,timezone,send_time,frequency\n"
        + "".join(
            f"r{n}-{len(sections)}@example.com,daily,{sections},Europe/London,07:00,daily\n"
            for sections in ("world", "world;sport")
            for n in range(3)
        )
    )
    import_subscribers(config, database, path, datetime(2026, 1, 1, tzinfo=UTC))
    plans: list[str] = []

    def explain(_conn: object, cursor: Any, statement: str, parameters: Any, *_: object) -> None:
        if not statement.lstrip().upper().startswith("INSERT INTO EDITIONS"):
            return
        rows = cursor.connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
        plans.append("\n".join(str(row[-1]) for row in rows))

    event.listen(database.engine, "before_cursor_execute", explain)
    try:
        report = dispatch(config, database, signer, datetime(2026, 11, 26, 7, 0, 30, tzinfo=UTC))
    finally:
        event.remove(database.engine, "before_cursor_execute", explain)
    assert report.pending == 6 and report.variants == 2
    assert plans
    for plan in plans:
        # Every column of the index, the sections' expression last, bounds the search.
        searched = (
            "USING INDEX ix_subscriptions_cohort (briefing=? AND status=? AND timezone=? AND "
            "send_time=? AND frequency=? AND <expr>=?"
        )
        assert searched in plan, plan


def test_a_cohort_is_read_by_its_timing_and_sections_on_postgresql(
    postgres_url: str, tmp_path: Path, signer: Signer
) -> None:
    # PostgreSQL plans a handful of rows as it likes, so ask it about the condition alone.
    config = make_project(tmp_path, database_url=postgres_url)
    database = open_database(config.database)
    query = select(Subscription.id).where(
        Subscription.briefing == "daily",
        Subscription.status == "active",
        Subscription.timezone == "Europe/London",
        Subscription.send_time == "07:00",
        Subscription.frequency == "daily",
        func.coalesce(literal('["world"]'), literal_column("''")) == SECTIONS_KEY,
    )
    try:
        with database.transaction() as session:
            session.execute(text("SET LOCAL enable_seqscan = off"))
            compiled = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
            plan = "\n".join(session.execute(text(f"EXPLAIN {compiled}")).scalars())
    finally:
        database.dispose()
    assert "ix_subscriptions_cohort" in plan, plan
    (condition,) = [line for line in plan.splitlines() if "Index Cond" in line]
    assert "COALESCE((sections)::text, ''::text)" in condition, plan
