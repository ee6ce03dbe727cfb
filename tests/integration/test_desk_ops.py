"""The desk's ops pages over a real server: real sends, bounces and processes; the controls.

The project (on SQLite and on PostgreSQL) sends to a real SMTP test server (one recipient refused at RCPT,
one at the final dot), takes a DSN and a complaint through ``bounces``
intake, and registers processes as ``serve`` and the workers do; every page
is read as an ops user, an admin, an editor and an anonymous visitor would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from briefing.audience.bounces import intake
from briefing.config import Config
from briefing.deliver import deliver, make_transport
from briefing.domain.states import BounceKind, DeskAction, ProcessKind, Role
from briefing.domain.tokens import Signer
from briefing.editions.dispatch import dispatch
from briefing.ingest import ingest
from briefing.ops.controls import control_of
from briefing.ops.deliveries import issue_summaries
from briefing.ops.locks import acquire_scheduler_lock
from briefing.ops.sources import source_health
from briefing.ops.status import read_status
from briefing.store import Database
from briefing.store import bounces as bounce_store
from briefing.store.processes import register
from briefing.store.schema import Delivery, LiveProcess
from briefing.web.desk.ops import EVENTS_PER_PAGE
from tests.support.bounces import arf, dsn, maildir_of
from tests.support.delivery import AT, reader, smtp_project, statuses
from tests.support.desk import DESK, DeskSite, serve_desk
from tests.support.factories import KEY, markdown_article
from tests.support.smtp_server import Handler, Rule, smtp_server

OPS = DESK + "ops/"
SIGNER = Signer([KEY])


@dataclass
class Sent:
    """The served desk of a project that has sent one issue and taken mail back."""

    site: DeskSite
    config: Config
    database: Database


@pytest.fixture(params=["sqlite", "postgresql"])
def sent(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Sent]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    rules = {
        reader(2): Rule(rcpt="550 5.1.1 <reader2@example.com>: no such user"),
        reader(3): Rule(data="554 5.7.1 message refused by policy"),
    }
    with smtp_server(Handler(rules=rules)) as server:
        config, database = smtp_project(tmp_path, server, count=6, database_url=url)
        transport = make_transport(config)
        try:
            deliver(config, database, SIGNER, transport, clock=lambda: AT)
        finally:
            transport.close()
        received = {message.recipient: message for message in server.handler.received}
    returned = [
        dsn(
            to="MAILER-DAEMON",
            recipient=reader(0),
            status="5.1.1",
            original_headers=f"Message-ID: {received[reader(0)].message_id}\r\n",
        ),
        arf(recipient=reader(1), original=received[reader(1)].data),
    ]
    box = maildir_of(tmp_path / "returned", returned)
    handled = list(intake(config, database, SIGNER, box, now=AT + timedelta(hours=1)))
    assert [h.problem for h in handled] == [None, None]
    with serve_desk(config, database) as site:
        yield Sent(site, config, database)
    database.dispose()


def logged_in(site: DeskSite, name: str, role: Role) -> str:
    site.add(name, role)
    return site.session(name)


def confirm(site: DeskSite, sid: str, briefing: str, action: str, **extra: str) -> tuple[int, str]:
    """Open a control's confirm page and post its form as the button would; return the redirect."""
    page = site.get(f"{OPS}briefings/{briefing}/{action}", sid)
    assert page.status_code == 200, page.text
    data = {"csrf_token": site.csrf(sid), "confirm": "yes", **extra}
    done = site.post(f"{OPS}briefings/{briefing}/{action}", sid, data)
    return done.status_code, done.headers.get("location", "")


def activity(site: DeskSite, sid: str) -> str:
    return site.get(DESK + "activity", sid).text


def delivery_states(database: Database) -> dict[str, int]:
    with database.transaction() as session:
        rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
        return {str(row[0]): int(row[1]) for row in rows}


