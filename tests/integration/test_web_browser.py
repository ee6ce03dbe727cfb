"""The pages in a real headless Chromium: labels work, forms post from the page, no CSP errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from briefing.config import Config
from briefing.domain.tokens import Signer
from briefing.store import Database
from tests.support.browser import chromium, playwright_or_skip
from tests.support.factories import KEY
from tests.support.web import Site, links_in, message_to, send_editions, serve_site, subscription_of

sync_api = playwright_or_skip()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(sync_api) as launched:
        yield launched


@pytest.fixture
def site(project: Config, database: Database, signer: Signer) -> Iterator[Site]:
    send_editions(project, database, signer)
    with serve_site(project, database, [KEY]) as served:
        yield served


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    yield tab
    context.close()
    assert problems == [], problems  # a CSP violation or script error shows up here


def test_preferences_then_unsubscribe_in_a_browser(site: Site, tab: Any) -> None:
    links = links_in(message_to(site.config, "bob@example.com"))
    tab.goto(site.url(links["p"]))
    assert tab.locator("html").get_attribute("lang") == "en"
    assert tab.get_by_role("heading", level=1).inner_text() == "The Daily: your settings"
    tab.get_by_label("World").uncheck()
    tab.get_by_label("Business").check()
    tab.get_by_label("Send time").fill("06:20")
    tab.get_by_label("Timezone").select_option("Asia/Tokyo")
    tab.get_by_label("Monday to Friday").check()
    tab.get_by_role("button", name="Save preferences").click()
    status = tab.get_by_role("status")
    assert "Saved" in status.inner_text()
    bob = subscription_of(site.database, "bob@example.com")
    assert (bob.sections, bob.send_time, bob.timezone, bob.frequency) == (
        ["business", "sport"],
        "06:20",
        "Asia/Tokyo",
        "weekdays",
    )

    tab.goto(site.url(links["u"]))
    assert subscription_of(site.database, "bob@example.com").status == "active"
    tab.get_by_role("button", name="Unsubscribe from The Daily").click()
    heading = tab.get_by_role("heading", level=1).inner_text()
    assert heading == "You are unsubscribed from The Daily"
    assert subscription_of(site.database, "bob@example.com").status == "unsubscribed"
    assert tab.context.cookies() == []


def test_sign_up_and_confirm_in_a_browser(site: Site, tab: Any) -> None:
    tab.goto(site.origin + "/b/subscribe")
    tab.get_by_label("Email address").fill("reader@example.net")
    tab.get_by_label("Your name").fill("Reader")
    tab.get_by_role("button", name="Subscribe").click()
    assert tab.get_by_role("heading", level=1).inner_text() == "Check your inbox"
    link = links_in(message_to(site.config, "reader@example.net"))["c"]
    tab.goto(site.url(link))
    assert subscription_of(site.database, "reader@example.net").status == "pending"
    tab.get_by_role("button", name="Confirm my subscription").click()
    heading = tab.get_by_role("heading", level=1).inner_text()
    assert heading == "You are subscribed to The Daily"
    assert subscription_of(site.database, "reader@example.net").status == "active"
