"""The desk's edition preview and test send, over a real server, to a real SMTP server."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from html import unescape
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from briefing.audience.confirmations import composers
from briefing.audience.imports import import_subscribers
from briefing.cli import cli
from briefing.config import Config
from briefing.deliver.transactional import drain_transactional
from briefing.domain.states import DeliveryState, DeskAction, MessageKind, OverrideKind, Role
from briefing.domain.tokens import Signer
from briefing.editions.overrides import override
from briefing.errors import BriefingError
from briefing.ingest import ingest
from briefing.store import open_database
from briefing.store.schema import (
    Article,
    Delivery,
    DeskActivity,
    Edition,
    Subscriber,
    TestSend,
)
from tests.support.delivery import delivery_settings
from tests.support.desk import DESK, START, DeskSite, csrf_of, serve_desk
from tests.support.factories import KEY, NOW, make_project
from tests.support.smtp_server import Server, smtp_server
from tests.support.web import SUBSCRIBERS, links_in

ISSUE = START.date().isoformat()  # the issue of 2026-11-26 (07:00 London)
PREVIEW = f"{DESK}edition/daily/{ISSUE}/preview"
FRAME = re.compile(r'<iframe class="([^"]+)" sandbox="" [^>]*src="([^"]+)"')


@pytest.fixture
def server() -> Iterator[Server]:
    with smtp_server() as running:
        yield running


@pytest.fixture
def site(tmp_path: Path, server: Server) -> Iterator[DeskSite]:
    config = make_project(
        tmp_path,
        desk={
            "addresses": {"ed": "ed@newsroom.example.org"},
            "test_recipients": ["proof1@newsroom.example.org", "proof2@newsroom.example.org"],
        },
        delivery=delivery_settings(server),
    )
    database = open_database(config.database)
    ingest(config, database, NOW - timedelta(hours=1))
    subscribers = config.base_dir / "subscribers.csv"
    subscribers.write_text(SUBSCRIBERS, encoding="utf-8")
    import_subscribers(config, database, subscribers, START - timedelta(hours=1))
    with serve_desk(config, database) as served:
        yield served
    database.dispose()


def plain(html: str) -> str:
    """Return a page's text without its tags."""
    return unescape(re.sub(r"<[^>]+>", "", html))


def editor(site: DeskSite) -> str:
    site.add("ed", Role.EDITOR)
    return site.session("ed")


def test_the_page_shows_the_edition_framed_as_text_with_headers_size_and_warnings(
    site: DeskSite,
) -> None:
    sid = editor(site)
    page = site.get(PREVIEW + "?sections=world,sport", sid)
    assert page.status_code == 200, page.text
    text = unescape(page.text)
    assert "Preview: daily, issue of 2026-11-26" in text
    assert "with the sections world, sport" in text
    assert "The Daily" in text  # the subject
    frames = FRAME.findall(page.text)
    assert [kind for kind, _ in frames] == ["phone", "desktop", "phone dark"]
    light, dark = unescape(frames[0][1]), unescape(frames[2][1])
    assert re.fullmatch(
        re.escape(PREVIEW + "/html?sections=world%2Csport&scheme=light&v=") + r"[\w-]{16}", light
    )
    assert "&scheme=dark&v=" in dark
    assert 'sandbox=""' in page.text and "allow-" not in page.text
    assert "frame-src 'self'" in page.headers["Content-Security-Policy"]
    assert "script-src" in page.headers["Content-Security-Policy"]  # the desk's own policy
    # The plain-text twin, the headers with inert tokens, the size against the clip.
    pre = re.search(r'<pre class="text">(.*?)</pre>', page.text, re.S)
    assert pre and "WORLD" in unescape(pre.group(1))
    assert "<dt>List-Unsubscribe</dt>" in page.text
    assert "<dt>Subject</dt>" in page.text and "<dt>From</dt>" in page.text
    assert "preview@news.example.org" in text  # a stand-in, not a reader
    assert "Under the clip: the HTML part is" in text
    assert re.search(r'<meter [^>]*max="102000"', page.text)
    # Business was not asked for: no warning about it; nothing is stored by a preview.
    assert "Business" not in text.split("Warnings")[1].split("Size against")[0]
    with site.database.transaction() as session:
        assert session.scalars(select(Edition)).all() == []
        assert session.scalars(select(Delivery)).all() == []