def test_every_ops_page_renders_the_real_picture(sent: Sent) -> None:
    site, config, database = sent.site, sent.config, sent.database
    sid = logged_in(site, "olga", Role.OPS)

    home = site.get(DESK, sid)
    assert f'href="{OPS}">Ops</a>' in home.text  # the nav entry

    overview = site.get(OPS, sid)
    assert overview.status_code == 200
    status = read_status(config, database)
    for problem in status.problems:  # what `briefing status` finds, on the page
        assert problem.message.replace("`", "&#96;")[:40] in overview.text.replace("`", "&#96;")
    if not status.problems:
        assert "Nothing needs a person." in overview.text
    assert 'The Daily <span class="muted">(daily)</span>' in overview.text
    assert "Running" in overview.text
    assert "no <code>briefing serve</code> is running on this database" in overview.text
    for action in ("pause", "run-now", "cancel"):
        assert f'href="{OPS}briefings/daily/{action}"' in overview.text

    schedule = site.get(OPS + "schedule", sid)
    assert schedule.status_code == 200
    assert "Europe/London" in schedule.text and "07:00" in schedule.text

    sources = site.get(OPS + "sources", sid)
    assert sources.status_code == 200
    health = source_health(config, database)
    assert health and all(item.label in sources.text for item in health)
    assert f"{len(health)} sources: 0 failing on the last run, 0 flagged" in sources.text

    deliveries = site.get(OPS + "deliveries", sid)
    assert deliveries.status_code == 200
    (row,) = issue_summaries(database)
    assert row.total == 6
    assert f'href="{OPS}deliveries/daily/{row.issue_date.isoformat()}"' in deliveries.text
    assert f'<td class="num">{row.total}</td>' in deliveries.text

    assert "Issues dated 2026-11-25 to 2026-11-27" in deliveries.text  # by the desk's clock
    assert 'rel="next"' not in deliveries.text  # nothing older
    site.clock.now += timedelta(days=4)  # four days on, the issue is on the second page
    sid = site.session("olga")  # the session ended meanwhile
    later = site.get(OPS + "deliveries", sid).text
    assert "No deliveries of issues dated in these days." in later
    older = re.search(r'href="([^"]+)" rel="next"', later)
    assert older and older.group(1) == OPS + "deliveries?page=2"
    second = site.get(older.group(1), sid).text
    assert f'href="{OPS}deliveries/daily/{row.issue_date.isoformat()}"' in second
    assert 'rel="prev"' in second and 'rel="next"' not in second

    issue = site.get(f"{OPS}deliveries/daily/{row.issue_date.isoformat()}", sid)
    assert issue.status_code == 200
    assert reader(2) in issue.text and "550 5.1.1" in issue.text and "bounced" in issue.text
    assert reader(3) in issue.text and "554 5.7.1 message refused by policy" in issue.text
    assert reader(4) not in issue.text  # sent: not a failure
    assert site.get(f"{OPS}deliveries/daily/not-a-date", sid).status_code == 404
    assert site.get(f"{OPS}deliveries/weekly/2026-11-26", sid).status_code == 404

    bounces = site.get(OPS + "bounces", sid)
    assert bounces.status_code == 200
    assert reader(0) in bounces.text and "5.1.1" in bounces.text
    assert reader(1) in bounces.text and "complaint" in bounces.text
    complaints = site.get(OPS + "bounces?kind=complaint", sid)
    assert reader(1) in complaints.text and reader(0) not in complaints.text


def test_processes_are_listed_with_the_stale_ones_marked(sent: Sent) -> None:
    site, database = sent.site, sent.database
    sid = logged_in(site, "olga", Role.OPS)
    assert "No process is registered" in site.get(OPS + "processes", sid).text
    with database.transaction() as session:
        register(session, ProcessKind.SERVE, {})
        dead = register(session, ProcessKind.DELIVER, {})
        session.execute(
            update(LiveProcess)
            .where(LiveProcess.id == dead)
            .values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=5))
        )
    page = site.get(OPS + "processes", sid)
    assert page.status_code == 200
    rows = [line for line in page.text.splitlines() if line.startswith("<tr><td>")]
    assert len(rows) == 2
    serve_row = next(line for line in rows if "<td>serve</td>" in line)
    deliver_row = next(line for line in rows if "<td>deliver</td>" in line)
    assert "alive" in serve_row and "stale" not in serve_row
    assert "stale: missed its heartbeats" in deliver_row and "5m ago" in deliver_row
    overview = site.get(OPS, sid).text
    assert "Live processes: 1 serve" in overview  # the stale one is not counted as live


