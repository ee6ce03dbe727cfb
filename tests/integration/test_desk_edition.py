"""The desk's coming-edition page over a real server: see an issue, shape it, undo, approve.

Each action goes through the form a browser would post (the session cookie and
its CSRF token), and what it changed is read back twice: from the page, and
from ``issue_view``, the service the CLI shows.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from briefing.config import Config, load_config
from briefing.domain.states import Role
from briefing.editions.issue import IssueView, issue_view
from briefing.store import open_database
from tests.integration.test_overrides import DAY, LEAD, OLD, W, prepare, shaped_project
from tests.support.desk import DESK, DeskSite, serve_desk
from tests.support.factories import write_config

PAGE = DESK + "edition/daily/2026-11-26"
HARBOUR = "Port Elwyn approves harbour expansion"  # W(0)
RECOUNT = "Norland election goes to a recount"  # W(2)


def edition_project(folder: Path, *, approval: str = "none") -> Config:
    """The overrides' test project (a story from two sources), with ``approval`` set."""
    shaped_project(folder)
    path = folder / "config.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["briefings"]["daily"]["approval"] = approval
    write_config(folder, data)
    return load_config(path)


def serve_project(tmp_path: Path, approval: str) -> Iterator[DeskSite]:
    config = edition_project(tmp_path, approval=approval)
    database = open_database(config.database)
    prepare(config, database)
    with serve_desk(config, database) as served:
        yield served
    database.dispose()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[DeskSite]:
    yield from serve_project(tmp_path, "none")


@pytest.fixture
def held(tmp_path: Path) -> Iterator[DeskSite]:
    yield from serve_project(tmp_path, "required")


def view_of(site: DeskSite) -> IssueView:
    return issue_view(site.config, site.database, "daily", DAY, site.clock())


def world_titles(site: DeskSite) -> list[str]:
    [variant] = view_of(site).upcoming
    return [item.title for item in variant.items if item.section == "world"]


def text_of(page: str) -> str:
    """Return a page's visible text, tags removed and entities decoded, spaces folded."""
    inline = re.sub(r"</?(?:a|strong|span|em|code)\b[^>]*>", "", page)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", inline)).split())


def shape(site: DeskSite, sid: str, action: str, article: str, text: str | None = None) -> str:
    """Post one shaping form; follow the redirect and return the page's text."""
    data = {"csrf_token": site.csrf(sid), "action": action, "article": article}
    if text is not None:
        data["text"] = text
    response = site.post(PAGE + "/shape", sid, data)
    assert response.status_code == 303, text_of(response.text)
    assert response.headers["location"].startswith(PAGE + f"?done={action}&override=")
    page = site.get(response.headers["location"], sid)
    assert page.status_code == 200
    return text_of(page.text)


def article_id(site: DeskSite, title: str) -> str:
    for variant in view_of(site).upcoming:
        for item in variant.items:
            if item.title == title:
                return str(item.article_id)
    raise AssertionError(f"{title!r} is not in the issue")


def test_the_page_shows_each_variant_with_its_subscriptions_and_items(site: DeskSite) -> None:
    site.add("ann", Role.EDITOR)
    sid = site.session("ann")
    home = site.get(DESK, sid)
    assert f'href="{DESK}edition/daily/"' in home.text
    default = site.get(DESK + "edition/daily/", sid)
    assert default.status_code == 303 and default.headers["location"] == PAGE
    page = site.get(PAGE, sid)
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    text = text_of(page.text)
    assert "The Daily: issue of 2026-11-26" in text
    assert "No approval needed" in text
    assert "If cut now: World, Business (2 subscriptions)" in text
    assert "Subject: The Daily:" in text and "HTML " in text
    assert f'href="{PAGE}/preview?sections=world,business"' in page.text
    for title in (HARBOUR, RECOUNT, "Copper price reaches a two-year high"):
        assert title in text
    # The story from two sources: its lead, with the other one offered as a source.
    assert "Tidal barrier fails in Kessel Bay surge" in text
    assert "Also covered by 1 other source: bay.example.net" in text
    # The lead is the item; the other source is offered as a radio button below it.
    assert re.search(r'name="article" value="\d+" required> bay\.example\.net', page.text)
    assert f'href="{LEAD}"' in page.text
    assert "No variant of this issue is cut yet" in text
    assert "Overrides (0)" in text


