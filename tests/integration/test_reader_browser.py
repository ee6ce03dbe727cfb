"""Reader pages in a real headless Chromium at phone width: sign-up, settings, self-service.

Set ``BRIEFING_SCREENSHOTS`` to a folder (``docs/images``) to keep the
screenshots the docs show; otherwise they go to a temporary folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import chromium, playwright_or_skip
from tests.support.readers import link_in, mail_with, reader_site
from tests.support.web import Site, links_in, message_to, subscription_of

PHONE = {"width": 375, "height": 740}

sync_api = playwright_or_skip()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(sync_api) as launched:
        yield launched


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with reader_site(tmp_path) as served:
        yield served


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("BRIEFING_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_tab(browser: Any, **options: Any) -> tuple[Any, list[str]]:
    context = browser.new_context(viewport=PHONE, accept_downloads=True, **options)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    return tab, problems


def heading(tab: Any) -> str:
    return str(tab.get_by_role("heading", level=1).inner_text())


def test_sign_up_to_two_briefings_in_the_browsers_timezone(
    browser: Any, site: Site, shots: Path
) -> None:
    tab, problems = open_tab(browser, timezone_id="Australia/Sydney")
    tab.goto(site.origin + "/b/subscribe")
    assert tab.get_by_label("Your timezone").input_value() == "Australia/Sydney"  # the script
    tab.get_by_label("Email address").fill("kim@example.net")
    tab.get_by_label("The Weekly").check()
    tab.screenshot(path=str(shots / "signup.png"), full_page=True)
    tab.get_by_role("button", name="Subscribe").click()
    assert heading(tab) == "Check your inbox"
    assert "The Daily arrives Friday 27 November at 07:00 (Australia/Sydney)" in tab.content()
    tab.screenshot(path=str(shots / "check-inbox.png"), full_page=True)

    tab.goto(site.url(links_in(message_to(site.config, "kim@example.net"))["c"]))
    assert heading(tab) == "Confirm your subscription to The Daily and The Weekly"
    tab.get_by_role("button", name="Confirm my subscription").click()
    assert heading(tab) == "You are subscribed to The Daily and The Weekly"
    tab.screenshot(path=str(shots / "subscribed.png"), full_page=True)
    for briefing in ("daily", "weekly"):
        found = subscription_of(site.database, "kim@example.net", briefing)
        assert (found.status, found.timezone) == ("active", "Australia/Sydney")
    tab.context.close()
    assert problems == [], problems  # a CSP violation or script error shows up here


def test_a_browser_naming_an_old_alias_gets_the_zone_tab_name(browser: Any, site: Site) -> None:
    tab, problems = open_tab(browser, timezone_id="Asia/Kolkata")
    tab.goto(site.origin + "/b/subscribe")
    assert tab.get_by_label("Your timezone").input_value() == "Asia/Kolkata"
    tab.context.close()
    assert problems == []


def test_the_form_works_without_the_script(browser: Any, site: Site) -> None:
    tab, problems = open_tab(browser, timezone_id="Asia/Tokyo", java_script_enabled=False)
    tab.goto(site.origin + "/b/subscribe")
    assert tab.get_by_label("Your timezone").input_value() == "Europe/London"
    tab.get_by_label("Email address").fill("lee@example.net")
    tab.get_by_label("Send time").fill("06:30")
    tab.get_by_role("button", name="Subscribe").click()
    assert heading(tab) == "Check your inbox"
    found = subscription_of(site.database, "lee@example.net")
    assert (found.timezone, found.send_time) == ("Europe/London", "06:30")
    tab.context.close()
    assert problems == []


def test_the_weekly_day_menu_follows_the_frequency(browser: Any, site: Site, shots: Path) -> None:
    tab, problems = open_tab(browser)
    tab.goto(site.url(links_in(message_to(site.config, "bob@example.com"))["p"]))
    weekday = tab.get_by_label("Day of the weekly edition")
    assert weekday.is_disabled()
    tab.get_by_label("Once a week, on").check()
    assert weekday.is_enabled()
    weekday.select_option("fri")
    tab.screenshot(path=str(shots / "preferences.png"), full_page=True)
    tab.get_by_role("button", name="Save preferences").click()
    assert subscription_of(site.database, "bob@example.com").frequency == "weekly:fri"
    tab.get_by_label("Every day").check()
    assert weekday.is_disabled()
    tab.context.close()
    assert problems == []


def press(tab: Any, site: Site, link: str, button: str) -> None:
    tab.goto(site.url(link))
    tab.get_by_role("button", name=button).click()


def test_download_move_undo_and_delete_from_the_settings_page(
    browser: Any, site: Site, shots: Path
) -> None:
    tab, problems = open_tab(browser)
    preferences = site.url(links_in(message_to(site.config, "bob@example.com"))["p"])

    tab.goto(preferences)
    tab.get_by_role("button", name="Email me a link to download my data").click()
    assert heading(tab) == "Check your inbox"
    tab.goto(site.url(link_in(mail_with(site.config, "bob@example.com", "Download"), "a")))
    tab.screenshot(path=str(shots / "download.png"), full_page=True)
    with tab.expect_download() as download:
        tab.get_by_role("button", name="Download my data").click()
    data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert data["email"] == "bob@example.com" and data["subscriptions"][0]["briefing"] == "daily"

    tab.goto(preferences)
    tab.get_by_label("New email address").fill("robert@example.org")
    tab.get_by_role("button", name="Change my address").click()
    assert heading(tab) == "Check your inbox"
    allow = link_in(mail_with(site.config, "bob@example.com", "Allow a change"), "a")
    press(tab, site, allow, "Allow the change")
    assert heading(tab) == "Now confirm the new address"
    adopt = link_in(mail_with(site.config, "robert@example.org", "Confirm your new address"), "a")
    press(tab, site, adopt, "Use this address")
    assert heading(tab) == "Your address is changed"
    assert subscription_of(site.database, "robert@example.org").status == "active"
    undo = link_in(mail_with(site.config, "bob@example.com", "Your address for"), "a")
    press(tab, site, undo, "Put my address back")
    assert heading(tab) == "Your address is back"
    assert subscription_of(site.database, "bob@example.com").status == "active"

    tab.goto(preferences)
    tab.get_by_role("button", name="Email me a link to delete my data").click()
    tab.goto(site.url(link_in(mail_with(site.config, "bob@example.com", "Delete"), "a")))
    tab.screenshot(path=str(shots / "delete.png"), full_page=True)
    tab.get_by_role("button", name="Delete everything").click()
    assert heading(tab) == "Your data is deleted"
    assert problems == [], problems
    tab.goto(preferences)  # answered 404, which the console reports
    assert heading(tab) == "This link names no subscription"
    tab.context.close()
