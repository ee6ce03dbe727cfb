"""The desk's ops controls in a real headless Chromium, steering a real `briefing serve`.

An ops user pauses a briefing from the desk and the running service sends
nothing of it; resumes it and the edition goes. Then, with a slow SMTP
server keeping a run going, cancels the live run from the page: the run
stops early, and what was sent is exactly what the ledger records sent,
each message once.

Set ``BRIEFING_SCREENSHOTS`` to a folder (``docs/images``) to keep the ops
overview's screenshot that docs/desk.md shows.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from briefing.domain.states import DeskAction, Role
from briefing.store import Database, open_database
from briefing.store.schema import Delivery, Edition, Subscriber
from tests.integration.test_serve import (
    FAST,
    Serve,
    due_now,
    outbox,
    start,
    subscribe_earlier,
)
from tests.support.browser import chromium, playwright_or_skip
from tests.support.delivery import delivery_settings
from tests.support.desk import DESK, PASSWORD, DeskSite, serve_desk
from tests.support.factories import make_project
from tests.support.smtp_server import Handler, Rule, smtp_server

sync_api = playwright_or_skip()

WAIT = 60.0
RUN = 24  # subscribers in the run that is cancelled
SLOW = 0.4  # seconds the SMTP server takes per message


@pytest.fixture
def serves() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for serve in started:
        serve.kill()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("BRIEFING_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium(sync_api) as launched:
        yield launched


def open_tab(browser: Any) -> tuple[Any, list[str]]:
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    return tab, problems


def log_in(tab: Any, site: DeskSite, name: str) -> str:
    site.add(name, Role.OPS)
    origin = str(site.client.base_url).rstrip("/")
    tab.goto(origin + DESK + "ops/")
    tab.get_by_label("Name").fill(name)
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    assert tab.get_by_role("heading", level=1).inner_text() == "Ops"  # back where it asked
    return origin


def control(tab: Any, link: str, button: str) -> str:
    """Follow a control's link on the overview, confirm it, and return the notice shown."""
    tab.get_by_role("link", name=link).click()
    assert tab.get_by_role("heading", level=1).inner_text().endswith("?")
    tab.get_by_role("button", name=button).click()
    assert tab.get_by_role("heading", level=1).inner_text() == "Ops"
    return str(tab.locator("p.notice, p.error").first.inner_text())


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_pause_from_the_desk_holds_a_running_serve_and_resume_lets_it_send(
    tmp_path: Path, serves: list[Serve], browser: Any, shots: Path
) -> None:
    config = make_project(tmp_path, scheduler=FAST)
    later = datetime.now(ZoneInfo("Europe/London")) + timedelta(hours=6)
    subscribe_earlier(config, [f"later@example.com,,daily,,Europe/London,{later:%H:%M},daily"])
    database = open_database(config.database)
    serve = start(serves, config, "--debug")  # --debug logs every dispatch run
    serve.wait_for(r"start-up catch-up: 0 edition\(s\) dispatched")
    tab, problems = open_tab(browser)
    with serve_desk(config, database) as site:
        site.clock.now = datetime.now(UTC)  # `serve` compares the controls' times with its own
        log_in(tab, site, "olga")
        assert "Running" in tab.get_by_role("row", name=re.compile("The Daily")).inner_text()

        notice = control(tab, "Pause…", "Pause daily")
        assert notice.startswith("Paused daily")
        serve.wait_for(r"briefing daily: paused by olga \(desk\) at")
        row = tab.get_by_role("row", name=re.compile("The Daily")).inner_text()
        assert "Paused" in row and "by olga (desk)" in row

        subscribe_earlier(config, [due_now("due@example.com", "Europe/London")])
        runs = len(re.findall(r"dispatch at ", serve.text()))
        serve.wait_for(r"dispatch at ", count=runs + 2)
        assert outbox(config) == {}  # due, and held by the pause
        tab.reload()
        tab.screenshot(path=str(shots / "desk-ops.png"), full_page=True)
        tab.get_by_role("link", name="Schedule").click()
        assert "held back by the pause" in tab.locator("main").inner_text()
        tab.get_by_role("link", name="Overview").click()

        notice = control(tab, "Resume…", "Resume daily")
        assert notice.startswith("Resumed daily")
        serve.wait_for(r"briefing daily: delivered 1 sent")
        assert outbox(config) == {"due@example.com": 1}

        tab.get_by_role("link", name="Activity").click()
        log = tab.locator("main").inner_text()
        assert DeskAction.BRIEFING_PAUSED.value in log and DeskAction.BRIEFING_RESUMED.value in log
    assert serve.stop() == 0
    database.dispose()
    assert problems == [], problems


def ledger(database: Database) -> dict[str, str]:
    """Return each subscriber's delivery state."""
    with database.transaction() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.status)
            .join(Edition, Edition.subscriber_id == Subscriber.id)
            .join(Delivery, Delivery.edition_id == Edition.id)
        ).all()
    return {str(email): str(status) for email, status in rows}


def open_count(database: Database) -> int:
    with database.transaction() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.status.in_(["pending", "sending", "deferred"]))
            )
            or 0
        )


def test_cancel_from_the_desk_stops_a_live_run_losing_and_doubling_nothing(
    tmp_path: Path, serves: list[Serve], browser: Any
) -> None:
    handler = Handler(default=Rule(delay=SLOW))
    with smtp_server(handler) as server:
        config = make_project(
            tmp_path,
            scheduler=FAST,
            delivery=delivery_settings(server, {"pool_size": 1}, heartbeat=0.2),
        )
        readers = [f"run{n:02d}@example.com" for n in range(RUN)]
        subscribe_earlier(config, [due_now(address, "Europe/London") for address in readers])
        database = open_database(config.database)
        tab, problems = open_tab(browser)
        with serve_desk(config, database) as site:
            site.clock.now = datetime.now(UTC)
            log_in(tab, site, "olga")
            serve = start(serves, config)
            # The run is going: a few messages are through, most are still to send.
            wait_until(lambda: len(handler.per_recipient()) >= 2, "the first messages")
            notice = control(tab, "Cancel run…", "Cancel the run of daily")
            cancelled_at = len(handler.per_recipient())
            match = re.match(
                r"Cancelled the live run of daily: (\d+) delivery\(ies\) cancelled, (\d+) in "
                r"flight \(may still go out\), (\d+) already sent\.",
                notice,
            )
            assert match, notice
            waiting, in_flight, already = (int(n) for n in match.groups())
            assert waiting + in_flight + already == RUN and waiting + in_flight > 0
            wait_until(lambda: open_count(database) == 0, "the run to drop its claims")
            serve.wait_for(r"briefing daily: delivered \d+ sent")
            tab.get_by_role("link", name="Activity").click()
            assert DeskAction.RUN_CANCELLED.value in tab.locator("main").inner_text()
        assert serve.stop() == 0
        time.sleep(SLOW * 2)  # anything still on the wire has arrived by now
        received = handler.per_recipient()
    states = ledger(database)
    database.dispose()
    sent = {address for address, state in states.items() if state == "sent"}
    # Stopped early: after the cancel, at most what was on the wire before the run's next
    # heartbeat went.
    assert len(sent) < RUN and len(sent) <= cancelled_at + 2, (len(sent), cancelled_at)
    assert set(states.values()) == {"sent", "cancelled"}, states
    assert set(received) == sent  # each message the server kept is recorded sent ...
    assert all(count == 1 for count in received.values()), received  # ... once
    assert problems == [], problems