def test_bounce_events_are_paged(sent: Sent) -> None:
    site, database = sent.site, sent.database
    sid = logged_in(site, "olga", Role.OPS)
    with database.transaction() as session:
        for n in range(EVENTS_PER_PAGE):
            bounce_store.record(
                session,
                fingerprint=f"soft-{n}",
                now=AT + timedelta(hours=2, minutes=n),
                kind=BounceKind.SOFT,
                status="4.2.2",
                source="test",
                email=f"soft{n}@example.com",
                delivery_id=None,
                subscription_id=None,
                matched_by=None,
                action="counted",
            )
    first = site.get(OPS + "bounces", sid).text
    assert f"soft{EVENTS_PER_PAGE - 1}@example.com" in first  # the newest first
    assert reader(0) not in first and reader(1) not in first
    assert 'rel="next"' in first and 'rel="prev"' not in first
    second = site.get(OPS + "bounces?page=2", sid).text
    assert reader(0) in second and reader(1) in second and "soft0@" not in second
    assert 'rel="prev"' in second and 'rel="next"' not in second
    assert "No events on this page" in site.get(OPS + "bounces?page=9", sid).text
    assert site.get(OPS + "bounces?page=x", sid).status_code == 200


def test_pause_and_resume_need_confirming_and_are_recorded(sent: Sent) -> None:
    site, database = sent.site, sent.database
    sid = logged_in(site, "olga", Role.OPS)
    page = site.get(OPS + "briefings/daily/pause", sid)
    assert page.status_code == 200
    assert "Pause The Daily?" in page.text and "Pause daily</button>" in page.text
    assert not control_of(database, "daily").paused  # showing the page changes nothing

    unconfirmed = site.post(OPS + "briefings/daily/pause", sid, {"csrf_token": site.csrf(sid)})
    assert unconfirmed.status_code == 400
    assert "the form was not confirmed" in unconfirmed.text
    assert not control_of(database, "daily").paused

    status, location = confirm(site, sid, "daily", "pause")
    assert (status, location) == (303, OPS + "?briefing=daily&done=paused")
    state = control_of(database, "daily")
    assert state.paused and state.paused_by == "olga (desk)"
    overview = site.get(location, sid).text
    assert "Paused daily: nothing of it is dispatched" in overview
    assert "by olga (desk)" in overview and f'href="{OPS}briefings/daily/resume"' in overview
    log = activity(site, sid)
    assert f"<td>olga</td><td>{DeskAction.BRIEFING_PAUSED.value}</td><td>daily</td>" in log

    status, location = confirm(site, sid, "daily", "pause")
    assert location == OPS + "?briefing=daily&done=already-paused"
    assert "daily was already paused; nothing was changed." in site.get(location, sid).text
    assert activity(site, sid).count(DeskAction.BRIEFING_PAUSED.value) == 1

    status, location = confirm(site, sid, "daily", "resume")
    assert (status, location) == (303, OPS + "?briefing=daily&done=resumed")
    assert not control_of(database, "daily").paused
    assert f"<td>{DeskAction.BRIEFING_RESUMED.value}</td><td>daily</td>" in activity(site, sid)
    _, location = confirm(site, sid, "daily", "resume")
    assert "daily was not paused; nothing was changed." in site.get(location, sid).text

    assert site.get(OPS + "briefings/weekly/pause", sid).status_code == 404
    assert site.get(OPS + "briefings/daily/explode", sid).status_code == 404
    posted = site.post(OPS + "briefings/weekly/pause", sid, {"csrf_token": site.csrf(sid)})
    assert posted.status_code == 404


def test_run_now_asks_the_running_scheduler_only(sent: Sent) -> None:
    site, database = sent.site, sent.database
    sid = logged_in(site, "root", Role.ADMIN)  # admin reaches the ops pages too
    _, location = confirm(site, sid, "daily", "run-now")
    assert location == OPS + "?briefing=daily&done=run-now-no-serve"
    refused = site.get(location, sid).text
    assert "No `briefing serve` is running on this database" in refused
    assert 'role="alert"' in refused
    assert control_of(database, "daily").run_now_requested_at is None

    lock = acquire_scheduler_lock(database)  # as a running `briefing serve` holds it
    try:
        confirm(site, sid, "daily", "pause")
        _, location = confirm(site, sid, "daily", "run-now")
        assert location == OPS + "?briefing=daily&done=run-now-paused"
        assert control_of(database, "daily").run_now_requested_at is None
        confirm(site, sid, "daily", "resume")
        _, location = confirm(site, sid, "daily", "run-now")
        assert location == OPS + "?briefing=daily&done=run-now"
        assert control_of(database, "daily").run_now_requested_at is not None
        assert "Asked the running scheduler to run daily now" in site.get(location, sid).text
    finally:
        lock.release()
    log = activity(site, sid)
    assert log.count(f"<td>{DeskAction.RUN_NOW_REQUESTED.value}</td>") == 1


