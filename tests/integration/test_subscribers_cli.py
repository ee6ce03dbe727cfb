"""``briefing subscribers add | remove | list | show | export`` on a real project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from briefing.cli import cli
from briefing.config import Config
from briefing.domain.addresses import address_hash
from briefing.domain.tokens import Signer
from briefing.errors import BriefingError
from briefing.store import Database
from briefing.store.schema import Subscriber, Suppression
from tests.support.factories import KEY, make_project
from tests.support.web import links_in, message_to, outbox, send_editions, subscription_of


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
