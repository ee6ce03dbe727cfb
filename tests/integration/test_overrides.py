"""Per-issue overrides: each kind changes the variants cut after it, never one cut before.

Real SQLite files (and one PostgreSQL case): overrides are stored through the
service, dispatch cuts the variants, and the frozen variants' HTML and text
are read back from the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from briefing.cli import cli
from briefing.config import Config
from briefing.domain.states import OverrideKind
from briefing.domain.tokens import Purpose, Signer
from briefing.editions.approval import approve
from briefing.editions.dispatch import dispatch
from briefing.editions.issue import issue_view
from briefing.editions.overrides import override, undo
from briefing.editions.preview import preview
from briefing.errors import EditionError
from briefing.ingest import ingest
from briefing.pipeline.compose import fill_links
from briefing.store import Database, open_database
from briefing.store.schema import Article, Variant
from tests.support.factories import NOW, config_dict, make_project, markdown_article, subscribe

DAY = date(2026, 11, 26)
LONDON_SEVEN = datetime(2026, 11, 26, 7, 0, 30, tzinfo=UTC)
NEW_YORK_SEVEN = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)
W = "https://news.example.org/world/{}".format
LEAD = "https://coast.example.com/barrier"
OTHER = "https://bay.example.net/barrier-fails"
OLD = "https://news.example.org/world/archive"
BARRIER = (
    "The tidal barrier at Kessel Bay failed during the night surge, flooding the promenade. "
    "Engineers said a gate motor burned out and the council closed the seafront road."
)


def shaped_project(folder: Path, **overrides: object) -> Config:
    """The test project, with room for every world story and one story from two sources."""
    sections = config_dict()["sections"]
    sections["world"]["max_items"] = 6
    briefings = config_dict()["briefings"]
    briefings["daily"]["max_items"] = 10
    world = folder / "content" / "world"
    markdown_article(
        world,
        "barrier-a.md",
        title="Tidal barrier fails in Kessel Bay surge",
        url=LEAD,
        published=(NOW - timedelta(minutes=20)).isoformat(),
        body=BARRIER,
    )
    markdown_article(
        world,
        "barrier-b.md",
        title="Kessel Bay tidal barrier fails in night surge",
        url=OTHER,
        published=(NOW - timedelta(minutes=50)).isoformat(),
        body=BARRIER + " Boats were moved upriver.",
    )
    return make_project(folder, sections=sections, briefings=briefings, **overrides)


def prepare(config: Config, database: Database) -> None:
    # An old story, first seen three days ago: outside every window of this issue.
    markdown_article(
        config.base_dir / "content" / "world",
        "old.md",
        title="Lighthouse keeper retires after forty years",
        url=OLD,
        published=(NOW - timedelta(days=3)).isoformat(),
        body="The last keeper of the Norland light handed over the keys to the trust.",
    )
    ingest(config, database, NOW - timedelta(hours=1))
    with database.transaction() as session:
        session.execute(
            update(Article).where(Article.url == OLD).values(first_seen_at=NOW - timedelta(days=3))
        )
    subscribe(
        config,
        database,
        [
            "ldn@example.com,,daily,world;business,Europe/London,07:00,daily",
            "nyc@example.com,,daily,world;business,America/New_York,07:00,daily",
        ],
        datetime(2026, 11, 26, 0, 0, tzinfo=UTC),
    )


@pytest.fixture
def shaped(tmp_path: Path) -> Iterator[tuple[Config, Database]]:
    config = shaped_project(tmp_path)
    database = open_database(config.database)
    prepare(config, database)
    yield config, database
    database.dispose()


def variant_parts(database: Database) -> list[tuple[datetime, str, str]]:
    with database.transaction() as session:
        rows = session.execute(
            select(Variant.cut_at, Variant.html, Variant.text).order_by(Variant.id)
        )
        return [(cut_at, html, text) for cut_at, html, text in rows]


def test_each_kind_changes_the_cut_and_a_cut_variant_stays_frozen(
    shaped: tuple[Config, Database], signer: Signer
) -> None:
    config, database = shaped

    def edit(kind: OverrideKind, article: str, text: str | None = None) -> int:
        done = override(config, database, "daily", DAY, kind, article, who="ed", now=NOW, text=text)
        return done.override.id

    pin = edit(OverrideKind.PIN, W(2))
    edit(OverrideKind.DROP, "https://wire.example.net/0")
    edit(OverrideKind.HEADLINE, W(0), "Harbour vote: four new berths approved")
    edit(OverrideKind.SUMMARY, W(1), "An editor's summary of the mountain passes.")
    edit(OverrideKind.SOURCE, OTHER)
    edit(OverrideKind.ADD, OLD)
    plain = dispatch(config, database, signer, LONDON_SEVEN)
    assert plain.pending == 1 and plain.variants == 1
    [(_, html, text)] = variant_parts(database)

    # Pinned: the oldest world story leads its section.
    world = text.split("WORLD", 1)[1]
    assert world.index("Norland election goes to a recount") < world.index(
        "Harbour vote: four new berths approved"
    )
    # Dropped: the first wire story is gone; the others stay.
    assert "Copper price reaches a two-year high" not in text + html
    assert "Insurer reports record storm claims" in text
    # Headline and summary replaced in both parts.
    for part in (html, text):
        assert "Harbour vote: four new berths approved" in part
        assert "Port Elwyn approves harbour expansion" not in part
        assert "An editor" in part and "summary of the mountain passes." in part
    # Chosen source: the older report is the item, the newer one under "Also covered by".
    assert "Kessel Bay tidal barrier fails in night surge" in text
    assert "Tidal barrier fails in Kessel Bay surge" not in text
    assert f"Also covered by:\n  - coast.example.com: {LEAD}" in text
    # Added: a story first seen three days ago, outside the window, is in.
    assert "Lighthouse keeper retires after forty years" in text

    # After London's cut: drop a story, undo the pin. London's variant keeps what it had.
    dropped = override(
        config, database, "daily", DAY, OverrideKind.DROP, W(0), who="ed", now=LONDON_SEVEN
    )
    assert [(v.editions, v.sent, v.waiting) for v in dropped.cut] == [(1, 0, 1)]
    assert "1 variant(s) already cut (1 edition(s)) keep what they had" in dropped.describe()
    undone = undo(config, database, "daily", pin, who="ed", now=LONDON_SEVEN)
    assert undone.override.undone_by == "ed" and not undone.override.active

    dispatch(config, database, signer, NEW_YORK_SEVEN)
    [(_, html_before, text_before), (_, html_after, text_after)] = variant_parts(database)
    assert (html_before, text_before) == (html, text)
    assert "Harbour vote: four new berths approved" not in text_after + html_after
    world_after = text_after.split("WORLD", 1)[1]
    # Undo restored the order: newest first, the pinned story back behind the others.
    assert world_after.index("Snowstorm closes Valdoria mountain passes") < world_after.index(
        "Norland election goes to a recount"
    )
    assert "Lighthouse keeper retires after forty years" in text_after


def test_preview_and_show_see_what_dispatch_cuts(
    shaped: tuple[Config, Database], signer: Signer, tmp_path: Path
) -> None:
    config, database = shaped
    override(config, database, "daily", DAY, OverrideKind.PIN, W(2), who="ed", now=NOW)
    override(
        config,
        database,
        "daily",
        DAY,
        OverrideKind.HEADLINE,
        W(1),
        who="ed",
        now=NOW,
        text="Passes shut by snow",
    )
    shown = preview(
        config,
        database,
        signer,
        briefing="daily",
        at=LONDON_SEVEN,
        out=tmp_path / "preview",
        subscriber="ldn@example.com",
    )
    view = issue_view(config, database, "daily", DAY, LONDON_SEVEN)
    dispatch(config, database, signer, LONDON_SEVEN)
    [(_, html, text)] = variant_parts(database)
    with database.transaction() as session:
        stored = session.scalars(select(Variant)).one()
        placeholders = dict(stored.placeholders)
    tokens = {purpose.value: signer.inert(purpose) for purpose in Purpose}
    assert shown.text.read_text(encoding="utf-8") == fill_links(text, placeholders, tokens)
    assert shown.html.read_text(encoding="utf-8") == fill_links(html, placeholders, tokens)
    [upcoming] = view.upcoming
    assert upcoming.subscriptions == 2 and upcoming.sections == ("world", "business")
    first = upcoming.items[0]
    assert first.section == "world" and first.url == W(2) and first.marks[0].startswith("pinned #")
    renamed = next(item for item in upcoming.items if item.url == W(1))
    assert renamed.title == "Passes shut by snow" and renamed.marks[0].startswith("headline #")
    assert view.cut == ()
    after = issue_view(config, database, "daily", DAY, LONDON_SEVEN + timedelta(minutes=1))
    assert [(v.editions, v.waiting) for v in after.cut] == [(1, 1)]


def test_errors_name_the_article_and_the_briefing(shaped: tuple[Config, Database]) -> None:
    config, database = shaped
    with pytest.raises(
        EditionError, match=r"daily: no stored article with URL or id 'https://x.example/'"
    ):
        override(
            config,
            database,
            "daily",
            DAY,
            OverrideKind.PIN,
            "https://x.example/",
            who="ed",
            now=NOW,
        )
    with pytest.raises(EditionError, match=r"new headline of 'Norland election .*' is empty"):
        override(
            config, database, "daily", DAY, OverrideKind.HEADLINE, W(2), who="ed", now=NOW, text=" "
        )
    with pytest.raises(EditionError, match=r"daily: no override #999"):
        undo(config, database, "daily", 999, who="ed", now=NOW)


def test_cli_shapes_and_shows_an_issue(shaped: tuple[Config, Database]) -> None:
    config, _ = shaped
    path = str(config.base_dir / "config.yaml")
    env = {"BRIEFING_SECRET_KEY": "overrides-test-key"}
    runner = CliRunner()
    base = ["--config", path, "edition"]
    when = ["--date", "2026-11-26", "--at", NOW.isoformat()]
    pinned = runner.invoke(cli, [*base, "pin", "daily", W(2), *when, "--as", "ana"], env=env)
    assert pinned.exit_code == 0, pinned.output
    assert "saved #1 pin 'Norland election goes to a recount' for daily 2026-11-26" in pinned.output
    assert "no variant of this issue is cut yet" in pinned.output
    summary = runner.invoke(
        cli, [*base, "summary", "daily", W(0), "Berths approved.", *when, "--as", "ana"], env=env
    )
    assert summary.exit_code == 0, summary.output
    shown = runner.invoke(cli, [*base, "show", "daily", *when], env=env)
    assert shown.exit_code == 0, shown.output
    assert "#1 pin 'Norland election goes to a recount'" in shown.output
    assert "(by ana at 2026-11-26 06:00 UTC)" in shown.output
    assert "if cut now: sections world, business (2 subscription(s))" in shown.output
    world = shown.output.split("[world]", 1)[1]
    assert world.splitlines()[1].strip().startswith("Norland election goes to a recount")
    assert "<- pinned #1 by ana" in world
    undone = runner.invoke(cli, [*base, "undo", "daily", "1", "--as", "ana"], env=env)
    assert undone.exit_code == 0 and "undid #1 pin" in undone.output
    again = runner.invoke(cli, [*base, "show", "daily", *when, "--undone"], env=env)
    assert "undone #1 pin 'Norland election goes to a recount'" in again.output
    assert "<- pinned" not in again.output


def test_overrides_and_approval_on_postgresql(
    postgres_url: str, tmp_path: Path, signer: Signer
) -> None:
    config = shaped_project(tmp_path, database_url=postgres_url)
    database = open_database(config.database)
    try:
        prepare(config, database)
        override(config, database, "daily", DAY, OverrideKind.DROP, W(0), who="ed", now=NOW)
        approve(config, database, "daily", DAY, who="chief", now=NOW)
        assert not approve(config, database, "daily", DAY, who="x", now=NOW).new
        dispatch(config, database, signer, LONDON_SEVEN)
        [(_, _, text)] = variant_parts(database)
        assert "Port Elwyn approves harbour expansion" not in text
        view = issue_view(config, database, "daily", DAY, LONDON_SEVEN)
        assert [(v.editions, v.waiting) for v in view.cut] == [(1, 1)]
        assert view.approval is not None and view.approval.approved_by == "chief"
    finally:
        database.dispose()


def test_a_pinned_article_older_than_the_window_is_brought_in_first(
    shaped: tuple[Config, Database],
) -> None:
    config, database = shaped
    before = issue_view(config, database, "daily", DAY, LONDON_SEVEN)
    assert OLD not in [item.url for item in before.upcoming[0].items]
    override(config, database, "daily", DAY, OverrideKind.PIN, OLD, who="ed", now=NOW)
    after = issue_view(config, database, "daily", DAY, LONDON_SEVEN)
    first = after.upcoming[0].items[0]
    assert (first.section, first.url) == ("world", OLD)
