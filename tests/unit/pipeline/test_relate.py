"""Folding same-story coverage and related links, in a built variant and a dispatched edition."""

from __future__ import annotations

import mailbox
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from briefing.audience.imports import import_subscribers
from briefing.config import Config
from briefing.deliver import OutboxTransport, deliver
from briefing.domain.models import DigestItem, SelectedArticle
from briefing.domain.tokens import Signer
from briefing.editions.dispatch import dispatch
from briefing.editions.variants import load_inputs
from briefing.ingest import ingest
from briefing.pipeline.cut import BuiltVariant, VariantInputs, VariantSpec, cut_variant
from briefing.pipeline.relate import Archive
from briefing.pipeline.render import new_placeholders
from briefing.store import open_database
from briefing.store.schema import Article, Variant
from tests.support.factories import (
    NOW,
    config_dict,
    make_config,
    make_selected,
    markdown_article,
    rss_feed,
)
from tests.support.message_checks import check_message

# Invented stories. Three outlets cover one harbour vote (the same story); the
# dockers' strike is another story about the same harbour (a related link); the
# preview of the vote, a day earlier, is the same story again; the snowstorm
# and the recount are unrelated.
HARBOUR = (
    "Port Elwyn approves $2.4bn harbour expansion",
    (
        "The Port Elwyn harbour authority approved a $2.4 billion expansion on Tuesday, adding "
        "four deep-water berths to be run by Norland Shipping. Dockers' unions welcomed the vote, "
        "which ends two years of planning disputes."
    ),
)
HARBOUR_WIRE = (
    "Norland Shipping wins Port Elwyn berths as harbour expansion gets green light",
    (
        "Norland Shipping will operate four new deep-water berths after the Port Elwyn harbour "
        "authority voted for a $2.4 billion expansion, officials said on Tuesday."
    ),
)
HARBOUR_ECHO = (
    "Harbour authority backs Port Elwyn expansion plan",
    (
        "Port Elwyn's harbour authority backed the $2.4 billion expansion plan, with four "
        "deep-water berths for Norland Shipping, ending a long planning dispute."
    ),
)
HARBOUR_PREVIEW = (
    "Port Elwyn harbour expansion vote due on Tuesday",
    (
        "The Port Elwyn harbour authority will vote on Tuesday on a $2.4 billion expansion with "
        "four deep-water berths run by Norland Shipping."
    ),
)
STRIKE = (
    "Port Elwyn dockers vote to strike over automated cranes",
    (
        "Dockers at Port Elwyn voted to strike next month over plans to bring in automated cranes "
        "at the harbour, their union said, warning of hundreds of job losses."
    ),
)
SNOW = (
    "Snowstorm closes Valdoria mountain passes",
    (
        "Heavy snow closed three mountain passes in Valdoria overnight, stranding lorries and "
        "cutting power to villages, the regional weather office said."
    ),
)
RECOUNT = (
    "Norland election goes to a recount",
    (
        "Ballots in three districts of Norland will be counted again by hand after the margin fell "
        "below half a percent, the electoral board said."
    ),
)
# Between the strike's similarity to the harbour stories (about 0.09-0.14) and
# the same story's (0.31 and more); the unrelated stories score below 0.08.
RELATED_THRESHOLD = 0.1
FOLD_THRESHOLD = 0.25


def article(
    id: int, story: tuple[str, str], hours_ago: float, section: str = "world", **overrides: Any
) -> SelectedArticle:
    """Return a stored article of ``story`` published and first seen ``hours_ago``."""
    at = NOW - timedelta(hours=hours_ago)
    title, body = story
    return make_selected(
        id, section, title=title, body_text=body, published_at=at, first_seen_at=at, **overrides
    )


