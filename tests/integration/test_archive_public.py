"""The public archive on a real server: off by default, the list, an issue with inert links, the feed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import feedparser
import httpx
import pytest

from briefing.config import Config
from briefing.domain.states import SubscriptionState
from briefing.store import Database
from briefing.web import create_app
from tests.support.archive import DAY, READERS, SCRIPTED_TITLE, sent_archive
from tests.support.factories import KEY
from tests.support.web import Clock, live_server, messages_to, parse, subscription_of

BASE = "/b/archive/daily/"
ISSUE = BASE + DAY.isoformat()
FEED = BASE + "feed.atom"
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[tuple[Config, Database]]:
    config, database = sent_archive(tmp_path, public=True)
    yield config, database
    database.dispose()


@pytest.fixture
def client(archive: tuple[Config, Database]) -> Iterator[httpx.Client]:
    config, database = archive
    app = create_app(config, database, [KEY], clock=Clock(), drain_interval=None, register=False)
    with live_server(app) as origin, httpx.Client(base_url=origin, timeout=10) as served:
        yield served


def test_the_archive_is_off_unless_configured_and_says_nothing_about_why(tmp_path: Path) -> None:
    config, database = sent_archive(tmp_path, public=False)
    app = create_app(config, database, [KEY], clock=Clock(), drain_interval=None, register=False)
    with live_server(app) as origin, httpx.Client(base_url=origin, timeout=10) as client:
        unknown = client.get("/b/archive/nosuch/")
        for path in (BASE, ISSUE, FEED):
            response = client.get(path)
            assert response.status_code == 404, path
            # The same answer as for a briefing that does not exist: nothing leaks.
            assert response.text == unknown.text
            assert "The Daily" not in response.text
    database.dispose()


def test_the_list_links_every_issue_and_the_feed(client: httpx.Client) -> None:
    response = client.get(BASE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "public, max-age=300"
    assert f'<a href="{ISSUE}">' in response.text
    assert "26 November 2026" in response.text and "The Daily: " in response.text
    assert re.search(
        r'<link rel="alternate" type="application/atom\+xml" [^>]*href="/b/archive/daily/feed\.atom"',
        response.text,
    )
    # A conditional GET of the same page is answered 304, without a body.
    again = client.get(BASE, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    # A bad page parameter is a 404, not an error.
    assert client.get(BASE + "?before=yesterday").status_code == 404
    assert "No issue yet" in client.get(BASE + "?before=2026-01-01").text


def test_an_issue_is_the_default_sections_copy_with_inert_links_and_nobody_in_it(
    client: httpx.Client, archive: tuple[Config, Database]
) -> None:
    config, database = archive
    response = client.get(ISSUE)
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'none'" in policy and "sandbox" in policy
    assert "allow-scripts" not in policy and "allow-same-origin" not in policy
    page = response.text
    # The default sections' variant (World, Business, Sport), not Bob's World-only one.
    assert "BUSINESS" in page.upper() and "SPORT" in page.upper()
    assert "All past issues" in page
    for address, name in READERS.items():
        assert address not in page and name not in page
        assert address.split("@")[0] not in page
    # Ann's own message carries her real links; the archive copy carries none of them.
    (ann_message,) = messages_to(config, "ann.archive@example.com")
    ann_html = parse(ann_message).get_body(("html",)).get_content()  # type: ignore[union-attr]
    ann_links = set(re.findall(r"/b/[upe]/[A-Za-z0-9_-]{32}", ann_html))
    assert ann_links and not any(link in page for link in ann_links)
    # Follow the archived copy's unsubscribe link: it acts on nobody.
    links = re.findall(r"https://news\.example\.org(/b/u/[A-Za-z0-9_-]{32})", page)
    assert links
    confirm = client.get(links[0])
    assert confirm.status_code == 404 and "act on nobody" in confirm.text
    one_click = client.post(
        links[0],
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 404
    preferences = re.findall(r"https://news\.example\.org(/b/p/[A-Za-z0-9_-]{32})", page)
    assert preferences and client.get(preferences[0]).status_code == 404
    for address in READERS:
        assert subscription_of(database, address).status == SubscriptionState.ACTIVE


def test_a_day_without_an_issue_says_so(client: httpx.Client) -> None:
    response = client.get(BASE + "2026-11-25")
    assert response.status_code == 404
    assert "No issue of The Daily for 25 November 2026" in response.text
    assert client.get(BASE + "2026-13-45").status_code == 404
    assert client.get(BASE + "yesterday").status_code == 404


def test_the_feed_is_atom_with_the_latest_issues(client: httpx.Client) -> None:
    response = client.get(FEED)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=300"
    root = ElementTree.fromstring(response.content)  # well-formed XML
    assert root.tag == f"{ATOM}feed"
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "The Daily · Test Gazette"
    (entry,) = parsed.entries
    page = client.get(ISSUE).text
    subject = re.search(r"<title>([^<]+)</title>", page)
    assert subject and entry.title == subject.group(1)
    assert entry.link == "https://news.example.org" + ISSUE
    assert entry.id == "https://news.example.org" + ISSUE
    assert entry.updated == "2026-11-26T07:00:00Z"
    assert SCRIPTED_TITLE in entry.content[0].value
    assert entry.content[0].type == "text/plain"
    for address, name in READERS.items():
        assert address not in response.text and name not in response.text
    again = client.get(FEED, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
