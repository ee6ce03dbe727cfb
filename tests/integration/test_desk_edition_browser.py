"""Shape and approve an issue in a real headless Chromium; `briefing serve` sends exactly that.

The briefing waits for an approval. A `briefing serve` process (1-second
intervals, real time) holds the issue while an editor, in the browser, pins
one story, drops another, rewrites a summary and approves; then it delivers
that edition, to every subscriber due, and nothing before the approval.

Set ``BRIEFING_SCREENSHOTS`` to a folder (``docs/images``) to keep the
screenshot docs/editing.md shows; otherwise it goes to a temporary folder.
"""

from __future__ import annotations

import mailbox
import os
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from briefing.config import Config
from briefing.domain.states import Role
from briefing.editions.overrides import overrides_of
from briefing.ingest import ingest
from briefing.store import open_database
from tests.integration.test_serve import FAST, WAIT, Serve
from tests.support.browser import chromium, playwright_or_skip
from tests.support.desk import DESK, PASSWORD, DeskSite, serve_desk
from tests.support.factories import WORLD_STORIES, config_dict, make_project, subscribe
from tests.support.message_checks import check_message

sync_api = playwright_or_skip()

PINNED = WORLD_STORIES[2][0]  # third newest of the world section: pinned to its top
DROPPED = WORLD_STORIES[0][0]  # the newest: dropped
EDITED = WORLD_STORIES[1][0]  # its summary rewritten
SUMMARY = "An editor's summary: two passes stay shut until the ploughs get through."
BASE_URL = "https://news.example.org/b"


def local_zone() -> ZoneInfo:
    """Return a timezone whose clock is well away from midnight, so the issue date holds."""
    for name in ("Europe/London", "America/New_York", "Asia/Tokyo"):
        zone = ZoneInfo(name)
        local = datetime.now(zone)
        if 1 <= local.hour <= 21:
            return zone
    raise AssertionError("one of three zones 5 and 9 hours apart is always in daytime")


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[DeskSite, date, Serve]]:
    """The project with approval required, three subscribers due now, serve running, the desk."""
    briefings = config_dict()["briefings"]
    briefings["daily"]["approval"] = "required"
    config = make_project(tmp_path, world=4, briefings=briefings, scheduler=FAST)
    database = open_database(config.database)
    zone = local_zone()
    now = datetime.now(zone)
    ingest(config, database, datetime.now(UTC))
    subscribe(
        config,
        database,
        [
            f"{email},,daily,{sections},{zone.key},{now:%H:%M},daily"
            for email, sections in (
                ("one@example.com", "world;business"),
                ("two@example.com", "world;business"),
                ("three@example.com", "world"),
            )
        ],
        datetime.now(UTC) - timedelta(hours=1),  # imported before today's send time
    )
    serve = Serve(config, tmp_path / "serve.log")
    try:
        with serve_desk(config, database) as site:
            site.clock.now = datetime.now(UTC)
            yield site, now.date(), serve
    finally:
        serve.kill()
        database.dispose()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("BRIEFING_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium(sync_api) as launched:
        yield launched


def open_tab(browser: Any, problems: list[str], width: int = 1000) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900})
    tab = context.new_page()
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    return tab


def log_in(tab: Any, origin: str, page: str, name: str) -> None:
    tab.goto(origin + page)
    assert tab.url.startswith(origin + DESK + "login")
    tab.get_by_label("Name").fill(name)
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Log in").click()


def outbox(config: Config) -> dict[str, str]:
    """Return each delivered message's text part by its recipient."""
    box = mailbox.Maildir(str(config.outbox_path), create=True)
    found: dict[str, str] = {}
    for key in box.iterkeys():
        message, text, _html = check_message(box.get_bytes(key), BASE_URL)
        assert str(message["To"]) not in found, f"two messages to {message['To']}"
        found[str(message["To"])] = text
    return found


def world_of(text: str) -> str:
    """Return the World section of a digest's text part."""
    world = text.split("WORLD", 1)[1]
    return world.split("BUSINESS", 1)[0]


