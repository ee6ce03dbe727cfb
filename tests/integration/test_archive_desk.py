"""The desk's archive over a real server: who may read it, the pages, a variant in its frame."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from briefing.domain.states import Role
from briefing.store.archive import archived_issue
from tests.support.archive import DAY, READERS, sent_archive
from tests.support.desk import DESK, DeskSite, serve_desk

ARCHIVE = DESK + "archive/"
ISSUE = ARCHIVE + "daily/" + DAY.isoformat()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[DeskSite]:
    # The archive is the desk's whatever public_archive says: off here.
    config, database = sent_archive(tmp_path, public=False)
    with serve_desk(config, database) as served:
        yield served
    database.dispose()


def _variant_ids(site: DeskSite) -> dict[tuple[str, ...], int]:
    """Return the issue's variant ids by their sections, in the order the desk lists them."""
    with site.database.transaction() as session:
        issue = archived_issue(session, "daily", DAY)
    assert issue is not None
    return {variant.sections: variant.id for variant in issue.variants}


DEFAULT = ("world", "business", "sport")


def _cells(row: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row)]


def test_an_anonymous_visitor_is_sent_to_the_login(site: DeskSite) -> None:
    first = _variant_ids(site)[DEFAULT]
    for path in (
        ARCHIVE,
        ARCHIVE + "daily/",
        ISSUE,
        f"{ISSUE}/{first}/html",
        f"{ISSUE}/{first}/text",
    ):
        response = site.get(path, None)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith(DESK + "login?next=")


@pytest.mark.parametrize("role", list(Role))
def test_every_role_reads_the_archive_with_its_figures(site: DeskSite, role: Role) -> None:
    site.add("reader", role)
    sid = site.session("reader")
    home = site.get(DESK, sid)
    assert f'<a href="{ARCHIVE}">Archive</a>' in home.text
    archive = site.get(ARCHIVE, sid)
    assert archive.status_code == 200
    assert f'href="{ISSUE}"' in archive.text
    # Issue, subject, variants, editions, sent, waiting, failed, bounced, not sent.
    row = re.search(rf'<tr><td><a href="{ISSUE}">.*?</tr>', archive.text)
    assert row and _cells(row.group(0))[2:] == ["2", "2", "2", "0", "0", "0", "0"]
    listing = site.get(ARCHIVE + "daily/", sid)
    assert listing.status_code == 200
    variant_rows = re.findall(r"<tr><td></td>.*?</tr>", listing.text)
    # Both were cut at 07:00; in the order they were stored (Bob's first, then Ann's).
    assert [_cells(row)[1] for row in variant_rows] == [
        ", ".join(sections) for sections in _variant_ids(site)
    ]
    assert sorted(_cells(row)[1] for row in variant_rows) == ["world", "world, business, sport"]
    assert all(_cells(row)[6:] == ["1", "1", "0", "0", "0", "0"] for row in variant_rows)


def test_an_issue_frames_each_variant_with_inert_links(site: DeskSite) -> None:
    site.add("ed", Role.EDITOR)
    sid = site.session("ed")
    ids = _variant_ids(site)
    default, world = ids[DEFAULT], ids[("world",)]
    page = site.get(ISSUE, sid)
    assert page.status_code == 200
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    frame = re.search(r'<iframe [^>]*src="([^"]+)"[^>]*>', page.text)
    assert frame and frame.group(1) == f"{ISSUE}/{next(iter(ids.values()))}/html"
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in frame.group(0)
    for variant in (default, world):
        chosen = site.get(f"{ISSUE}?variant={variant}", sid)
        assert '<iframe title="The Daily: ' in chosen.text
        assert f'src="{ISSUE}/{variant}/html"' in chosen.text

    html = site.get(f"{ISSUE}/{default}/html", sid)
    assert html.status_code == 200
    policy = html.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in policy and "sandbox" in policy
    assert "script-src" not in policy and "default-src 'none'" in policy
    assert html.headers["cache-control"] == "no-store"
    for address, name in READERS.items():
        assert address not in html.text and name not in html.text
    unsubscribe = re.findall(r"https://news\.example\.org(/b/u/[A-Za-z0-9_-]{32})", html.text)
    assert unsubscribe
    followed = site.client.get(unsubscribe[0])
    assert followed.status_code == 404 and "act on nobody" in followed.text

    text = site.get(f"{ISSUE}/{world}/text", sid)
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert "WORLD" in text.text and "SPORT" not in text.text


def test_unknown_briefings_issues_and_variants_are_plain_404s(site: DeskSite) -> None:
    site.add("ops", Role.OPS)
    sid = site.session("ops")
    default = _variant_ids(site)[DEFAULT]
    for path in (
        ARCHIVE + "weekly/",
        ARCHIVE + "daily/2026-11-25",
        ARCHIVE + "daily/not-a-date",
        f"{ARCHIVE}daily/2026-11-25/{default}/html",
        f"{ISSUE}/999999/html",
        f"{ISSUE}/x/text",
    ):
        response = site.get(path, sid)
        assert response.status_code == 404, path
        assert "Traceback" not in response.text
    bad_page = site.get(ARCHIVE + "daily/?before=soon", sid)
    assert bad_page.status_code == 400 and "YYYY-MM-DD" in bad_page.text
    empty = site.get(ARCHIVE + "daily/?before=2026-01-01", sid)
    assert empty.status_code == 200 and "No issue before 2026-01-01" in empty.text
