"""Sign-up and double opt-in on a real server, the confirmation read from the outbox."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from briefing.audience.imports import import_subscribers
from briefing.config import Config
from briefing.domain.tokens import Signer
from briefing.editions.dispatch import dispatch
from briefing.store import Database, open_database
from briefing.store.schema import Edition
from briefing.store.suppressions import suppression_for
from briefing.web.forms import FormGuard
from tests.support.factories import KEY, make_project
from tests.support.message_checks import html_tags
from tests.support.web import (
    AT,
    Clock,
    Site,
    form_token,
    links_in,
    message_to,
    outbox,
    parse,
    path_of,
    send_editions,
    serve_site,
    subscription_of,
    wait_for_drain,
)

SUBSCRIBE = "/b/subscribe"
HOSTILE_NAME = "Win a prize at http://evil.example\r\nBcc: victim@example.net"


@pytest.fixture
def site(project: Config, database: Database, signer: Signer) -> Iterator[Site]:
    send_editions(project, database, signer)
    with serve_site(project, database, [KEY]) as served:
        yield served


def sign_up(site: Site, email: str, name: str = "", **headers: str) -> tuple[int, str]:
    page = site.client.get(SUBSCRIBE)
    assert page.status_code == 200
    data = {"form_token": form_token(page.text), "email": email, "name": name, "briefing": "daily"}
    response = site.client.post(SUBSCRIBE, data=data, headers=headers)
    return response.status_code, response.text


def confirmations(config: Config) -> list[bytes]:
    return [
        raw for raw in outbox(config) if "Confirm your subscription" in str(parse(raw)["Subject"])
    ]


def test_double_opt_in_end_to_end(site: Site, signer: Signer) -> None:
    status, text = sign_up(site, "New.Reader@Example.COM", HOSTILE_NAME, Origin=site.origin)
    assert status == 200 and "Check your inbox" in text
    raw = message_to(site.config, "new.reader@example.com")
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998
    message = parse(raw)
    assert str(message["To"]) == "new.reader@example.com"
    assert message["Date"] and re.fullmatch(
        r"<[^<>@\s]+@news\.example\.org>", message["Message-ID"]
    )
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p["Content-Transfer-Encoding"] == "quoted-printable" for p in parts)
    text_part, html_part = (p.get_content() for p in parts)
    for hostile in ("evil.example", "Win a prize", "victim@example.net"):
        assert hostile not in raw.decode("ascii", "replace") and hostile not in text_part
    assert message["Bcc"] is None
    link = links_in(raw)["c"]
    assert link.startswith("https://news.example.org/b/c/")
    assert any(t == "a" and a.get("href") == link for t, a in html_tags(html_part))
    assert '<html lang="en">' in html_part

    pending = subscription_of(site.database, "new.reader@example.com")
    assert pending.status == "pending"
    url = site.url(link)
    for _ in range(2):  # a mail scanner fetching the link confirms nothing
        page = site.client.get(url)
        assert page.status_code == 200 and "Confirm my subscription" in page.text
    site.client.head(url)
    assert subscription_of(site.database, "new.reader@example.com").status == "pending"
    report = dispatch(site.config, site.database, signer, AT + timedelta(days=1))
    assert report.dispatched == 3  # the three imported readers, not the pending one

    done = site.client.post(
        url, data={"form_token": form_token(page.text)}, headers={"Origin": site.origin}
    )
    assert done.status_code == 200 and "You are subscribed to The Daily" in done.text
    active = subscription_of(site.database, "new.reader@example.com")
    assert active.status == "active" and active.consent_source == "double opt-in (web:subscribe)"
    assert active.consent_at == site.clock.now
    again = site.client.post(url, data={"form_token": form_token(page.text)})
    assert again.status_code == 200 and "You are subscribed" in again.text
    report = dispatch(
        site.config, site.database, signer, AT + timedelta(days=1, minutes=1), force=True
    )
    with site.database.transaction() as session:
        assert session.scalar(select(Edition).where(Edition.subscriber_id == active.subscriber_id))


def test_confirmation_expires(site: Site) -> None:
    assert sign_up(site, "late@example.com")[0] == 200
    url = site.url(links_in(message_to(site.config, "late@example.com"))["c"])
    site.clock.now += timedelta(hours=48, minutes=1)
    page = site.client.get(url)
    assert page.status_code == 410 and "expired" in page.text
    token = FormGuard([KEY], site.config.site.base_url).issue(path_of(url), site.clock.now)
    assert site.client.post(url, data={"form_token": token}).status_code == 410
    assert subscription_of(site.database, "late@example.com").status == "pending"


def test_signups_are_limited_per_address_and_per_client(tmp_path: Path, signer: Signer) -> None:
    config = make_project(tmp_path, web={"signups_per_client": 5, "client_window": "1h"})
    database = open_database(config.database)
    clock = Clock()
    try:
        with serve_site(config, database, [KEY], clock) as site:
            assert [sign_up(site, "same@example.com")[0] for _ in range(4)] == [200, 200, 200, 429]
            wait_for_drain(database)
            assert len(confirmations(config)) == 3
            assert [sign_up(site, f"r{n}@example.com")[0] for n in range(3)] == [200, 200, 429]
            page = site.client.get(SUBSCRIBE)
            refused = site.client.post(
                SUBSCRIBE,
                data={
                    "form_token": form_token(page.text),
                    "email": "r9@example.com",
                    "briefing": "daily",
                },
            )
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        with serve_site(
            config, database, [KEY], clock
        ) as restarted:  # the limits outlive a restart
            assert sign_up(restarted, "r3@example.com")[0] == 429
            clock.now += timedelta(hours=1, minutes=1)
            assert sign_up(restarted, "r3@example.com")[0] == 200
            assert sign_up(restarted, "same@example.com")[0] == 429  # per address: 24 hours
            wait_for_drain(database)
        assert len(confirmations(config)) == 6
    finally:
        database.dispose()


def test_forms_refuse_cross_site_posts(site: Site) -> None:
    status, text = sign_up(site, "target@example.com", Origin="https://evil.example")
    assert status == 403 and "Nothing was changed" in text
    response = site.client.post(
        SUBSCRIBE, data={"email": "target@example.com", "briefing": "daily"}
    )
    assert response.status_code == 403
    wait_for_drain(site.database)
    assert confirmations(site.config) == []
    bad = site.client.post(
        SUBSCRIBE,
        data={
            "form_token": form_token(site.client.get(SUBSCRIBE).text),
            "email": "not an address",
            "briefing": "daily",
        },
    )
    assert bad.status_code == 400 and "Enter an email address" in bad.text
    assert 'aria-describedby="email-error"' in bad.text


def test_active_reader_gets_the_same_answer_and_no_mail(site: Site) -> None:
    before = len(outbox(site.config))
    status, text = sign_up(site, "ann@example.com")
    assert status == 200 and "Check your inbox" in text
    wait_for_drain(site.database)
    assert len(outbox(site.config)) == before


def test_only_a_fresh_confirmed_opt_in_brings_back_a_suppressed_address(site: Site) -> None:
    unsubscribe = links_in(message_to(site.config, "ann@example.com"))["u"]
    site.client.post(site.url(unsubscribe), data={"List-Unsubscribe": "One-Click"})
    assert sign_up(site, "ann@example.com")[0] == 200
    wait_for_drain(site.database)
    link = links_in(confirmations(site.config)[0])["c"]
    csv = site.config.base_dir / "subs.csv"
    report = import_subscribers(site.config, site.database, csv, site.clock.now)
    assert any("ann@example.com" in line for line in report.refused)
    assert subscription_of(site.database, "ann@example.com").status == "unsubscribed"

    page = site.client.get(site.url(link))
    site.client.post(site.url(link), data={"form_token": form_token(page.text)})
    assert subscription_of(site.database, "ann@example.com").status == "active"
    with site.database.transaction() as session:
        assert suppression_for(session, "ann@example.com", "daily") is None