def test_cancel_stops_what_is_still_to_send_and_says_when_nothing_is(sent: Sent) -> None:
    site, config, database = sent.site, sent.config, sent.database
    sid = logged_in(site, "olga", Role.OPS)
    _, location = confirm(site, sid, "daily", "cancel")
    assert location == OPS + "?briefing=daily&done=nothing-to-cancel"
    assert "Nothing running to cancel for daily" in site.get(location, sid).text
    assert DeskAction.RUN_CANCELLED.value not in activity(site, sid)

    before = delivery_states(database)
    markdown_article(
        config.base_dir / "content" / "world",
        "next.md",
        title="Harbour berths open a day early",
        url="https://news.example.org/world/next",
        published=(AT + timedelta(hours=20)).isoformat(),
    )
    ingest(config, database, AT + timedelta(hours=23))
    dispatch(config, database, SIGNER, AT + timedelta(days=1))  # the next issue, not yet sent
    waiting = delivery_states(database).get("pending", 0)
    assert waiting > 0
    for action in ("cancel", "run-now", "pause"):  # without the confirm field: nothing happens
        unconfirmed = site.post(
            f"{OPS}briefings/daily/{action}", sid, {"csrf_token": site.csrf(sid)}
        )
        assert unconfirmed.status_code == 400, action
        assert "Nothing was changed: the form was not confirmed." in unconfirmed.text
    assert delivery_states(database).get("pending", 0) == waiting
    state = control_of(database, "daily")
    assert not state.paused and state.run_now_requested_at is None
    status, location = confirm(site, sid, "daily", "cancel")
    assert status == 303
    assert f"done=cancelled&cancelled={waiting}&in_flight=0&sent=0" in location
    after = delivery_states(database)
    assert after.get("pending", 0) == 0
    assert after["cancelled"] == before.get("cancelled", 0) + waiting
    assert after["sent"] == before["sent"]  # what was sent stays sent
    page = site.get(location, sid).text
    assert f"Cancelled the live run of daily: {waiting} delivery(ies) cancelled" in page
    log = activity(site, sid)
    assert f"<td>{DeskAction.RUN_CANCELLED.value}</td><td>daily (issues 2026-11-27): " in log
    assert f"{waiting} cancelled, 0 in flight, 0 already sent" in log
    assert statuses(database)[reader(4)] == "cancelled"  # its newest delivery


def test_controls_refuse_a_missing_csrf_token_an_editor_and_an_anonymous_visitor(
    sent: Sent,
) -> None:
    site, database = sent.site, sent.database
    sid = logged_in(site, "olga", Role.OPS)
    forged = site.post(OPS + "briefings/daily/pause", sid, {"confirm": "yes"})
    assert forged.status_code == 403
    assert not control_of(database, "daily").paused

    editor = logged_in(site, "eddie", Role.EDITOR)
    assert f'href="{OPS}">Ops</a>' not in site.get(DESK, editor).text
    for path in ("", "schedule", "sources", "deliveries", "processes", "bounces",
                 "deliveries/daily/2026-11-26", "briefings/daily/pause"):  # fmt: skip
        refused = site.get(OPS + path, editor)
        assert refused.status_code == 403, path
        assert "Not for your role" in refused.text
    posted = site.post(
        OPS + "briefings/daily/pause", editor, {"csrf_token": site.csrf(editor), "confirm": "yes"}
    )
    assert posted.status_code == 403
    assert not control_of(database, "daily").paused

    for path in ("", "processes", "briefings/daily/pause"):
        anonymous = site.get(OPS + path, None)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith(DESK + "login")
    posted = site.post(OPS + "briefings/daily/pause", None, {"confirm": "yes"})
    assert posted.status_code == 303 and posted.headers["location"].startswith(DESK + "login")
    assert not control_of(database, "daily").paused