def test_shape_and_approve_in_the_browser_then_serve_sends_exactly_that(
    held: tuple[DeskSite, date, Serve], browser: Any, shots: Path
) -> None:
    site, day, serve = held
    site.add("ann", Role.EDITOR)
    origin = str(site.client.base_url).rstrip("/")
    problems: list[str] = []
    tab = open_tab(browser, problems)

    # serve holds the issue: nothing is cut, nothing is sent.
    serve.wait_for(rf"held for approval: daily {day.isoformat()}, 3 subscription\(s\) waiting")
    log_in(tab, origin, DESK, "ann")
    tab.get_by_role("link", name="Coming edition of The Daily").click()
    assert tab.url == f"{origin}{DESK}edition/daily/{day.isoformat()}"
    main = tab.locator("main")
    assert "Held for approval: 3 subscription(s) waiting" in main.inner_text()
    assert "If cut now: World, Business (2 subscriptions)" in main.inner_text()
    assert "If cut now: World (1 subscription)" in main.inner_text()

    tab.get_by_role("button", name=f"Pin “{PINNED}”").first.click()
    assert "Saved: pin of" in tab.get_by_role("status").inner_text()
    tab.get_by_role("button", name=f"Drop “{DROPPED}”").first.click()
    assert "Saved: drop of" in tab.get_by_role("status").inner_text()
    edited = tab.locator("li", has=tab.get_by_role("link", name=EDITED)).first
    edited.get_by_text("Edit summary").click()
    edited.get_by_label("New summary").fill(SUMMARY)
    edited.get_by_role("button", name="Save summary").click()
    assert "Saved: summary of" in tab.get_by_role("status").inner_text()

    text = main.inner_text()
    assert text.count("pinned #1 by ann") == 2  # in both variants
    assert "Overrides (3)" in text and SUMMARY in text
    world = text.split("If cut now: World (1 subscription)", 1)[1]
    assert (
        world.index(PINNED) < world.index(EDITED) and DROPPED not in world.split("Already cut")[0]
    )
    # The approval, the overrides and the first variant: small enough for the docs.
    top = {"x": 0, "y": 0, "width": 1000, "height": 1350}
    tab.screenshot(path=str(shots / "desk-edition.png"), full_page=True, clip=top)

    # Still held: serve said so again after the edits, and nothing was cut or sent.
    held_so_far = serve.text().count("held for approval")
    serve.wait_for(r"held for approval: daily", count=held_so_far + 1)
    assert "No variant of this issue is cut yet" in main.inner_text()
    assert outbox(site.config) == {}

    tab.get_by_label("I checked this issue").check()
    tab.get_by_role("button", name="Approve").click()
    assert "Approved: the next dispatch sends what is due" in tab.get_by_role("status").inner_text()
    assert "Approved by ann" in main.inner_text()

    deadline = time.monotonic() + WAIT
    while len(sent := outbox(site.config)) < 3:
        assert time.monotonic() < deadline, f"not delivered:\n{serve.text()}"
        time.sleep(0.2)
    time.sleep(1.5)  # a later tick sends nothing more
    sent = outbox(site.config)
    assert sorted(sent) == ["one@example.com", "three@example.com", "two@example.com"]
    for address, text in sent.items():
        world = world_of(text)
        assert world.index(PINNED) < min(
            world.index(title) for title, _ in WORLD_STORIES[1:4] if title != PINNED
        ), address
        assert DROPPED not in text, address
        assert " ".join(SUMMARY.split()) in " ".join(world.split()), address
        assert ("BUSINESS" in text) == (address != "three@example.com")
    assert serve.stop() == 0
    assert problems == [], problems


def test_the_browser_is_refused_without_a_session_or_the_role(
    held: tuple[DeskSite, date, Serve], browser: Any
) -> None:
    site, day, _serve = held
    site.add("ann", Role.EDITOR)
    origin = str(site.client.base_url).rstrip("/")
    page = f"{DESK}edition/daily/{day.isoformat()}"
    problems: list[str] = []

    anonymous = open_tab(browser, problems)
    anonymous.goto(origin + page)
    assert anonymous.url.startswith(origin + DESK + "login?next=")
    assert anonymous.get_by_role("heading", level=1).inner_text().endswith("desk login")

    tab = open_tab(browser, problems)
    log_in(tab, origin, page, "ann")
    assert tab.url == origin + page  # back on the edition after the login
    tab.goto(origin + DESK + "ops/users")
    assert tab.get_by_role("heading", level=1).inner_text() == "Not for your role"
    # A second tab of the same browser keeps the edition open across the logout.
    other = tab.context.new_page()
    other.goto(origin + page)
    tab.get_by_role("button", name="Log out").click()
    tab.goto(origin + page)
    assert tab.url.startswith(origin + DESK + "login?next=")
    other.get_by_role("button", name="Pin").first.click()  # the session has ended
    assert other.url.startswith(origin + DESK + "login")
    assert overrides_of(site.config, site.database, "daily", day) == []
    # The ops page's 403 is the one error a console may show.
    forbidden = "Failed to load resource: the server responded with a status of 403 (Forbidden)"
    assert [problem for problem in problems if problem != forbidden] == [], problems