def test_the_warnings_name_an_empty_section(site: DeskSite) -> None:
    site.clock.now = START + timedelta(days=5)  # nothing new since: every section is empty
    sid = editor(site)
    page = site.get(f"{DESK}edition/daily/2026-12-01/preview", sid)
    assert page.status_code == 200, page.text
    warnings = unescape(page.text).split('id="warnings">Warnings</h2>')[1].split("<h2")[0]
    assert "section 'World' has no new articles" in warnings
    assert "no new articles" in warnings


def test_the_email_frame_has_its_own_sandbox_policy_and_is_only_for_the_desk(
    site: DeskSite,
) -> None:
    sid = editor(site)
    frame = site.get(PREVIEW + "/html?sections=world&scheme=light", sid)
    assert frame.status_code == 200
    policy_header = frame.headers["Content-Security-Policy"]
    assert policy_header.startswith("default-src 'none'")
    assert "sandbox" in policy_header and "script-src" not in policy_header
    assert "frame-ancestors 'self'" in policy_header and "form-action 'none'" in policy_header
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert frame.headers["Cache-Control"] == "no-store"
    assert frame.text.lstrip().lower().startswith("<!doctype html")
    inert = re.findall(r"https://news\.example\.org/b/([upe])/([A-Za-z0-9_-]{32})", frame.text)
    assert {route for route, _ in inert} >= {"p", "u"}
    for route, token in inert:  # every link in the preview acts on nobody
        answer = site.client.get(f"/b/{route}/{token}")
        assert answer.status_code == 404 and "act on nobody" in answer.text
    dark = site.get(PREVIEW + "/html?sections=world&scheme=dark", sid)
    head = dark.text.split("</head>")[0]
    assert "prefers-color-scheme" in frame.text  # the email's own dark rules ...
    assert "prefers-color-scheme" not in dark.text  # ... always on in the dark frame
    assert "@media (min-width: 0px)" in head
    assert head.rstrip().endswith(
        '<meta name="color-scheme" content="dark"><style>:root { color-scheme: dark !important; }'
        "</style>"
    )
    assert site.get(PREVIEW + "/html?scheme=sepia", sid).status_code == 400
    # Not for anyone without a desk session.
    anonymous = site.get(PREVIEW + "/html?sections=world", None)
    assert anonymous.status_code == 303 and "/desk/login" in anonymous.headers["location"]


def test_unknown_briefings_sections_dates_and_subscribers_are_refused_by_name(
    site: DeskSite,
) -> None:
    sid = editor(site)
    for path, status, said in (
        (f"{DESK}edition/weekly/{ISSUE}/preview", 404, "There is no briefing 'weekly'"),
        (PREVIEW + "?sections=world,cooking", 400, "There is no section 'cooking'"),
        (f"{DESK}edition/daily/26-11-2026/preview", 400, "'26-11-2026' is not an issue date"),
        (PREVIEW + "?sections=world&subscriber=ann@example.com", 400, "not both"),
        (PREVIEW + "?subscriber=nobody@example.com", 404, "nobody@example.com has no subscr"),
        (PREVIEW + "?subscriber=nobody", 400, "'nobody' is not an email address"),
        (PREVIEW + "/html?sections=cooking", 400, "There is no section 'cooking'"),
    ):
        response = site.get(path, sid)
        assert response.status_code == status, path
        assert said in unescape(response.text), path


def test_a_subscriber_is_previewed_as_they_get_it(site: DeskSite) -> None:
    sid = editor(site)
    page = site.get(PREVIEW + "?subscriber=bob@example.com", sid)
    assert page.status_code == 200, page.text
    text = unescape(page.text)
    assert "as bob@example.com gets it" in text
    assert "Bob <bob@example.com>" in text  # the To header, as the .eml carries it