LEAD = article(1, HARBOUR, 1)
WIRE = article(2, HARBOUR_WIRE, 1.5, source="Coast Wire", url="https://wire.example.net/harbour")
ECHO = article(3, HARBOUR_ECHO, 3, source=None, url="https://www.elwyn-echo.example.com/h")
SNOWSTORM = article(4, SNOW, 2)
ELECTION = article(5, RECOUNT, 4)
DOCKERS = article(6, STRIKE, 20)
EARLIER = article(7, HARBOUR_PREVIEW, 26)
CANDIDATES = [LEAD, WIRE, ECHO, SNOWSTORM, ELECTION]
ARCHIVE = [*CANDIDATES, DOCKERS, EARLIER]
SPEC = VariantSpec("daily", ("world", "business", "sport"), None, NOW, "en_GB", date(2026, 11, 26))


def config_with(tmp_path: Path, **briefing: Any) -> Config:
    """Return the test config with settings of the daily briefing replaced."""
    data = config_dict()
    data["briefings"]["daily"].update(
        {"related_threshold": RELATED_THRESHOLD, "fold_threshold": FOLD_THRESHOLD, **briefing}
    )
    return make_config(tmp_path, briefings=data["briefings"])


def build(
    config: Config,
    candidates: dict[str, list[SelectedArticle]] | None = None,
    archive: list[SelectedArticle] | None = None,
) -> BuiltVariant:
    """Build the variant of SPEC from the world candidates and the archive above."""
    inputs = VariantInputs(
        candidates=candidates if candidates is not None else {"world": CANDIDATES},
        archive=Archive(archive if archive is not None else ARCHIVE),
    )
    return cut_variant(
        config, SPEC, inputs, placeholders=dict.fromkeys(new_placeholders(), "x" * 32)
    )


def items(built: BuiltVariant) -> dict[str, DigestItem]:
    return {item.article.title: item for item in built.digest.items}


def related_ids(built: BuiltVariant) -> dict[int, list[int | None]]:
    return {
        item.article.id: [link.article_id for link in item.related] for item in built.digest.items
    }


def test_the_fixture_stories_score_as_the_comments_say() -> None:
    index = Archive(ARCHIVE).index
    same = [index.similarity(str(a), str(b)) for a, b in ((1, 2), (1, 3), (2, 3), (1, 7))]
    related = [index.similarity(str(a), "6") for a in (1, 2, 3)]
    unrelated = [index.similarity(str(a), str(b)) for a in (1, 2, 3, 6) for b in (4, 5)]
    assert min(same) > FOLD_THRESHOLD > max(related)
    assert index.similarity("1", "6") > RELATED_THRESHOLD > max(unrelated)


def test_same_story_is_shown_once_and_takes_one_slot(tmp_path: Path) -> None:
    built = build(config_with(tmp_path))  # world takes 3 items
    world = built.digest.sections[0]
    assert [item.article.id for item in world.items] == [LEAD.id, SNOWSTORM.id, ELECTION.id]
    lead = world.items[0]
    assert [(link.source, link.url) for link in lead.also_covered] == [
        ("Coast Wire", "https://wire.example.net/harbour"),
        ("elwyn-echo.example.com", "https://www.elwyn-echo.example.com/h"),
    ]
    assert all(not item.also_covered for item in world.items[1:])
    assert "Also covered by:\n  - Coast Wire: https://wire.example.net/harbour" in (
        built.rendered.text
    )


def test_without_folding_the_story_would_fill_the_section(tmp_path: Path) -> None:
    built = build(config_with(tmp_path, fold_threshold=1.0))
    assert [item.article.id for item in built.digest.items] == [LEAD.id, WIRE.id, SNOWSTORM.id]


def test_newest_coverage_leads_across_sections(tmp_path: Path) -> None:
    newest_wire = WIRE.model_copy(
        update={"section": "business", "published_at": NOW, "first_seen_at": NOW}
    )
    candidates = {"world": [LEAD, ECHO, SNOWSTORM], "business": [newest_wire, ELECTION]}
    built = build(config_with(tmp_path), candidates)
    by_section = {s.key: [i.article.id for i in s.items] for s in built.digest.sections}
    assert by_section == {"world": [SNOWSTORM.id], "business": [WIRE.id, ELECTION.id], "sport": []}
    lead = built.digest.items[1]
    assert [link.article_id for link in lead.also_covered] == [LEAD.id, ECHO.id]


