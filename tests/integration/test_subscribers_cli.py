"""``briefing subscribers add | remove | list | show | export`` on a real project."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from briefing.audience.imports import import_subscribers
from briefing.cli import cli
from briefing.config import Config
from briefing.deliver import deliver
from briefing.deliver.transports.outbox import OutboxTransport
from briefing.domain.addresses import address_hash
from briefing.domain.states import BounceKind
from briefing.domain.tokens import Signer
from briefing.editions.dispatch import dispatch
from briefing.errors import BriefingError
from briefing.store import Database
from briefing.store.bounces import record as record_bounce
from briefing.store.schema import (
    BounceEvent,
    Delivery,
    DeliveryAttempt,
    Edition,
    Subscriber,
    Suppression,
)
from tests.support.factories import KEY, make_project
from tests.support.web import AT, links_in, message_to, outbox, send_editions, subscription_of


@pytest.fixture(autouse=True)
def signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIEFING_SECRET_KEY", KEY.decode())


def run(config: Config, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config.base_dir / "config.yaml"), *args])


def test_add_sends_a_confirmation_instead_of_activating(
    project: Config, database: Database
) -> None:
    result = run(
        project,
        "subscribers",
        "add",
        "Dee@Example.ORG",
        "--name",
        "Dee",
        "--sections",
        "sport,world",
        "--send-time",
        "06:45",
    )
    assert result.exit_code == 0, result.output
    assert "confirmation queued for dee@example.org for daily; pending" in result.output
    assert outbox(project) == []  # queued on the ledger; `send` (or web, serve) sends it
    sent = run(project, "send")
    assert sent.exit_code == 0, sent.output
    assert "confirmations: 1 sent" in sent.output
    dee = subscription_of(database, "dee@example.org")
    assert (
        dee.status == "pending" and dee.sections == ["sport", "world"] and dee.send_time == "06:45"
    )
    link = links_in(message_to(project, "dee@example.org"))["c"]
    assert link.startswith("https://news.example.org/b/c/")
    assert "Dee" not in message_to(project, "dee@example.org").decode().split("\r\n\r\n", 1)[1]

    listed = run(project, "subscribers", "list", "--json")
    records = [json.loads(line) for line in listed.output.splitlines()]
    assert [(r["email"], r["status"]) for r in records] == [("dee@example.org", "pending")]
    shown = run(project, "subscribers", "show", "Dee@EXAMPLE.org", "--json")
    record = json.loads(shown.output)
    assert record["subscriptions"][0]["confirmations"][0]["source"] == "cli:add"
    assert record["name"] is None  # applied only once they confirm

    bad = run(project, "subscribers", "add", "x@example.org", "--sections", "weather")
    assert isinstance(bad.exception, BriefingError) and "section 'weather'" in str(bad.exception)
    assert len(outbox(project)) == 1


def test_export_round_trips_through_import(
    project: Config, database: Database, signer: Signer, tmp_path: Path
) -> None:
    send_editions(project, database, signer)
    run(project, "subscribers", "add", "pending@example.org")
    exported = tmp_path / "export.csv"
    result = run(project, "subscribers", "export", "-o", str(exported))
    assert result.exit_code == 0 and "3 subscription(s)" in result.output
    text = exported.read_text()
    assert "pending@example.org" not in text and text.startswith("email,name,briefing,sections")

    elsewhere = make_project(tmp_path / "elsewhere")
    imported = run(elsewhere, "subscribers", "import", str(exported))
    assert imported.exit_code == 0 and "3 created" in imported.output
    again = run(elsewhere, "subscribers", "export")
    assert again.output == text
    listed = run(elsewhere, "subscribers", "list")
    assert "bob@example.com" in listed.output and "world,sport" in listed.output


def test_remove_deletes_personal_data_but_keeps_the_suppression(
    project: Config, database: Database, signer: Signer
) -> None:
    send_editions(project, database, signer)
    assert run(project, "subscribers", "remove", "ann@example.com").exit_code == 1  # asks first
    result = run(project, "subscribers", "remove", "ann@example.com", "--yes")
    assert result.exit_code == 0, result.output
    assert "1 subscription(s) deleted; 1 suppression entry kept" in result.output
    with database.transaction() as session:
        assert (
            session.scalar(select(Subscriber).where(Subscriber.email == "ann@example.com")) is None
        )
        rows = session.scalars(select(Suppression)).all()
        assert [(r.email_hash, r.email, r.reason) for r in rows] == [
            (address_hash("ann@example.com"), None, "removed")
        ]
    shown = run(project, "subscribers", "show", "ann@example.com")
    assert "suppressed for *: removed" in shown.output and "Ann" not in shown.output

    reimport = run(project, "subscribers", "import", str(project.base_dir / "subs.csv"))
    assert "refused line 2: ann@example.com was removed at their request" in reimport.output
    assert "0 created" in reimport.output

    # Removed stays removed: an operator cannot add the address back, in any spelling.
    readd = run(project, "subscribers", "add", "Ann@Example.com")
    assert readd.exit_code == 1 and isinstance(readd.exception, BriefingError)
    assert "refused: ann@example.com was removed at their request" in str(readd.exception)
    with database.transaction() as session:
        assert (
            session.scalar(select(Subscriber).where(Subscriber.email == "ann@example.com")) is None
        )
    missing = run(project, "subscribers", "remove", "nobody@example.com", "--yes")
    assert isinstance(missing.exception, BriefingError)


def test_operator_unsubscribe_records_who_and_why(
    project: Config, database: Database, signer: Signer
) -> None:
    send_editions(project, database, signer)
    result = run(
        project,
        "subscribers",
        "unsubscribe",
        "bob@example.com",
        "--briefing",
        "daily",
        "--reason",
        "asked by phone",
        "--by",
        "desk@news",
    )
    assert result.exit_code == 0, result.output
    assert "unsubscribed bob@example.com from daily" in result.output
    bob = subscription_of(database, "bob@example.com")
    assert bob.status == "unsubscribed" and bob.status_source == "cli:unsubscribe by desk@news"
    record = json.loads(run(project, "subscribers", "show", "bob@example.com", "--json").output)
    last = record["subscriptions"][0]["events"][-1]
    assert (last["to"], last["source"], last["detail"]) == (
        "unsubscribed",
        "cli:unsubscribe by desk@news",
        "asked by phone",
    )
    assert record["suppressions"][0]["reason"] == "unsubscribed"

    again = run(project, "subscribers", "unsubscribe", "bob@example.com")
    assert again.exit_code == 0 and "had already left daily; nothing changed" in again.output
    # Without --by the OS user is recorded.
    run(project, "subscribers", "unsubscribe", "cy@example.com")
    assert subscription_of(database, "cy@example.com").status_source.startswith(
        "cli:unsubscribe by "
    )
    assert "@" in subscription_of(database, "cy@example.com").status_source
    missing = run(project, "subscribers", "unsubscribe", "nobody@example.com")
    assert isinstance(missing.exception, BriefingError)
    assert subscription_of(database, "ann@example.com").status == "active"


def test_operator_suppress_and_unsuppress(
    project: Config, database: Database, signer: Signer
) -> None:
    send_editions(project, database, signer)
    result = run(
        project,
        "subscribers",
        "suppress",
        "cy@example.com",
        "--reason",
        "relay reports hard bounces",
        "--by",
        "desk@news",
    )
    assert result.exit_code == 0, result.output
    assert "suppressed cy@example.com for every briefing" in result.output
    with database.transaction() as session:
        (row,) = session.scalars(select(Suppression)).all()
        assert (row.briefing, row.reason, row.source) == (
            "*",
            "operator",
            "cli:suppress by desk@news: relay reports hard bounces",
        )
    again = run(project, "subscribers", "suppress", "cy@example.com")
    assert "was already suppressed for every briefing: operator since" in again.output
    assert subscription_of(database, "cy@example.com").status == "active"  # status kept
    stranger = run(project, "subscribers", "suppress", "stranger@example.org")
    assert stranger.exit_code == 0, stranger.output

    lifted = run(project, "subscribers", "unsuppress", "cy@example.com", "--reason", "fixed")
    assert lifted.exit_code == 0, lifted.output
    assert "lifted cy@example.com: * (operator)" in lifted.output
    record = json.loads(run(project, "subscribers", "show", "cy@example.com", "--json").output)
    assert record["suppressions"] == []
    events = record["subscriptions"][0]["events"]
    assert events[-1]["source"].startswith("cli:unsuppress by ")
    assert events[-1]["source"].endswith(": fixed")
    assert events[-1]["detail"] == "unsuppressed: * (operator)"
    assert events[-2]["source"] == "cli:suppress by desk@news: relay reports hard bounces"
    nothing = run(project, "subscribers", "unsuppress", "cy@example.com")
    assert "is not suppressed; nothing changed" in nothing.output

    run(project, "subscribers", "remove", "ann@example.com", "--yes")
    removed = run(project, "subscribers", "unsuppress", "ann@example.com")
    assert removed.exit_code == 1 and "kept ann@example.com: * (removed)" in removed.output


def test_remove_leaves_no_copy_of_the_address_or_name_on_disk(
    project: Config, database: Database, signer: Signer
) -> None:
    email, name = "dorothea.q@example.net", "Quillfeather"
    send_editions(project, database, signer)
    row = f"{email},Dorothea {name},daily,world,Europe/London,07:00,daily\n"
    csv = project.base_dir / "more.csv"
    csv.write_text("email,name,briefing,sections,timezone,send_time,frequency\n" + row)
    import_subscribers(project, database, csv, datetime(2026, 11, 26, tzinfo=UTC))
    dispatch(project, database, signer, AT)
    deliver(project, database, signer, OutboxTransport(project.outbox_path), clock=lambda: AT)
    # A relay that quotes the address in its replies, as many do.
    with database.transaction() as session:
        delivery = session.scalars(
            select(Delivery)
            .join(Edition, Edition.id == Delivery.edition_id)
            .join(Subscriber, Subscriber.id == Edition.subscriber_id)
            .where(Subscriber.email == email)
        ).one()
        delivery.last_reply = f"250 2.0.0 <{email.upper()}> queued"
        session.add(
            DeliveryAttempt(
                delivery_id=delivery.id,
                owner="relay-test",
                started_at=AT,
                finished_at=AT,
                outcome="sent",
                code=250,
                reply=f"250 ok <{email}>",
            )
        )
        # A report that came back by mail about them (a soft bounce, kept as history).
        record_bounce(
            session,
            fingerprint="f" * 64,
            now=AT,
            kind=BounceKind.SOFT,
            status="4.2.2",
            source="test",
            email=email,
            delivery_id=delivery.id,
            subscription_id=None,
            matched_by=None,
            action="counted",
        )
    # Leave and sign up again: a confirmation on the ledger, sent to the outbox.
    assert run(project, "subscribers", "unsubscribe", email).exit_code == 0
    assert run(project, "subscribers", "add", email, "--name", f"Dorothea {name}").exit_code == 0
    sent = run(project, "send")
    assert "confirmations: 1 sent" in sent.output, sent.output
    shown = run(project, "preview", "--subscriber", email)
    assert shown.exit_code == 0, shown.output
    with database.transaction() as session:
        kinds = session.scalars(select(Delivery.kind)).all()
    assert "confirmation" in kinds

    removed = run(project, "subscribers", "remove", email, "--yes")
    assert removed.exit_code == 0, removed.output
    assert "outbox message(s) and preview file(s) naming them" in removed.output
    assert "warning" not in removed.output
    with database.transaction() as session:
        assert session.scalars(select(Delivery.kind)).all().count("confirmation") == 0
        [event] = session.scalars(select(BounceEvent)).all()
        assert (event.email, event.email_hash) == (None, address_hash(email))
    path = database.sqlite_path
    assert path is not None
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    files += [p for p in project.outbox_path.rglob("*") if p.is_file()]
    files += [p for p in (project.base_dir / "var").rglob("*") if p.is_file()]
    for file in files:
        if file.exists():
            data = file.read_bytes().lower()
            assert email.encode() not in data, file
            assert name.lower().encode() not in data, file
    assert outbox(project)  # the others' mail stays


def test_remove_on_postgresql_says_to_vacuum(postgres_url: str, tmp_path: Path) -> None:
    config = make_project(tmp_path, database_url=postgres_url)
    csv = config.base_dir / "one.csv"
    csv.write_text(
        "email,name,briefing,sections,timezone,send_time,frequency\n"
        "pg@example.org,Pat,daily,world,Europe/London,07:00,daily\n"
    )
    assert run(config, "subscribers", "import", str(csv)).exit_code == 0
    removed = run(config, "subscribers", "remove", "pg@example.org", "--yes")
    assert removed.exit_code == 0, removed.output
    assert "removed pg@example.org" in removed.output and "VACUUM" in removed.output
    shown = run(config, "subscribers", "show", "pg@example.org")
    assert "suppressed for *: removed" in shown.output and "Pat" not in shown.output