def test_each_shaping_action_changes_the_page_the_issue_and_the_activity(site: DeskSite) -> None:
    site.add("ann", Role.EDITOR)
    sid = site.session("ann")
    assert world_titles(site)[0] != RECOUNT

    text = shape(site, sid, "pin", article_id(site, RECOUNT))
    assert f"Saved: pin of “{RECOUNT}” (#1). No variant of this issue is cut yet" in text
    assert world_titles(site)[0] == RECOUNT
    assert "pinned #1 by ann" in text

    text = shape(site, sid, "drop", article_id(site, "Copper price reaches a two-year high"))
    assert "Copper price reaches a two-year high" not in [
        item.title for item in view_of(site).upcoming[0].items
    ]
    assert "drop Copper price reaches a two-year high" in text  # in the overrides' list

    text = shape(site, sid, "headline", article_id(site, HARBOUR), "Harbour vote: four new berths")
    assert "Harbour vote: four new berths" in world_titles(site)
    assert HARBOUR not in world_titles(site)
    assert "headline #3 by ann" in text

    summary = "An editor's summary of the mountain passes."
    text = shape(
        site, sid, "summary", article_id(site, "Snowstorm closes Valdoria mountain passes"), summary
    )
    assert summary in [item.summary for item in view_of(site).upcoming[0].items]
    assert summary in text

    page = site.get(PAGE, sid).text
    chosen = re.search(r'name="article" value="(\d+)" required> bay\.example\.net', page)
    assert chosen
    text = shape(site, sid, "source", chosen.group(1))
    assert "Kessel Bay tidal barrier fails in night surge" in world_titles(site)
    assert "Tidal barrier fails in Kessel Bay surge" not in world_titles(site)

    text = shape(site, sid, "add", OLD)
    assert "Lighthouse keeper retires after forty years" in world_titles(site)
    assert "added #6 by ann" in text
    assert "Overrides (6)" in text

    activity = text_of(site.get(DESK + "activity", sid).text)
    assert activity.count("override saved") == 6
    assert f"daily 2026-11-26: #1 pin '{RECOUNT}' <{W(2)}>" in activity
    assert (
        f"#4 summary 'Snowstorm closes Valdoria mountain passes' <{W(1)}>: \"{summary}\""
        in activity
    )

    # Undo the pin: the page and the issue lose it, the activity list has it.
    undone = site.post(PAGE + "/undo", sid, {"csrf_token": site.csrf(sid), "override": "1"})
    assert undone.status_code == 303 and undone.headers["location"] == PAGE + "?done=undo"
    text = text_of(site.get(undone.headers["location"], sid).text)
    assert "Override undone." in text and "pinned #1" not in text
    assert "Overrides (5)" in text
    assert world_titles(site)[0] != RECOUNT
    activity = text_of(site.get(DESK + "activity", sid).text)
    assert f"override undone daily 2026-11-26: #1 pin '{RECOUNT}'" in activity


def test_service_errors_come_back_on_the_page_and_change_nothing(site: DeskSite) -> None:
    site.add("ann", Role.EDITOR)
    sid = site.session("ann")
    csrf = site.csrf(sid)
    cases = [
        ({"action": "add", "article": "https://nowhere.example/x"}, "no stored article with URL or id 'https://nowhere.example/x'"),
        ({"action": "summary", "article": article_id(site, HARBOUR), "text": "  "}, f"the new summary of '{HARBOUR}' is empty"),
        ({"action": "delete", "article": "1"}, "'delete' is not something the desk does to an item"),
        ({"action": "pin", "article": ""}, "Name the article to pin"),
    ]  # fmt: skip
    for data, message in cases:
        response = site.post(PAGE + "/shape", sid, {"csrf_token": csrf, **data})
        assert response.status_code == 400, data
        text = text_of(response.text)
        assert message in text, text
        assert (
            "Nothing was changed" in text or "Name the article" in text or "not something" in text
        )
        assert "If cut now" in text  # the page itself, to try again
    wrong = site.post(PAGE + "/undo", sid, {"csrf_token": csrf, "override": "99"})
    assert wrong.status_code == 400
    assert "daily 2026-11-26: no override #99 in this issue" in text_of(wrong.text)
    assert view_of(site).overrides == ()
    assert "override saved" not in site.get(DESK + "activity", sid).text
    # An unknown briefing or a date that is not one.
    assert site.get(DESK + "edition/weekly/2026-11-26", sid).status_code == 404
    bad = site.get(DESK + "edition/daily/26-11-2026", sid)
    assert bad.status_code == 404 and "write it as YYYY-MM-DD" in text_of(bad.text)


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(site: DeskSite) -> None:
    site.add("ann", Role.EDITOR)
    sid = site.session("ann")
    pin = {"action": "pin", "article": article_id(site, RECOUNT)}
    missing = site.post(PAGE + "/shape", sid, pin)
    assert missing.status_code == 403
    assert "missing its security token" in text_of(missing.text)
    forged = site.post(PAGE + "/shape", sid, {**pin, "csrf_token": "0" * 64})
    assert forged.status_code == 403
    cross = site.post(
        PAGE + "/shape", sid, {**pin, "csrf_token": site.csrf(sid)}, Origin="https://evil.example"
    )
    assert cross.status_code == 403
    assert view_of(site).overrides == ()