def test_only_editors_and_admins_may_preview_or_send_tests(site: DeskSite) -> None:
    site.add("op", Role.OPS)
    site.add("root", Role.ADMIN)
    ops = site.session("op")
    assert site.get(PREVIEW, ops).status_code == 403
    assert site.get(PREVIEW + "/html", ops).status_code == 403
    refused = site.post(
        f"{DESK}edition/daily/{ISSUE}/test", ops, {"csrf_token": site.csrf(ops), "to": "*"}
    )
    assert refused.status_code == 403
    assert site.get(PREVIEW, site.session("root")).status_code == 200
    with site.database.transaction() as session:
        assert session.scalars(select(TestSend)).all() == []


def sent_test(site: DeskSite, sid: str, data: dict[str, str]) -> tuple[int, str]:
    page = site.get(PREVIEW + "?subscriber=ann@example.com", sid)
    response = site.post(
        f"{DESK}edition/daily/{ISSUE}/test", sid, {"csrf_token": csrf_of(page.text), **data}
    )
    return response.status_code, response.headers.get("location", response.text)


def test_a_test_send_goes_through_the_ledger_to_the_smtp_server_with_inert_links(
    site: DeskSite, server: Server
) -> None:
    sid = editor(site)
    status, location = sent_test(
        site, sid, {"subscriber": "ann@example.com", "to": "ed@newsroom.example.org"}
    )
    assert status == 303, location
    assert location.startswith(PREVIEW + "?subscriber=ann%40example.com&queued=")
    queued = plain(site.get(location, sid).text)
    assert "Test send queued" in queued
    assert "to ed@newsroom.example.org: pending" in queued
    assert "briefing serve" in queued  # this web process does not drain; it says who does
    assert server.handler.received == []

    counts = drain_transactional(
        site.config, site.database, composers(site.config, Signer([KEY])), clock=site.clock
    )
    assert counts == {DeliveryState.SENT: 1}
    [received] = server.handler.received
    assert received.recipient == "ed@newsroom.example.org"
    message = BytesParser(policy=policy.default).parsebytes(received.data)
    assert str(message["Subject"]).startswith("[TEST] The Daily")
    assert str(message["To"]) == "ed@newsroom.example.org"
    assert "asked for by ed" in str(message["X-Briefing-Test"])
    links = links_in(received.data)
    assert set(links) >= {"u", "p", "e"}
    for route, link in links.items():
        path = urlsplit(link).path
        answer = site.client.post(path) if route == "u" else site.client.get(path)
        assert answer.status_code == 404 and "act on nobody" in answer.text
    with site.database.transaction() as session:
        rows = session.execute(select(Delivery.kind, Delivery.status, Delivery.message_id)).all()
        assert rows == [(MessageKind.TEST.value, DeliveryState.SENT.value, received.message_id)]
        assert session.scalars(select(Edition)).all() == []  # never the subscriber's digest
        [line] = session.scalars(
            select(DeskActivity).where(DeskActivity.action == DeskAction.TEST_SENT.value)
        )
        assert line.user_name == "ed"
        ann = session.scalar(select(Subscriber.id).where(Subscriber.email == "ann@example.com"))
        assert line.detail == (
            f"daily 2026-11-26 as subscriber #{ann} (sections world) to ed@newsroom.example.org"
        )
        [(shown_as, stored)] = session.execute(select(TestSend.shown_as, TestSend.message))
        assert "ann@" not in shown_as and "ann@" not in line.detail
        assert b"ann@" not in stored and b"ann@" not in received.data
    assert "to ed@newsroom.example.org: sent" in plain(site.get(location, sid).text)
    activity = unescape(site.get(DESK + "activity", sid).text)
    assert "test sent" in activity


