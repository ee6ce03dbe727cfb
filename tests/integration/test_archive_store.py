"""The archive's queries on SQLite and PostgreSQL: issues, variants, figures after a real send."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

from briefing.deliver import deliver, make_transport
from briefing.domain.states import DeliveryState
from briefing.domain.tokens import Signer
from briefing.store import Database
from briefing.store.archive import (
    archived_issue,
    archived_issues,
    public_issues,
    public_variant,
    variant_content,
)
from briefing.store.editions import NewVariant, freeze_variant
from tests.support.delivery import AT, reader, smtp_project
from tests.support.factories import KEY
from tests.support.smtp_server import Handler, Rule, smtp_server

SIGNER = Signer([KEY])
DAY = AT.date()


def _send_with_failures(tmp_path: Path, database_url: str | None) -> Database:
    """Send the daily issue to 8 readers over SMTP: one refused at RCPT (bounced), one at DATA."""
    rules = {
        reader(2): Rule(rcpt="550 5.1.1 <reader2@example.com>: no such user"),
        reader(7): Rule(data="554 5.7.1 message refused by policy"),
    }
    with smtp_server(Handler(rules=rules)) as server:
        config, database = smtp_project(tmp_path, server, count=8, database_url=database_url)
        transport = make_transport(config)
        try:
            deliver(config, database, SIGNER, transport, clock=lambda: AT)
        finally:
            transport.close()
    return database


def _check_figures(database: Database) -> None:
    with database.transaction() as session:
        page = archived_issues(session, "daily")
        one = archived_issue(session, "daily", DAY)
        assert archived_issue(session, "daily", DAY - timedelta(days=1)) is None
        assert archived_issues(session, "weekly").issues == ()
    assert page.older is None
    assert [issue.issue_date for issue in page.issues] == [DAY]
    (issue,) = page.issues
    (variant,) = issue.variants
    expected = Counter({DeliveryState.SENT: 6, DeliveryState.BOUNCED: 1, DeliveryState.FAILED: 1})
    assert variant.figures == expected
    assert issue.figures == expected and variant.editions == 8
    assert variant.sections == ("world",) and variant.item_count > 0 and variant.html_size > 0
    assert one == issue


def test_figures_after_a_send_with_failures_on_sqlite(tmp_path: Path) -> None:
    _check_figures(_send_with_failures(tmp_path, None))


def test_figures_after_a_send_with_failures_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    database = _send_with_failures(tmp_path, postgres_url)
    try:
        _check_figures(database)
        _check_pages_and_public_copies(database)
    finally:
        database.dispose()


def test_undelivered_editions_count_as_pending(tmp_path: Path) -> None:
    with smtp_server() as server:
        _, database = smtp_project(tmp_path, server, count=3)
    with database.transaction() as session:
        (issue,) = archived_issues(session, "daily").issues
    assert issue.figures == Counter({DeliveryState.PENDING: 3})


def _variant(day: date, sections: list[str], *, hour: int = 7, key: str = "") -> NewVariant:
    return NewVariant(
        key=key or f"{day}-{'-'.join(sections)}-{hour}",
        briefing="daily",
        sections=sections,
        locale="en_GB",
        issue_date=day,
        since=None,
        cut_at=datetime.combine(day, datetime.min.time(), AT.tzinfo).replace(hour=hour),
        subject=f"The Daily of {day} ({','.join(sections)} at {hour})",
        item_count=1,
        html_size=100,
        notes=[],
        html=f"<html><body><p>{day} {sections} {hour}</p></body></html>",
        text=f"{day}",
        message=b"",
        placeholders={},
        items=[],
    )


DEFAULT = ["world", "business", "sport"]


def _freeze_history(database: Database) -> None:
    """Store five days of variants: the default sections twice on some days, not on the 3rd."""
    with database.transaction() as session:
        for offset in range(1, 6):
            day = DAY - timedelta(days=offset)
            if offset != 3:
                freeze_variant(session, _variant(day, DEFAULT, hour=8), AT)
                freeze_variant(session, _variant(day, DEFAULT, hour=6), AT)
            freeze_variant(session, _variant(day, ["world"]), AT)


def _check_pages_and_public_copies(database: Database) -> None:
    _freeze_history(database)
    days = [DAY - timedelta(days=offset) for offset in range(6)]
    with database.transaction() as session:
        first = archived_issues(session, "daily", limit=2)
        second = archived_issues(session, "daily", before=first.older, limit=2)
        third = archived_issues(session, "daily", before=second.older, limit=2)
        listed = public_issues(session, "daily", DEFAULT, limit=3)
        rest = public_issues(session, "daily", DEFAULT, before=listed[-1].issue_date)
        copy = public_variant(session, "daily", DEFAULT, days[1])
        missing = public_variant(session, "daily", DEFAULT, days[3])
        other = archived_issue(session, "daily", days[1])
        assert other is not None
        foreign = variant_content(session, "daily", days[2], other.variants[0].id)
        own = variant_content(session, "daily", days[1], other.variants[0].id)
    pages = [first, second, third]
    assert [[i.issue_date for i in p.issues] for p in pages] == [days[0:2], days[2:4], days[4:6]]
    assert third.older is None
    # Public copies: only days cut with the default sections, the earliest cut of each.
    assert [i.issue_date for i in listed] == [days[1], days[2], days[4]]
    assert [i.issue_date for i in rest] == [days[5]]
    assert all("at 6)" in issue.subject for issue in listed + rest)
    assert copy is not None and copy.sections == tuple(DEFAULT) and "6</p>" in copy.html
    assert missing is None
    # A variant is only found under its own issue.
    assert foreign is None and own is not None
    assert [v.cut_at.hour for v in other.variants] == [6, 7, 8]


def test_pages_and_public_copies_on_sqlite(tmp_path: Path) -> None:
    with smtp_server() as server:
        _, database = smtp_project(tmp_path, server, count=2)
    _check_pages_and_public_copies(database)