def test_related_links_are_other_stories(tmp_path: Path) -> None:
    built = build(config_with(tmp_path))
    # The strike, not the folded coverage, not the digest's items, not the
    # earlier piece on the same vote.
    assert related_ids(built) == {LEAD.id: [DOCKERS.id], SNOWSTORM.id: [], ELECTION.id: []}
    (link,) = items(built)[HARBOUR[0]].related
    assert (link.title, link.url) == (STRIKE[0], DOCKERS.url)
    assert f"Related:\n  - {STRIKE[0]}" in built.rendered.text


def test_a_link_is_used_once_per_digest_by_the_most_important_item(tmp_path: Path) -> None:
    # Low enough for the strike to relate to every item; only the top one gets it.
    built = build(config_with(tmp_path, related_threshold=0.0))
    found = [link.article_id for item in built.digest.items for link in item.related]
    assert found.count(DOCKERS.id) == 1
    assert related_ids(built)[LEAD.id][0] == DOCKERS.id
    assert EARLIER.id not in found and WIRE.id not in found and ECHO.id not in found


def test_threshold_is_respected(tmp_path: Path) -> None:
    score = Archive(ARCHIVE).index.similarity(str(LEAD.id), str(DOCKERS.id))
    below = build(config_with(tmp_path / "a", related_threshold=round(score - 0.005, 4)))
    above = build(config_with(tmp_path / "b", related_threshold=round(score + 0.005, 4)))
    assert related_ids(below)[LEAD.id] == [DOCKERS.id]
    assert related_ids(above)[LEAD.id] == []


def test_window_is_respected(tmp_path: Path) -> None:
    old = article(DOCKERS.id, STRIKE, 24 * 4)
    archive = [*CANDIDATES, old, EARLIER]
    narrow = build(
        config_with(tmp_path / "a", related_threshold=0.0, related_window="3d"), archive=archive
    )
    wide = build(
        config_with(tmp_path / "b", related_threshold=0.0, related_window="5d"), archive=archive
    )
    assert DOCKERS.id not in related_ids(narrow)[LEAD.id]
    assert related_ids(wide)[LEAD.id] == [DOCKERS.id]


def test_no_related_links_when_the_briefing_wants_none(tmp_path: Path) -> None:
    built = build(config_with(tmp_path, related_links=0))
    assert all(not item.related for item in built.digest.items)
    assert built.digest.items[0].also_covered


def test_same_inputs_build_the_same_variant(tmp_path: Path) -> None:
    config = config_with(tmp_path, related_threshold=0.0)
    first, second = build(config), build(config)
    assert first.digest == second.digest
    assert first.rendered.text == second.rendered.text
    assert first.composed.template.to_bytes() == second.composed.template.to_bytes()


def test_a_candidate_missing_from_the_archive_is_still_folded(tmp_path: Path) -> None:
    built = build(config_with(tmp_path), archive=[LEAD, SNOWSTORM, ELECTION, DOCKERS])
    assert [item.article.id for item in built.digest.items] == [LEAD.id, SNOWSTORM.id, ELECTION.id]
    assert len(built.digest.items[0].also_covered) == 2


# --------------------------------------------------------------------------
# In a dispatched edition, from files on disk through the store to the message.

AT = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


@pytest.fixture
def harbour_project(tmp_path: Path) -> Config:
    """A project whose World desk and Test Wire both cover the harbour vote (not on disk yet)."""
    data = config_dict()
    data["briefings"]["daily"].update(
        related_threshold=RELATED_THRESHOLD, fold_threshold=FOLD_THRESHOLD
    )
    return make_config(tmp_path / "site", briefings=data["briefings"])


def write_world(config: Config, name: str, story: tuple[str, str], hours_ago: float) -> None:
    markdown_article(
        config.base_dir / "content" / "world",
        f"{name}.md",
        title=story[0],
        body=story[1],
        url=f"https://news.example.org/world/{name}",
        published=(NOW - timedelta(hours=hours_ago)).isoformat(),
    )


