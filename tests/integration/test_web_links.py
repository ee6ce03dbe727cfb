"""The links in a real message, on a real server: one-click unsubscribe, browser copy, tokens."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from briefing.audience.imports import import_subscribers
from briefing.audience.lifecycle import remove_subscriber
from briefing.config import Config
from briefing.domain.tokens import Purpose, Signer
from briefing.editions.dispatch import dispatch
from briefing.editions.preview import preview
from briefing.errors import BriefingError
from briefing.store import Database
from briefing.store.schema import Edition, SubscriptionEvent, Variant
from briefing.store.suppressions import suppression_for
from briefing.web.server import bind
from tests.support.factories import KEY, SPORT_STORIES, WIRE_STORIES, WORLD_STORIES, story
from tests.support.web import (
    AT,
    Site,
    links_in,
    message_to,
    send_editions,
    serve_site,
    subscription_of,
)

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def site(project: Config, database: Database, signer: Signer) -> Iterator[Site]:
    send_editions(project, database, signer)
    with serve_site(project, database, [KEY]) as served:
        yield served


def events(database: Database, subscription_id: int) -> list[tuple[str | None, str, str]]:
    with database.transaction() as session:
        rows = session.scalars(
            select(SubscriptionEvent)
            .where(SubscriptionEvent.subscription_id == subscription_id)
            .order_by(SubscriptionEvent.id)
        )
        return [(e.status_from, e.status_to, e.source) for e in rows]


def assert_plain_page(response_text: str) -> None:
    assert "Traceback" not in response_text and 'File "' not in response_text
    assert response_text.lstrip().startswith("<!doctype html>")


def test_one_click_unsubscribe_from_a_real_message(site: Site) -> None:
    link = links_in(message_to(site.config, "ann@example.com"))["u"]
    assert link.startswith(site.config.site.base_url + "/u/")
    before = subscription_of(site.database, "ann@example.com")

    page = site.client.get(site.url(link))
    assert page.status_code == 200
    assert "Unsubscribe from The Daily" in page.text and "a…@example.com" in page.text
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert "set-cookie" not in page.headers
    assert page.headers["referrer-policy"] == "same-origin"
    # One script only, allowed by the hash of the very bytes inlined in the page.
    policy = page.headers["content-security-policy"]
    allowed = re.search(r"script-src 'sha256-([A-Za-z0-9+/=]+)';", policy)
    assert allowed and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    scripts = re.findall(r"<script>(.*?)</script>", page.text, flags=re.DOTALL)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert allowed.group(1) == digest
    site.client.head(site.url(link))
    assert subscription_of(site.database, "ann@example.com").status == "active"

    done = site.client.post(site.url(link), data=ONE_CLICK, follow_redirects=False)
    assert done.status_code == 200 and not done.history
    assert "set-cookie" not in done.headers and "location" not in done.headers
    assert "You are unsubscribed from The Daily" in done.text
    after = subscription_of(site.database, "ann@example.com")
    assert after.status == "unsubscribed" and after.status_source == "web:one-click"
    with site.database.transaction() as session:
        hit = suppression_for(session, "ann@example.com", "daily")
        assert hit is not None and hit.reason == "unsubscribed"

    again = site.client.post(site.url(link), data=ONE_CLICK)
    assert again.status_code == 200 and "You are unsubscribed" in again.text
    assert events(site.database, before.id) == [
        (None, "active", "import:subs.csv"),
        ("active", "unsubscribed", "web:one-click"),
    ]
    assert subscription_of(site.database, "bob@example.com").status == "active"


def test_multipart_one_click_and_a_body_without_it(site: Site) -> None:
    link = site.url(links_in(message_to(site.config, "bob@example.com"))["u"])
    bare = site.client.post(link, data={"something": "else"})
    assert bare.status_code == 400 and "List-Unsubscribe=One-Click" in bare.text
    assert subscription_of(site.database, "bob@example.com").status == "active"

    done = site.client.post(link, files={"List-Unsubscribe": (None, "One-Click")})
    assert done.status_code == 200, done.text
    assert subscription_of(site.database, "bob@example.com").status == "unsubscribed"


def test_unsubscribed_reader_is_left_out_of_the_next_edition_and_the_import(
    site: Site, signer: Signer
) -> None:
    link = links_in(message_to(site.config, "cy@example.com"))["u"]
    assert site.client.post(site.url(link), data=ONE_CLICK).status_code == 200
    report = dispatch(site.config, site.database, signer, AT + timedelta(days=1))
    with site.database.transaction() as session:
        dispatched = session.scalars(
            select(Edition.subscriber_id).where(
                Edition.issue_date == (AT + timedelta(days=1)).date()
            )
        ).all()
    cy = subscription_of(site.database, "cy@example.com")
    assert report.dispatched == 2 and cy.subscriber_id not in dispatched
    reimport = import_subscribers(
        site.config, site.database, site.config.base_dir / "subs.csv", AT + timedelta(days=1)
    )
    assert reimport.created == 0 and any("cy@example.com" in line for line in reimport.refused)
    assert subscription_of(site.database, "cy@example.com").status == "unsubscribed"


def test_one_click_for_a_removed_subscriber_succeeds(site: Site) -> None:
    link = site.url(links_in(message_to(site.config, "bob@example.com"))["u"])
    with site.database.transaction() as session:
        remove_subscriber(session, "bob@example.com", source="test", now=AT)
    page = site.client.get(link)
    assert page.status_code == 200, page.text
    assert "You receive nothing from us" in page.text and "nothing is sent to it" in page.text
    assert "bob@example.com" not in page.text
    done = site.client.post(link, data=ONE_CLICK, follow_redirects=False)
    assert done.status_code == 200 and not done.history
    assert "You are unsubscribed" in done.text
    assert_plain_page(done.text)
    again = site.client.post(link, data=ONE_CLICK, follow_redirects=False)
    assert again.status_code == 200


def test_bad_tokens_get_a_plain_404_and_act_on_nobody(site: Site, tmp_path: object) -> None:
    link = site.url(links_in(message_to(site.config, "ann@example.com"))["u"])
    token = link.rsplit("/", 1)[1]
    tampered = link[:-1] + ("A" if token[-1] != "A" else "B")
    unknown = link.rsplit("/", 1)[0] + "/" + site.signer.sign(Purpose.UNSUBSCRIBE, 999)
    wrong_purpose = link.rsplit("/", 1)[0] + "/" + site.signer.sign(Purpose.VIEW, 1)
    short = link[:-5]
    for url in (tampered, wrong_purpose, short, link + "AAAA"):
        for response in (site.client.get(url), site.client.post(url, data=ONE_CLICK)):
            assert response.status_code == 404, (url, response.status_code)
            assert_plain_page(response.text)
    refused = site.client.get(tampered).text
    assert "This link does not work" in refused and "It is not valid." in refused
    assert "does not work: this link" not in refused
    # A signed link naming no subscription (removed, or never there) acts as done (RFC 8058).
    assert site.client.post(unknown, data=ONE_CLICK).status_code == 200
    assert "You receive nothing from us" in site.client.get(unknown).text

    result = preview(
        site.config,
        site.database,
        site.signer,
        briefing="daily",
        at=AT,
        out=site.config.base_dir / "preview",
        subscriber="ann@example.com",
    )
    inert = links_in(result.eml.read_bytes())
    for route in ("u", "p", "e"):
        response = (
            site.client.post(site.url(inert[route]), data=ONE_CLICK)
            if route == "u"
            else (site.client.get(site.url(inert[route])))
        )
        assert response.status_code == 404 and "preview" in response.text
        assert_plain_page(response.text)
    for email in ("ann@example.com", "bob@example.com", "cy@example.com"):
        assert subscription_of(site.database, email).status == "active"


def test_unknown_pages_and_methods_are_plain(site: Site) -> None:
    prefix = "/b"  # base_url https://news.example.org/b
    for method, path, status in (
        ("GET", "/", 404),
        ("GET", f"{prefix}/nowhere", 404),
        ("GET", "/u/x", 404),
        ("PUT", f"{prefix}/subscribe", 405),
        ("DELETE", f"{prefix}/u/{'A' * 32}", 405),
    ):
        response = site.client.request(method, path)
        assert response.status_code == status, (method, path)
        assert_plain_page(response.text)
    huge = site.client.post(
        f"{prefix}/subscribe",
        content=b"x=" + b"a" * 200_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert huge.status_code == 413


def test_key_rotation_keeps_old_links_working(
    project: Config, database: Database, signer: Signer
) -> None:
    send_editions(project, database, signer)
    link = links_in(message_to(project, "ann@example.com"))["u"]
    with serve_site(project, database, [b"new-key"]) as only_new:
        refused = only_new.client.post(only_new.url(link), data=ONE_CLICK)
        assert refused.status_code == 404
    assert subscription_of(database, "ann@example.com").status == "active"
    with serve_site(project, database, [b"new-key", KEY]) as rotating:
        assert rotating.client.post(rotating.url(link), data=ONE_CLICK).status_code == 200
    assert subscription_of(database, "ann@example.com").status == "unsubscribed"


def test_view_in_browser_serves_that_readers_edition(site: Site) -> None:
    raw = message_to(site.config, "bob@example.com")
    links = links_in(raw)
    page = site.client.get(site.url(links["e"]))
    assert page.status_code == 200
    world, sport = story(WORLD_STORIES, 0)[0], story(SPORT_STORIES, 0)[0]
    assert world in page.text and sport in page.text
    assert links["u"] in page.text and links["p"] in page.text and links["e"] in page.text
    with site.database.transaction() as session:
        variants = session.scalars(select(Variant)).all()
        placeholders = [value for variant in variants for value in variant.placeholders.values()]
    assert len(placeholders) == 9 and not any(value in page.text for value in placeholders)
    assert "script-src" not in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    other = site.client.get(site.url(links_in(message_to(site.config, "cy@example.com"))["e"]))
    assert story(WIRE_STORIES, 0)[0] in other.text and sport not in other.text


def test_a_busy_port_is_a_plain_error() -> None:
    first = bind("127.0.0.1", 0)
    try:
        with pytest.raises(BriefingError, match=r"cannot listen on 127\.0\.0\.1") as caught:
            bind("127.0.0.1", first.getsockname()[1])
        assert caught.value.hint and "--port" in caught.value.hint
    finally:
        first.close()
