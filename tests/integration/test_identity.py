"""Who an address is: one mailbox, one subscriber; only mailable addresses; removed stays removed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, text

from briefing.cli import cli
from briefing.config import Config
from briefing.domain.addresses import address_hash
from briefing.domain.tokens import Purpose, Signer
from briefing.errors import BriefingError
from briefing.store import Database
from briefing.store.schema import Subscriber
from briefing.store.suppressions import suppression_for
from tests.support.factories import KEY, make_project
from tests.support.migrations import unmigrated, upgrade_to
from tests.support.web import (
    Site,
    form_token,
    links_in,
    messages_to,
    outbox,
    parse,
    send_editions,
    serve_site,
    subscription_of,
    write_file,
)

SUBSCRIBE = "/b/subscribe"


@pytest.fixture(autouse=True)
def signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIEFING_SECRET_KEY", KEY.decode())


def run(config: Config, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config.base_dir / "config.yaml"), *args])


@pytest.fixture
def site(project: Config, database: Database, signer: Signer) -> Iterator[Site]:
    send_editions(project, database, signer)
    with serve_site(project, database, [KEY]) as served:
        yield served


def sign_up(site: Site, email: str) -> tuple[int, str]:
    page = site.client.get(SUBSCRIBE)
    data = {"form_token": form_token(page.text), "email": email, "name": "", "briefing": "daily"}
    response = site.client.post(SUBSCRIBE, data=data, headers={"Origin": site.origin})
    return response.status_code, response.text


def subscribers(database: Database) -> list[str]:
    with database.transaction() as session:
        return sorted(session.scalars(select(Subscriber.email)))


# --- one mailbox, one subscriber ---------------------------------------------------------------


def test_two_spellings_of_one_mailbox_are_one_subscriber_and_get_one_message(
    project: Config, database: Database
) -> None:
    path = write_file(
        project.base_dir / "dup.csv",
        "email,name\ndup.case@example.org,Dup\nDup.Case@Example.ORG,Dup again\n",
    )
    result = run(project, "subscribers", "import", str(path))
    assert result.exit_code == 1  # the second row is reported
    assert (
        "dup.csv:3: Dup.Case@Example.ORG (mailbox dup.case@example.org) is already on line 2"
        in result.output
    )
    assert "1 created" in result.output
    again = write_file(project.base_dir / "again.csv", "email\nDUP.CASE@example.org\n")
    assert "1 unchanged" in run(project, "subscribers", "import", str(again)).output
    assert subscribers(database) == ["dup.case@example.org"]

    assert run(project, "ingest").exit_code == 0
    sent = run(project, "send", "--now")
    assert sent.exit_code == 0, sent.output
    assert len(messages_to(project, "dup.case@example.org")) == 1
    assert len(outbox(project)) == 1

    shown = run(project, "subscribers", "show", "DUP.case@EXAMPLE.org", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["email"] == "dup.case@example.org"


def test_an_internationalised_domain_is_keyed_in_its_ascii_form(
    project: Config, database: Database
) -> None:
    path = write_file(project.base_dir / "idn.csv", "email\nreader@Bücher.example\n")
    assert run(project, "subscribers", "import", str(path)).exit_code == 0
    assert subscribers(database) == ["reader@xn--bcher-kva.example"]
    removed = run(project, "subscribers", "remove", "READER@bücher.example", "--yes")
    assert removed.exit_code == 0, removed.output
    assert subscribers(database) == []


def test_web_sign_up_of_a_known_mailbox_in_another_spelling_is_the_same_subscriber(
    site: Site,
) -> None:
    status, _ = sign_up(site, "ANN@Example.com")
    assert status == 200
    assert subscribers(site.database) == ["ann@example.com", "bob@example.com", "cy@example.com"]
    assert subscription_of(site.database, "ann@example.com").status == "active"


# --- only mailable addresses --------------------------------------------------------------------


def test_a_non_ascii_local_part_is_refused_at_import_add_and_sign_up(
    site: Site, project: Config
) -> None:
    path = write_file(project.base_dir / "intl.csv", "email\njosé@example.com\nok@bücher.example\n")
    result = run(project, "subscribers", "import", str(path))
    assert result.exit_code == 1
    assert "intl.csv:2: email 'josé@example.com': the part before the @ (josé)" in result.output
    assert "delivery.smtputf8" in result.output
    assert "1 created" in result.output  # the internationalised domain is fine

    added = run(project, "subscribers", "add", "josé@example.com")
    assert isinstance(added.exception, BriefingError)
    assert "non-ASCII" in str(added.exception)

    status, page = sign_up(site, "josé@example.com")
    assert status == 400 and "non-ASCII letters before the @" in page
    assert "jos" not in " ".join(subscribers(site.database))


def test_with_smtputf8_the_address_is_taken_and_its_confirmation_is_valid(tmp_path: Path) -> None:
    project = make_project(tmp_path, delivery={"smtputf8": True})
    assert run(project, "subscribers", "add", "José@Example.com").exit_code == 0
    sent = run(project, "send")
    assert sent.exit_code == 0 and "confirmations: 1 sent" in sent.output, sent.output
    (raw,) = outbox(project)
    to = next(line for line in raw.split(b"\r\n") if line.startswith(b"To:"))
    assert to == "To: josé@example.com".encode()  # UTF-8 as RFC 6532 has it, no encoded-word
    assert parse(raw)["To"] == "josé@example.com"


def test_undecodable_form_bytes_get_a_400_page(site: Site) -> None:
    page = site.client.get(SUBSCRIBE)
    token = form_token(page.text)
    for body in (
        f"form_token={token}&email=jos%E9@example.com&briefing=daily".encode(),
        f"form_token={token}&briefing=daily&email=".encode() + b"jos\xe9@example.com",
    ):
        response = site.client.post(
            SUBSCRIBE,
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": site.origin},
        )
        assert response.status_code == 400
        assert "not sent as UTF-8" in response.text
    assert subscribers(site.database) == ["ann@example.com", "bob@example.com", "cy@example.com"]


# --- removed stays removed ----------------------------------------------------------------------


def test_only_the_person_brings_a_removed_address_back(site: Site, project: Config) -> None:
    assert run(project, "subscribers", "remove", "ann@example.com", "--yes").exit_code == 0
    added = run(project, "subscribers", "add", "ann@example.com")
    assert added.exit_code == 1
    assert "removed at their request" in str(added.exception)
    assert subscribers(site.database) == ["bob@example.com", "cy@example.com"]

    status, _ = sign_up(site, "Ann@example.com")
    assert status == 200
    run(project, "send")
    (mail,) = [m for m in messages_to(project, "ann@example.com") if b"Confirm your" in m]
    confirm = links_in(mail)["c"]
    page = site.client.get(site.url(confirm))
    response = site.client.post(
        site.url(confirm),
        data={"form_token": form_token(page.text)},
        headers={"Origin": site.origin},
    )
    assert response.status_code == 200
    ann = subscription_of(site.database, "ann@example.com")
    assert ann.status == "active" and ann.consent_source == "double opt-in (web:subscribe)"
    record = json.loads(run(project, "subscribers", "show", "ann@example.com", "--json").output)
    events = record["subscriptions"][0]["events"]
    assert [(e["from"], e["to"]) for e in events] == [(None, "pending"), ("pending", "active")]


# --- timezones, the default briefing, tokens ----------------------------------------------------


def test_legacy_zone_abbreviations_are_refused_for_new_input_with_a_hint(
    project: Config, database: Database
) -> None:
    path = write_file(
        project.base_dir / "zones.csv",
        "email,timezone\nest@example.com,EST\npst@example.com,PST8PDT\n"
        "oslo@example.com,Europe/Oslo\nkiev@example.com,Europe/Kiev\n",
    )
    result = run(project, "subscribers", "import", str(path))
    assert "zones.csv:2: timezone: 'EST' is a legacy abbreviation" in result.output
    assert "such as America/New_York" in result.output
    assert (
        "zones.csv:3: timezone: 'PST8PDT'" in result.output
        and "America/Los_Angeles" in result.output
    )
    assert "2 created" in result.output  # region zones and old link names are fine
    added = run(project, "subscribers", "add", "m@example.com", "--timezone", "MST")
    assert isinstance(added.exception, BriefingError) and "America/Denver" in str(added.exception)


def test_a_configured_legacy_zone_keeps_working(tmp_path: Path) -> None:
    briefing = {
        "title": "The Daily",
        "list_id": "daily.news.example.org",
        "sections": ["world"],
        "send_time": "07:00",
        "timezone": "EST",
    }
    project = make_project(tmp_path, briefings={"daily": briefing})
    assert project.briefings["daily"].timezone == "EST"
    assert run(project, "subscribers", "add", "new@example.org").exit_code == 0


def test_add_without_briefing_uses_the_first_configured(tmp_path: Path) -> None:
    first = {
        "title": "Morning",
        "list_id": "morning.news.example.org",
        "sections": ["world"],
        "send_time": "07:00",
        "timezone": "Europe/London",
    }
    second = {**first, "title": "Evening", "list_id": "evening.news.example.org"}
    project = make_project(tmp_path, briefings={"morning": first, "evening": second})
    result = run(project, "subscribers", "add", "new@example.org")
    assert result.exit_code == 0, result.output
    assert "confirmation queued for new@example.org for morning" in result.output


def test_a_token_in_the_standard_base64_alphabet_is_refused(site: Site) -> None:
    token = next(
        t for t in (site.signer.sign(Purpose.UNSUBSCRIBE, i) for i in range(1, 999)) if "-" in t
    )
    genuine = site.client.get(f"/b/u/{token}")
    assert "damaged" not in genuine.text
    refused = site.client.get(f"/b/u/{token.replace('-', '%2B')}")  # '+', the same bits
    assert refused.status_code == 404 and "damaged" in refused.text


# --- the migration merges the spellings of one mailbox ------------------------------------------


def _subscription(ident: int, subscriber: int, briefing: str, status: str, at: str) -> str:
    return (
        "INSERT INTO subscriptions (id, subscriber_id, briefing, sections, timezone, send_time, "
        "frequency, status, status_changed_at, status_source, consent_source, consent_at, "
        f"created_at, updated_at) VALUES ({ident}, {subscriber}, '{briefing}', NULL, 'UTC', "
        f"'07:00', 'daily', '{status}', '{at}', 'import', 'import', '{at}', '{at}', '{at}')"
    )


def _legacy_hash(address: str) -> str:
    return hashlib.sha256(address.lower().encode("utf-8")).hexdigest()


ROWS_0003 = [
    (
        "INSERT INTO subscribers (id, email, name, created_at) VALUES "
        "(1, 'Dup.Case@example.org', NULL, '2026-11-20 07:00:00'), "
        "(2, 'dup.case@example.org', 'Dup', '2026-11-22 07:00:00'), "
        "(3, 'Solo@bücher.example', 'Solo', '2026-11-21 07:00:00')"
    ),
    _subscription(1, 1, "daily", "active", "2026-11-20 07:00:00"),
    _subscription(2, 2, "daily", "unsubscribed", "2026-11-22 07:00:00"),
    _subscription(3, 2, "weekly", "active", "2026-11-22 07:00:00"),
    _subscription(4, 3, "daily", "active", "2026-11-21 07:00:00"),
    (
        "INSERT INTO subscription_events (id, subscription_id, at, status_from, status_to, source) "
        "VALUES (1, 1, '2026-11-20 07:00:00', NULL, 'active', 'import'), "
        "(2, 2, '2026-11-22 07:00:00', NULL, 'active', 'import'), "
        "(3, 2, '2026-11-23 07:00:00', 'active', 'unsubscribed', 'web:unsubscribe')"
    ),
    (
        "INSERT INTO editions (id, briefing, subscriber_id, subscription_id, issue_date, "
        "scheduled_at, created_at) VALUES "
        "(1, 'daily', 1, 1, '2026-11-23', '2026-11-23 07:00:00', '2026-11-23 06:00:00'), "
        "(2, 'daily', 2, 2, '2026-11-23', '2026-11-23 07:00:00', '2026-11-23 06:00:00'), "
        "(3, 'daily', 2, 2, '2026-11-22', '2026-11-22 07:00:00', '2026-11-22 06:00:00')"
    ),
    (
        "INSERT INTO suppressions (id, email_hash, email, briefing, reason, source, created_at) "
        f"VALUES (1, '{_legacy_hash('dup.case@example.org')}', 'dup.case@example.org', 'daily', "
        "'unsubscribed', 'web:unsubscribe', '2026-11-23 07:00:00'), "
        f"(2, '{_legacy_hash('gone@bücher.example')}', NULL, '*', 'removed', 'cli:remove', "
        "'2026-11-23 07:00:00'), "
        f"(3, '{_legacy_hash('solo@bücher.example')}', 'Solo@bücher.example', 'weekly', "
        "'unsubscribed', 'import', '2026-11-23 07:00:00')"
    ),
]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_merges_the_spellings_of_one_mailbox(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database = unmigrated(backend, tmp_path, request)
    try:
        upgrade_to(database, "0003")
        with database.engine.begin() as connection:
            for statement in ROWS_0003:
                connection.execute(text(statement))
            if backend == "postgresql":  # the rows above were given their ids
                connection.execute(
                    text("SELECT setval(pg_get_serial_sequence('subscription_events', 'id'), 9)")
                )
        database.upgrade()
        with database.engine.begin() as connection:

            def rows(query: str) -> list[tuple[object, ...]]:
                return [tuple(row) for row in connection.execute(text(query))]

            assert rows("SELECT id, email, name FROM subscribers ORDER BY id") == [
                (1, "dup.case@example.org", "Dup"),
                (3, "solo@xn--bcher-kva.example", "Solo"),
            ]
            # The earliest subscription is kept; the most restrictive state wins.
            assert rows(
                "SELECT id, subscriber_id, briefing, status FROM subscriptions ORDER BY id"
            ) == [
                (1, 1, "daily", "unsubscribed"),
                (3, 1, "weekly", "active"),
                (4, 3, "daily", "active"),
            ]
            history = rows(
                "SELECT subscription_id, status_from, status_to, source FROM subscription_events "
                "ORDER BY id"
            )
            assert history == [
                (1, None, "active", "import"),
                (1, None, "active", "import"),
                (1, "active", "unsubscribed", "web:unsubscribe"),
                (1, "active", "unsubscribed", "merge"),
                (3, "active", "active", "merge"),
            ]
            assert rows("SELECT id, subscriber_id, subscription_id FROM editions ORDER BY id") == [
                (1, 1, 1),
                (2, None, 1),  # the same issue twice: the send history stays, unlinked
                (3, 1, 1),
            ]
            assert rows("SELECT id, email_hash, email FROM suppressions ORDER BY id") == [
                (1, address_hash("dup.case@example.org"), "dup.case@example.org"),
                (2, _legacy_hash("gone@bücher.example"), None),
                (3, address_hash("solo@xn--bcher-kva.example"), "solo@xn--bcher-kva.example"),
            ]
        with database.transaction() as session:
            # An erased address's old hash still stops it, looked up in any spelling.
            assert suppression_for(session, "Gone@Bücher.example", "daily") is not None
            assert suppression_for(session, "SOLO@bücher.example", "weekly") is not None
    finally:
        database.dispose()