def test_a_test_goes_only_to_an_offered_address_and_to_the_whole_proof_list(
    site: DeskSite, server: Server
) -> None:
    sid = editor(site)
    status, said = sent_test(site, sid, {"to": "someone@elsewhere.example"})
    assert status == 400 and "Choose an address from the list" in unescape(said)
    page = site.get(PREVIEW, sid)
    missing_token = site.post(f"{DESK}edition/daily/{ISSUE}/test", sid, {"to": "*"})
    assert missing_token.status_code == 403
    with site.database.transaction() as session:
        assert session.scalars(select(TestSend)).all() == []
    assert '<option value="*">everyone on the proof list (2)</option>' in page.text
    status, location = sent_test(site, sid, {"sections": "sport", "to": "*"})
    assert status == 303, location
    drain_transactional(
        site.config, site.database, composers(site.config, Signer([KEY])), clock=site.clock
    )
    assert sorted(r.recipient for r in server.handler.received) == [
        "proof1@newsroom.example.org",
        "proof2@newsroom.example.org",
    ]
    for received in server.handler.received:
        message = BytesParser(policy=policy.default).parsebytes(received.data)
        assert str(message["Subject"]).startswith("[TEST] ")
        assert "Sport" in received.data.decode("ascii", "replace")


def run(config: Config, *args: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["--config", str(config.base_dir / "config.yaml"), *args],
        env={"BRIEFING_SECRET_KEY": KEY.decode()},
    )