def test_approve_asks_for_a_confirmation_then_freezes_the_issue(held: DeskSite) -> None:
    site = held
    site.add("ann", Role.EDITOR)
    sid = site.session("ann")
    text = text_of(site.get(PAGE, sid).text)
    assert (
        "Approval required: nothing of this issue is dispatched until an editor approves it" in text
    )
    assert "I checked this issue" in text
    shape(site, sid, "pin", article_id(site, RECOUNT))
    unconfirmed = site.post(PAGE + "/approve", sid, {"csrf_token": site.csrf(sid)})
    assert unconfirmed.status_code == 400
    assert "Nothing was approved: tick the box" in text_of(unconfirmed.text)
    assert view_of(site).approval is None

    # Held: at London's send time, London's subscription waits for it (New York's is later).
    site.clock.now = datetime(2026, 11, 26, 7, 5, tzinfo=UTC)
    sid = site.session("ann")  # the first one went idle meanwhile
    text = text_of(site.get(PAGE, sid).text)
    assert "Held for approval: 1 subscription(s) waiting" in text
    approved = site.post(PAGE + "/approve", sid, {"csrf_token": site.csrf(sid), "confirm": "yes"})
    assert approved.status_code == 303 and approved.headers["location"] == PAGE + "?done=approve"
    text = text_of(site.get(approved.headers["location"], sid).text)
    assert "Approved: the next dispatch sends what is due" in text
    assert (
        "Approved by ann at 2026-11-26 07:05 UTC. Its overrides are frozen; 1 subscription(s) due"
        in text
    )
    view = view_of(site)
    assert view.approval is not None and view.approval.approved_by == "ann"
    assert "Undo" not in text and "Edit summary" not in text  # frozen: no shaping forms
    frozen = site.post(
        PAGE + "/shape",
        sid,
        {"csrf_token": site.csrf(sid), "action": "drop", "article": article_id(site, HARBOUR)},
    )
    assert frozen.status_code == 400
    assert "daily 2026-11-26 was approved by ann at 2026-11-26 07:05 UTC" in text_of(frozen.text)
    again = site.post(PAGE + "/approve", sid, {"csrf_token": site.csrf(sid), "confirm": "yes"})
    assert again.headers["location"] == PAGE + "?done=approved-before"
    activity = text_of(site.get(DESK + "activity", sid).text)
    assert activity.count("issue approved") == 1
    assert "issue approved daily 2026-11-26: 1 subscription(s) due" in activity
    assert len(view_of(site).overrides) == 1


def test_approving_a_briefing_that_needs_no_approval_is_refused(site: DeskSite) -> None:
    site.add("ann", Role.EDITOR)
    sid = site.session("ann")
    refused = site.post(PAGE + "/approve", sid, {"csrf_token": site.csrf(sid), "confirm": "yes"})
    assert refused.status_code == 400
    assert "daily does not wait for an approval" in text_of(refused.text)
    assert view_of(site).approval is None


def test_roles_ops_may_look_editors_and_admins_shape_anonymous_visitors_log_in(
    held: DeskSite,
) -> None:
    site = held
    site.add("olga", Role.OPS)
    site.add("ann", Role.EDITOR)
    site.add("ada", Role.ADMIN)
    anonymous = site.get(PAGE, None)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == DESK + "login?next=/b/desk/edition/daily/2026-11-26"
    for action in ("shape", "undo", "approve"):
        refused = site.post(PAGE + "/" + action, None, {"action": "pin", "article": "1"})
        assert refused.status_code == 303 and refused.headers["location"].startswith(DESK + "login")

    ops = site.session("olga")
    looked = site.get(PAGE, ops)
    assert looked.status_code == 200
    text = text_of(looked.text)
    assert "If cut now" in text and "Your role may look at this issue" in text
    assert "/shape" not in looked.text and "/approve" not in looked.text
    for action, data in (
        ("shape", {"action": "pin", "article": article_id(site, RECOUNT)}),
        ("approve", {"confirm": "yes"}),
    ):
        refused = site.post(PAGE + "/" + action, ops, {"csrf_token": site.csrf(ops), **data})
        assert refused.status_code == 403 and "Not for your role" in refused.text
    assert view_of(site).overrides == () and view_of(site).approval is None

    editor = site.session("ann")
    assert site.get(DESK + "ops/users", editor).status_code == 403
    assert "/shape" in site.get(PAGE, editor).text

    admin = site.session("ada")
    shape(site, admin, "pin", article_id(site, RECOUNT))
    assert [o.created_by for o in view_of(site).overrides] == ["ada"]
