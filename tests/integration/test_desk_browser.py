"""The desk in a real headless Chromium: log in, see the briefings, log out; no CSP errors.

Set ``BRIEFING_SCREENSHOTS`` to a folder (``docs/images``) to keep the
screenshots docs/desk.md shows; otherwise they go to a temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from briefing.audience.imports import import_subscribers
from briefing.domain.states import Role
from briefing.store import open_database
from tests.support.browser import chromium, playwright_or_skip
from tests.support.desk import DESK, PASSWORD, START, DeskSite, serve_desk
from tests.support.factories import make_project
from tests.support.web import SUBSCRIBERS

sync_api = playwright_or_skip()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[DeskSite]:
    config = make_project(tmp_path, world=1, sport=1, wire=1)
    database = open_database(config.database)
    subscribers = config.base_dir / "subscribers.csv"
    subscribers.write_text(SUBSCRIBERS, encoding="utf-8")
    import_subscribers(config, database, subscribers, START)
    with serve_desk(config, database) as served:
        yield served
    database.dispose()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("BRIEFING_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def tab(site: DeskSite) -> Iterator[Any]:
    with chromium(sync_api) as browser:
        context = browser.new_context(viewport={"width": 900, "height": 600})
        tab = context.new_page()
        problems: list[str] = []
        tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda error: problems.append(str(error)))
        yield tab
        context.close()
    # A CSP violation or script error shows up here; the refused login's 400 is expected.
    expected = "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    assert [problem for problem in problems if problem != expected] == [], problems


def test_log_in_see_the_briefings_and_log_out(site: DeskSite, tab: Any, shots: Path) -> None:
    site.add("ann", Role.EDITOR)
    origin = str(site.client.base_url).rstrip("/")
    tab.goto(origin + DESK + "activity")
    assert tab.url.startswith(origin + DESK + "login?next=")
    tab.screenshot(path=str(shots / "desk-login.png"))
    tab.get_by_label("Name").fill("ann")
    tab.get_by_label("Password").fill("not the password!")
    tab.get_by_role("button", name="Log in").click()
    assert "do not match an account" in tab.get_by_role("alert").inner_text()
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    assert tab.get_by_role("heading", level=1).inner_text() == "Activity"  # back where it asked
    tab.get_by_role("link", name="Briefings").click()
    assert tab.get_by_role("heading", level=1).inner_text() == "The desk"
    assert tab.get_by_role("heading", name="The Daily (daily)").is_visible()
    assert tab.get_by_text("ann (editor)").is_visible()
    assert "3 subscribers with an upcoming edition" in tab.locator("main").inner_text()
    tab.screenshot(path=str(shots / "desk-home.png"), full_page=True)
    cookies = {cookie["name"]: cookie for cookie in tab.context.cookies()}
    assert cookies["briefing_desk"]["httpOnly"] and cookies["briefing_desk"]["sameSite"] == "Strict"
    assert tab.evaluate("document.cookie") == ""  # scripts cannot read the session
    tab.get_by_role("button", name="Log out").click()
    assert "You are logged out." in tab.get_by_role("status").inner_text()
    tab.goto(origin + DESK)
    assert tab.url.startswith(origin + DESK + "login")