def test_the_command_line_twin_queues_and_sends_a_test_now(site: DeskSite, server: Server) -> None:
    config = site.config
    refused = run(config, "edition", "test-send", "daily", "--to", "not an address")
    # main() prints a BriefingError as message + hint; the runner hands it back as is.
    assert isinstance(refused.exception, BriefingError)
    assert "test recipient 'not an address'" in str(refused.exception)
    unknown = run(
        config, "edition", "test-send", "daily", "--to", "ed@newsroom.example.org",
        "--subscriber", "nobody@example.com", "--date", ISSUE,
    )  # fmt: skip
    assert isinstance(unknown.exception, BriefingError)
    assert "nobody@example.com has no subscription to daily" in str(unknown.exception)
    assert server.handler.received == []
    result = run(
        config, "edition", "test-send", "daily", "--to", "ed@newsroom.example.org",
        "--sections", "world", "--date", ISSUE, "--as", "chief", "--now",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "daily 2026-11-26 sections world" in result.output
    assert "queued test 1 to ed@newsroom.example.org" in result.output
    assert "sent now: 1 sent" in result.output
    [received] = server.handler.received
    message = BytesParser(policy=policy.default).parsebytes(received.data)
    assert str(message["Subject"]).startswith("[TEST] The Daily")
    assert "asked for by chief" in str(message["X-Briefing-Test"])
    with site.database.transaction() as session:
        assert session.execute(select(Delivery.kind, Delivery.status)).all() == [
            (MessageKind.TEST.value, DeliveryState.SENT.value)
        ]
        [line] = session.scalars(select(DeskActivity))
        assert (line.user_name, line.action) == ("chief", DeskAction.TEST_SENT.value)


def test_a_test_send_on_postgresql(tmp_path: Path, server: Server, postgres_url: str) -> None:
    config = make_project(tmp_path, delivery=delivery_settings(server), database_url=postgres_url)
    database = open_database(config.database)
    try:
        ingest(config, database, NOW - timedelta(hours=1))
        result = run(
            config, "edition", "test-send", "daily", "--to", "ed@newsroom.example.org",
            "--to", "proofs@newsroom.example.org", "--date", ISSUE, "--now",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "sent now: 2 sent" in result.output
        assert sorted(r.recipient for r in server.handler.received) == [
            "ed@newsroom.example.org",
            "proofs@newsroom.example.org",
        ]
        with database.transaction() as session:
            stored = session.execute(select(TestSend.recipient, TestSend.message)).all()
            assert len(stored) == 2
            by_recipient = {r.recipient: r.data for r in server.handler.received}
            for recipient, message in stored:
                # The stored message is the one sent, after the delivery header the drain adds.
                assert by_recipient[recipient].endswith(message)
    finally:
        database.dispose()


def test_the_frames_show_the_very_cut_their_page_showed(site: DeskSite) -> None:
    sid = editor(site)
    page = site.get(PREVIEW + "?sections=world", sid)
    light = unescape(FRAME.findall(page.text)[0][1])
    first = site.get(light, sid).text
    assert "Port Elwyn approves harbour expansion" in first
    # The article is dropped after the page was cut: its frames still show that cut ...
    with site.database.transaction() as session:
        url = session.scalar(select(Article.url).where(Article.title.like("Port Elwyn%")))
    assert url is not None
    override(
        site.config, site.database, "daily", START.date(), OverrideKind.DROP, url,
        who="ed", now=site.clock(),
    )  # fmt: skip
    assert site.get(light, sid).text == first
    # ... while a frame without the page's id, or of another session, cuts it anew.
    fresh = site.get(light.split("&v=")[0], sid).text
    assert "Port Elwyn approves harbour expansion" not in fresh
    site.add("ana", Role.EDITOR)
    other = site.get(light, site.session("ana")).text
    assert "Port Elwyn approves harbour expansion" not in other
    # The id is for that one ask: the same id with other sections cuts those.
    sport = site.get(light.replace("sections=world", "sections=sport"), sid).text
    assert "Port Elwyn" not in sport and "SPORT" in sport.upper()


def test_a_web_process_that_drains_mail_sends_the_test_within_seconds(
    tmp_path: Path, server: Server
) -> None:
    config = make_project(
        tmp_path,
        desk={"addresses": {"ed": "ed@newsroom.example.org"}},
        delivery=delivery_settings(server),
    )
    database = open_database(config.database)
    ingest(config, database, NOW - timedelta(hours=1))
    try:
        with serve_desk(config, database, drain_interval=30) as site:
            sid = editor(site)
            status, location = sent_test(
                site, sid, {"sections": "world", "to": "ed@newsroom.example.org"}
            )
            assert status == 303, location
            # Woken by the request, not by its 30-second poll.
            deadline = time.monotonic() + 10
            while not server.handler.received and time.monotonic() < deadline:
                time.sleep(0.05)
            [received] = server.handler.received
            assert received.recipient == "ed@newsroom.example.org"
            assert b"Subject: [TEST] The Daily" in received.data
            page = plain(site.get(location, sid).text)
            assert "This web process sends it within seconds" in page
            assert "to ed@newsroom.example.org: sent" in page
    finally:
        database.dispose()


def test_a_broken_site_template_is_shown_as_such(site: DeskSite) -> None:
    sid = editor(site)
    templates = site.config.base_dir / "templates"
    templates.mkdir()
    (templates / "digest.mjml.j2").write_text("<mjml>{{ broken </mjml>", encoding="utf-8")
    page = site.get(PREVIEW + "?sections=world", sid)
    assert page.status_code == 500
    said = plain(page.text)
    assert "The edition could not be shown" in said
    assert "The edition could not be rendered: briefing daily: template error:" in said
    assert site.get(PREVIEW + "/html?sections=world", sid).status_code == 500


def test_the_coming_edition_page_links_each_variant_to_its_preview(site: DeskSite) -> None:
    sid = editor(site)
    edition = site.get(f"{DESK}edition/daily/{ISSUE}", sid)
    assert edition.status_code == 200, edition.text
    links = [unescape(link) for link in re.findall(r'href="([^"]+/preview\?[^"]+)"', edition.text)]
    assert links, "the coming edition page links no preview"
    for link in links:
        page = site.get(link, sid)
        assert page.status_code == 200, link
        assert "Preview: daily, issue of 2026-11-26" in unescape(page.text)
        back = f'<a href="{DESK}edition/daily/{ISSUE}">Back to the coming edition</a>'
        assert back in page.text
