"""An editor's overrides as data: each kind changes the cut, nothing else does."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from briefing.domain.models import SelectedArticle
from briefing.pipeline.cut import VariantInputs, VariantSpec, cut_variant
from briefing.pipeline.overrides import EditorialOverrides, favour, reshape_folding
from briefing.pipeline.relate import Archive, Folding
from briefing.pipeline.render import new_placeholders
from briefing.pipeline.select import select_articles
from tests.support.factories import NOW, make_config, make_selected

SPEC = VariantSpec("daily", ("world", "business"), None, NOW, "en_GB", date(2026, 11, 26))
TOPICS = {
    1: ("Harbour reopens after storm", "Cranes lift cargo again at the eastern docks."),
    2: ("Bank raises interest rates", "Mortgage costs climb as the central bank acts."),
    3: ("Orchestra tours the north", "Violinists play village halls across the region."),
    4: ("Glacier retreat measured", "Survey teams mapped the ice edge with drones."),
    5: ("Ferry strike ends", "Crews accepted the new rota after a week ashore."),
}


def story(id: int, section: str = "world", **overrides: object) -> SelectedArticle:
    title, body = TOPICS[id]
    values: dict[str, object] = {"title": title, "body_text": body, **overrides}
    return make_selected(id, section, **values)


def inputs(
    *articles: SelectedArticle, overrides: EditorialOverrides | None = None
) -> VariantInputs:
    candidates: dict[str, list[SelectedArticle]] = {"world": [], "business": []}
    for article in articles:
        candidates[article.section].append(article)
    return VariantInputs(
        candidates=candidates,
        archive=Archive(articles),
        overrides=overrides or EditorialOverrides(),
    )


def ids(articles: tuple[SelectedArticle, ...] | list[SelectedArticle]) -> list[int]:
    return [a.id for a in articles]


def test_overrides_of_other_articles_leave_the_cut_unchanged(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    articles = [story(1), story(2), story(3, "business")]
    links = new_placeholders()
    plain = cut_variant(config, SPEC, inputs(*articles), placeholders=links)
    elsewhere = EditorialOverrides(
        dropped=frozenset({99}), headlines={98: "Not in this variant"}, sources=frozenset({97})
    )
    other = cut_variant(config, SPEC, inputs(*articles, overrides=elsewhere), placeholders=links)
    assert [i.article.id for i in plain.digest.items] == [1, 2, 3]
    assert plain.rendered.html == other.rendered.html
    assert plain.rendered.text == other.rendered.text


def test_pin_drop_and_rewording_change_the_cut(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    articles = [story(1), story(2), story(4), story(3, "business")]
    overrides = EditorialOverrides(
        pinned=(4,),
        dropped=frozenset({2}),
        headlines={1: "Harbour reopens: ships queue at dawn"},
        summaries={3: "An editor's own summary of the tour."},
    )
    built = cut_variant(config, SPEC, inputs(*articles, overrides=overrides))
    world = built.digest.sections[0]
    # Article 4 is the oldest in world; pinned, it leads its section.
    assert [i.article.id for i in world.items] == [4, 1]
    assert 2 not in [i.article.id for i in built.digest.items]
    assert "Harbour reopens: ships queue at dawn" in built.rendered.html
    assert "Harbour reopens: ships queue at dawn" in built.rendered.text
    assert "Harbour reopens after storm" not in built.rendered.text
    assert "An editor&#39;s own summary" in built.rendered.html or (
        "An editor's own summary" in built.rendered.html
    )
    assert "An editor's own summary of the tour." in built.rendered.text
    assert "Bank raises interest rates" not in built.rendered.text


def test_pinned_and_added_articles_are_kept_whatever_the_caps() -> None:
    world = [story(1), story(2), story(3), story(4)]
    candidates = {"world": world}
    caps = {"world": 2}
    selection = select_articles("daily", candidates, ["world"], caps, 10, None, NOW)
    assert ids(selection.articles) == [1, 2]
    favoured = favour(selection, candidates, EditorialOverrides(pinned=(4,)), caps, 10)
    # The pin makes room: the lowest unpinned item goes, the pinned one leads and ranks first.
    assert ids(favoured.articles) == [4, 1]
    assert favoured.ranking[0] == 4 and favoured.dropped == selection.dropped + 1


def test_a_chosen_source_leads_its_story_and_a_dropped_lead_takes_the_story_out() -> None:
    lead = story(1, first_seen_at=NOW - timedelta(minutes=5))
    other = story(2, title="Harbour reopens, port says", first_seen_at=NOW - timedelta(minutes=9))
    third = story(3)
    folding = Folding(candidates={"world": [lead, third]}, covered={1: (other,)})
    chosen = reshape_folding(folding, EditorialOverrides(sources=frozenset({2})))
    assert ids(chosen.candidates["world"]) == [2, 3]
    assert ids(list(chosen.covered[2])) == [1]
    dropped = reshape_folding(folding, EditorialOverrides(dropped=frozenset({1})))
    assert ids(dropped.candidates["world"]) == [3] and dropped.covered == {}
    member = reshape_folding(folding, EditorialOverrides(dropped=frozenset({2})))
    assert ids(member.candidates["world"]) == [1, 3] and member.covered == {1: ()}


def test_an_added_article_outside_the_window_joins_its_section(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    old = story(5, first_seen_at=NOW - timedelta(days=9), published_at=NOW - timedelta(days=9))
    built = cut_variant(config, SPEC, inputs(story(1), overrides=EditorialOverrides(added=(old,))))
    assert 5 in [i.article.id for i in built.digest.items]
    assert "Ferry strike ends" in built.rendered.text