def write_wire(config: Config, *stories: tuple[str, tuple[str, str], float]) -> None:
    items = [
        {
            "title": title,
            "link": f"https://wire.example.net/{slug}",
            "guid": slug,
            "pubDate": (NOW - timedelta(hours=hours)).strftime("%a, %d %b %Y %H:%M:%S +0000"),
            "description": body,
        }
        for slug, (title, body), hours in stories
    ]
    (config.base_dir / "content" / "wire.xml").write_text(rss_feed(items), encoding="utf-8")


def write_edition(config: Config) -> None:
    write_world(config, "harbour", HARBOUR, 1)
    write_world(config, "snow", SNOW, 2)
    write_wire(config, ("harbour", HARBOUR_WIRE, 2), ("recount", RECOUNT, 3))


def test_dispatched_edition_folds_the_wire_copy_under_our_story(
    harbour_project: Config, signer: Signer
) -> None:
    config = harbour_project
    database = open_database(config.database)
    # The strike was first seen a day earlier: it is in the archive, not a candidate.
    write_world(config, "strike", STRIKE, 20)
    write_wire(config)
    ingest(config, database, NOW - timedelta(days=1))
    write_edition(config)
    ingest(config, database, NOW - timedelta(hours=1))
    subscribers = config.base_dir / "subs.csv"
    subscribers.write_text(
        "email,name,briefing,sections,timezone,send_time,frequency\n"
        "ann@example.com,Ann,daily,world;business,Europe/London,07:00,daily\n"
    )
    import_subscribers(config, database, subscribers, datetime(2026, 11, 1, tzinfo=UTC))
    assert dispatch(config, database, signer, AT).pending == 1

    with database.transaction() as session:
        ids = {a.title: a.id for a in session.scalars(select(Article))}
        variant = session.scalars(select(Variant)).one()
        stored = [(item.article_id, item.also_covered, item.related) for item in variant.items]
    assert [article_id for article_id, _, _ in stored] == [
        ids[HARBOUR[0]],
        ids[SNOW[0]],
        ids[RECOUNT[0]],
    ]
    also = stored[0][1]
    assert [(link["source"], link["url"]) for link in also] == [
        ("Test Wire", "https://wire.example.net/harbour")
    ]
    related = {link["article_id"] for _, _, links in stored for link in links}
    assert related == {ids[STRIKE[0]]}
    assert not related & {article_id for article_id, _, _ in stored}

    deliver(config, database, signer, OutboxTransport(config.outbox_path), clock=lambda: AT)
    box = mailbox.Maildir(str(config.outbox_path))
    (raw,) = [box.get_bytes(key) for key in box.iterkeys()]
    _, text, html = check_message(raw, config.site.base_url)
    text = text.replace("\r\n", "\n")
    assert text.count("\nRead: ") == 3
    assert "Read: https://wire.example.net/harbour" not in text
    assert "Also covered by:\n  - Test Wire: https://wire.example.net/harbour" in text
    assert 'Also covered by <a href="https://wire.example.net/harbour"' in html
    assert f"Related:\n  - {STRIKE[0]}" in text
    database.dispose()


def test_variants_of_one_run_share_the_archive_and_its_index(
    harbour_project: Config, signer: Signer
) -> None:
    config = harbour_project
    database = open_database(config.database)
    write_edition(config)
    write_world(config, "strike", STRIKE, 20)
    ingest(config, database, NOW - timedelta(hours=1))
    world_only = VariantSpec("daily", ("world",), None, AT, "en_GB", date(2026, 11, 26))
    business_only = VariantSpec("daily", ("business",), None, AT, "en_GB", date(2026, 11, 26))
    archives: dict[Any, Archive] = {}
    first = load_inputs(database, config, world_only, archives)
    second = load_inputs(database, config, business_only, archives)
    alone = load_inputs(database, config, world_only)
    assert first.archive is second.archive and len(archives) == 1
    assert first.archive.index is second.archive.index
    assert len(first.archive) == 5  # every section's articles, each once
    assert alone.archive is not first.archive
    assert cut_variant(config, world_only, first).digest == (
        cut_variant(config, world_only, alone).digest
    )
    database.dispose()
