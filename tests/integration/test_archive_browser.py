"""The archive in a real headless Chromium: an issue renders and nothing scripted in it runs.

Set ``BRIEFING_SCREENSHOTS`` to a folder (``docs/images``) to keep the
screenshots docs/desk.md shows; otherwise they go to a temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from briefing.config import Config
from briefing.domain.states import Role
from briefing.store import Database
from briefing.store.schema import Variant
from briefing.web import create_app
from tests.support.archive import DAY, SCRIPTED_TITLE, sent_archive
from tests.support.browser import chromium, playwright_or_skip
from tests.support.desk import DESK, PASSWORD, serve_desk
from tests.support.factories import KEY
from tests.support.web import Clock, live_server

sync_api = playwright_or_skip()

# What a script would leave behind if one ran: a marker element and a changed title.
PLANTED = (
    "<script>document.body.insertAdjacentHTML('beforeend','<p id=ran>script ran</p>');"
    "document.title='pwned';</script>"
    '<img alt="" src="data:," onerror="document.body.insertAdjacentHTML(\'beforeend\','
    "'<p id=handler>handler ran</p>')\">"
)


def _plant_scripts(database: Database) -> None:
    """Put a script and an event handler into every stored variant, as if one got through."""
    with database.transaction() as session:
        for variant in session.scalars(select(Variant)):
            variant.html = variant.html.replace("</body>", PLANTED + "</body>")


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[tuple[Config, Database]]:
    config, database = sent_archive(tmp_path, public=True)
    yield config, database
    database.dispose()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("BRIEFING_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _watch(tab: Any) -> list[str]:
    ran: list[str] = []
    tab.on("pageerror", lambda error: ran.append(str(error)))
    tab.on("dialog", lambda dialog: ran.append(dialog.message))
    return ran


def test_a_public_issue_renders_and_runs_no_script(archive: tuple[Config, Database]) -> None:
    config, database = archive
    # The feed's own <script> and onerror were removed at ingest; plant some more in the
    # stored HTML to show the page's policy stops them even if sanitising missed one.
    _plant_scripts(database)
    app = create_app(config, database, [KEY], clock=Clock(), drain_interval=None, register=False)
    with live_server(app) as origin, httpx.Client(base_url=origin) as client:
        stored = client.get(f"/b/archive/daily/{DAY.isoformat()}").text
        assert "<script>document.body" in stored  # the planted script is in the page served
        with chromium(sync_api) as browser:
            context = browser.new_context(viewport={"width": 400, "height": 800})
            tab = context.new_page()
            errors = _watch(tab)
            tab.goto(f"{origin}/b/archive/daily/")
            with tab.expect_navigation():
                tab.get_by_role("link", name="26 November 2026").click()
            assert tab.url == f"{origin}/b/archive/daily/{DAY.isoformat()}"
            tab.wait_for_load_state("load")
            # It renders: the archive line, the headlines, the feed's story.
            assert tab.get_by_role("link", name="All past issues").is_visible()
            # (The headlines are links; their text also sits in the hidden preheader.)
            assert tab.get_by_role(
                "link", name="Port Elwyn approves harbour expansion"
            ).is_visible()
            assert tab.get_by_role("link", name=SCRIPTED_TITLE).is_visible()
            # Nothing scripted ran: no marker, the title is the issue's subject.
            assert tab.locator("#ran").count() == 0
            assert tab.locator("#handler").count() == 0
            assert tab.title().startswith("The Daily: ")
            assert errors == []
            # At phone width the issue fits the screen (no sideways scrolling).
            assert tab.evaluate("document.documentElement.scrollWidth") <= 400
            context.close()


def test_the_desk_frames_a_variant_and_its_scripts_do_not_run(
    archive: tuple[Config, Database], shots: Path
) -> None:
    config, database = archive
    _plant_scripts(database)
    with serve_desk(config, database) as site, chromium(sync_api) as browser:
        site.add("ed", Role.EDITOR)
        origin = str(site.client.base_url).rstrip("/")
        context = browser.new_context(viewport={"width": 1000, "height": 900})
        tab = context.new_page()
        problems: list[str] = []
        tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        tab.goto(f"{origin}{DESK}archive/daily/{DAY.isoformat()}")
        tab.get_by_label("Name").fill("ed")
        tab.get_by_label("Password").fill(PASSWORD)
        tab.get_by_role("button", name="Log in").click()
        assert tab.get_by_role("heading", level=1).inner_text() == (
            f"The Daily, issue of {DAY.isoformat()}"
        )
        frame = tab.frame_locator("iframe")
        # The frame loads (the desk's policy allows frames from its own origin) and shows the
        # variant; the planted script and handler do not run inside the sandbox.
        headline = frame.get_by_role("link", name="Port Elwyn approves harbour expansion")
        assert headline.is_visible()
        assert frame.locator("#ran").count() == 0 and frame.locator("#handler").count() == 0
        tab.screenshot(path=str(shots / "desk-archive-issue.png"))
        # The only console errors are the sandbox refusing the planted script, not a blocked frame.
        assert not any(
            "frame-src" in problem or "frame-ancestors" in problem for problem in problems
        )
        context.close()
