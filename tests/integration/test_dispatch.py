"""Dispatch: due editions by local time, DST, frequency, deadline; never twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from briefing.audience.imports import import_subscribers
from briefing.config import Config
from briefing.domain.tokens import Signer
from briefing.editions.dispatch import dispatch
from briefing.ingest import ingest
from briefing.store import Database
from briefing.store.schema import BriefingControl, Delivery, Edition, Variant
from briefing.store.suppressions import suppress
from tests.support.factories import NOW


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
